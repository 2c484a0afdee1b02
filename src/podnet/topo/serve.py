"""`podnet topo --serve`: a small read-only web server for the topology page (stdlib only).

    /             the page, with the current model inline (it draws itself: no Graphviz needed)
    /model.json   the current model (the `-o json` document)
    /events       Server-Sent Events: `event: model` with the whole model, each time it changes

One thread owns the store and the kernel reads: it remakes the model when the store reports a
change to pods, Services, EndpointSlices, policies or nodes (and every `resync` seconds, for
kernel-only changes), and publishes it only when it differs from the last one. Request threads
only ever read the published copy.

An event stream is closed after STREAM_SECONDS and the browser reconnects `retry` ms later with
the last id it saw (getting the newest model at once if it missed one). Short streams keep
headless browsers honest: with `--virtual-time-budget`, Chromium stops its clock while a request
is open, so a stream that never ended would keep `--dump-dom` from ever returning.

Loopback only by default, and requests must name a loopback Host (a web page elsewhere cannot
reach this one through DNS rebinding).
"""

from __future__ import annotations

import http.server
import ipaddress
import json
import secrets
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from ..serving import BoundedThreadingMixIn
from . import page
from .collect import wait_for_change
from .model import Topology

STREAM_SECONDS = 4.0
RETRY_MS = 2000
DEBOUNCE = 0.25       # a pod start is several writes (scheduled, IP, ready): draw once they settle
RESYNC = 15.0
SLOTS = 32
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


class ServeError(ValueError):
    pass


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"


def parse_address(text: str, listen_any: bool = False) -> Address:
    """HOST:PORT, [V6]:PORT, :PORT or PORT (host 127.0.0.1). A host that is not loopback is
    refused unless `listen_any`: the page shows the whole network of the cluster."""
    text = text.strip()
    if text.isdigit():
        host, port = "127.0.0.1", text
    elif text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = text.rpartition(":")
        host = host or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ServeError(f"--serve wants HOST:PORT (such as 127.0.0.1:8080), not {text!r}")
    if not listen_any and not is_loopback(host):
        raise ServeError(f"{host} is not a loopback address: the page shows the whole cluster network, so it is served "
                         "on 127.0.0.1 by default (add --listen-any to serve it on other addresses)")
    return Address(host, int(port))


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0].split("%")[0]).is_loopback for i in infos)


class Feed:
    """The newest model and its version id (`<boot>-<n>`: an id from an earlier run of the
    server never matches, so a reconnecting page always gets the current model)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._boot = secrets.token_hex(4)
        self._n = 0
        self.version = ""
        self.doc: dict = {}
        self.body = ""
        self.closed = False

    def publish(self, doc: dict) -> bool:
        """Make `doc` current; False (and nothing wakes) when it equals the current one."""
        body = json.dumps(doc, sort_keys=True)
        with self._cond:
            if body == self.body:
                return False
            self._n += 1
            self.version, self.doc, self.body = f"{self._boot}-{self._n}", doc, body
            self._cond.notify_all()
            return True

    def current(self) -> tuple[str, dict, str]:
        with self._cond:
            return self.version, self.doc, self.body

    def wait_newer(self, version: str, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.version != version or self.closed, timeout) and not self.closed

    def close(self) -> None:
        """Wake every waiting stream so that it ends now (the server is stopping)."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()


class Handler(http.server.BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"
    server_version = "podnet-topo"

    def do_GET(self) -> None:
        if not self._host_allowed():
            self._send(403, "text/plain; charset=utf-8", "Host not allowed: use http://127.0.0.1:PORT/\n")
            return
        path = urllib.parse.urlsplit(self.path).path
        version, doc, body = self.server.feed.current()
        if path in ("/", "/index.html"):
            self._send(200, "text/html; charset=utf-8", page.document(doc, live=True, version=version))
        elif path == "/model.json":
            self._send(200, "application/json", body + "\n", etag=version)
        elif path == "/events":
            self._events()
        else:
            self._send(404, "text/plain; charset=utf-8", "not found: this server has /, /model.json and /events\n")

    def _host_allowed(self) -> bool:
        if self.server.listen_any:
            return True
        host = self.headers.get("Host")
        if not host:
            return True
        name = urllib.parse.urlsplit("//" + host).hostname or ""
        return name in LOOPBACK_NAMES or name == self.server.address.host

    def _send(self, code: int, ctype: str, text: str, etag: str = "") -> None:
        data = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", page.CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        if etag:
            self.send_header("ETag", f'"{etag}"')
        self.end_headers()
        self.wfile.write(data)

    def _events(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        seen = self.headers.get("Last-Event-ID", "")
        if not seen:  # the page's first connection: it already has the model the page came with
            seen = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("since", [""])[0]
        deadline = time.monotonic() + STREAM_SECONDS
        try:
            self.wfile.write(f"retry: {RETRY_MS}\n\n".encode())
            self.wfile.flush()
            while True:
                version, _doc, body = self.server.feed.current()
                if version != seen:
                    self.wfile.write(f"id: {version}\nevent: model\ndata: {body}\n\n".encode())
                    self.wfile.flush()
                    seen = version
                left = deadline - time.monotonic()
                if left <= 0 or self.server.feed.closed:
                    return
                self.server.feed.wait_newer(seen, min(left, 1.0))
        except (BrokenPipeError, ConnectionResetError):
            return

    def log_message(self, format: str, *args) -> None:
        if self.server.log is not None:
            self.server.log(f"{self.address_string()} {format % args}")


class Server(BoundedThreadingMixIn, http.server.HTTPServer):
    def __init__(self, address: Address, feed: Feed, listen_any: bool = False,
                 log: Callable[[str], None] | None = None) -> None:
        self.address_family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        self.feed, self.listen_any, self.log = feed, listen_any, log
        super().__init__((address.host, address.port), Handler)
        self.bound(SLOTS)
        self.address = Address(address.host, self.server_address[1])


def run(server: Server, store, snapshot: Callable[[], Topology], announce: Callable[[str], None] = print,
        warn: Callable[[str], None] = print, stop: threading.Event | None = None, resync: float = RESYNC) -> None:
    """Serve until `stop` is set (or KeyboardInterrupt), then close the server. The calling
    thread keeps the model current: it is the only one that uses `store` and reads the kernel.

    Make the Server (bind its socket) before entering the namespace the store is reached from:
    a socket belongs to the network namespace it was made in, and the page must be reachable
    from where the user is."""
    stop = stop or threading.Event()
    thread = None
    try:
        revision = store.revision()
        server.feed.publish(snapshot().to_json())
        thread = threading.Thread(target=server.serve_forever, name="topo-http", daemon=True)
        thread.start()
        announce(f"serving the topology on {server.address.url} (read-only; Ctrl-C to stop)")
        next_resync = time.monotonic() + resync
        while not stop.is_set():
            try:
                changed, revision = wait_for_change(store, revision, 1.0)  # short: `stop` is looked at every second
                if not changed and time.monotonic() < next_resync:
                    continue
                if changed:
                    time.sleep(DEBOUNCE)
                    revision = store.revision()  # what came meanwhile is in the snapshot below
                server.feed.publish(snapshot().to_json())
            except Exception as e:  # noqa: BLE001 - the store away for a moment: keep serving the last model
                warn(f"could not update the topology ({e}); the page keeps the last one, trying again")
                stop.wait(2.0)
            next_resync = time.monotonic() + resync
    except KeyboardInterrupt:
        pass
    finally:
        server.feed.close()
        if thread is not None:
            server.shutdown()
        server.server_close()
