"""The agent's CNI server: the `podnet` plugin forwards (env, stdin) here over a Unix socket.

The agent turns the network's `podnet` config into a bridge + host-local config for this
node's subnet (or, in routed mode, a `routed` config: podnet.agent.routed_cni) and runs
podnet's plugin in-process, through the same dispatcher the
executables use: same results, same errors, without an interpreter start per pod.

Wire format: one JSON object per connection each way.
    request  {"env": {"CNI_COMMAND": ..., ...}, "stdin": "<network config JSON>"}
    response {"code": 0, "stdout": "<what the plugin would print>"}

Every request gets an answer in that format, whatever it holds: malformed or deeply nested
JSON is the spec's error 6, never a dropped connection. A client has REQUEST_TIMEOUT seconds
to send its whole request, and at most MAX_HANDLERS requests are served at once (the accept
loop waits for a free slot), so idle or half-open connections cannot pile up threads.
"""

from __future__ import annotations

import json
import os
import socket
import socketserver
import threading
import time

from ..cni.skel import dispatch
from ..serving import BoundedThreadingMixIn
from ..plugins import bridge

MAX_REQUEST = 1 << 20
REQUEST_TIMEOUT = 5.0
MAX_HANDLERS = 32


class DelegateConfig:
    """How this node wires pods: set by the agent once it holds a subnet lease."""

    def __init__(self, subnet: str, mtu: int, ipam_dir: str, cni_path: str, bridge_name: str = "cni0") -> None:
        self.subnet = subnet
        self.mtu = mtu
        self.ipam_dir = ipam_dir
        self.cni_path = cni_path
        self.bridge_name = bridge_name

    def rewrite(self, conf: dict) -> dict:
        out = {
            "cniVersion": conf.get("cniVersion", "1.0.0"), "name": conf.get("name", "podnet"), "type": "bridge",
            "bridge": self.bridge_name, "isGateway": True, "isDefaultGateway": True, "hairpinMode": True,
            "mtu": self.mtu,
            "ipam": {"type": "host-local", "dataDir": self.ipam_dir, "ranges": [[{"subnet": self.subnet}]]},
        }
        for key in ("prevResult", "runtimeConfig", "args", "cni.dev/valid-attachments"):
            if key in conf:
                out[key] = conf[key]
        return out

    @staticmethod
    def run(env: dict, stdin: bytes) -> tuple[int, str]:
        """Run the rewritten config: podnet's bridge plugin, in-process."""
        return run_bridge(env, stdin)


def run_bridge(env: dict, stdin: bytes) -> tuple[int, str]:
    return dispatch(bridge.PLUGIN, env, stdin)


def _error(code: int, msg: str, version: str = "1.1.0") -> tuple[int, str]:
    return 1, json.dumps({"cniVersion": version, "code": code, "msg": msg})


def read_request(sock: socket.socket, timeout: float = REQUEST_TIMEOUT, limit: int = MAX_REQUEST) -> bytes | None:
    """The whole request (the client shuts down its write side when done), or None when it
    does not arrive within `timeout` seconds in all or is larger than `limit`."""
    deadline = time.monotonic() + timeout
    chunks, size = [], 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, OSError):
            return None
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)


def answer(server: "CNIServer", raw: bytes) -> tuple[int, str]:
    """(exit code, stdout) for one request; never raises."""
    try:
        req = json.loads(raw)
        if not isinstance(req, dict) or not isinstance(req.get("env"), dict) or not isinstance(req.get("stdin"), str):
            return _error(6, "bad request to the podnet agent: expected {\"env\": {...}, \"stdin\": \"...\"}")
        env = {str(k): str(v) for k, v in req["env"].items()}
        try:
            conf = json.loads(req["stdin"])
        except (ValueError, RecursionError) as e:
            return _error(6, f"error unmarshall network config: {e}")
        if not isinstance(conf, dict):
            return _error(6, "error unmarshall network config: not a JSON object")
        version = conf.get("cniVersion") if isinstance(conf.get("cniVersion"), str) else "1.1.0"
        delegate = server.delegate
        if delegate is None:
            return _error(11, "podnet agent has no subnet lease yet", version)
        env["CNI_PATH"] = delegate.cni_path
        stdin = json.dumps(delegate.rewrite(conf)).encode()
        return server.run_plugin(env, stdin)
    except (ValueError, RecursionError) as e:
        return _error(6, f"bad request to the podnet agent: {e}")
    except Exception as e:  # noqa: BLE001 - the plugin must always get an answer it can relay
        return _error(999, f"podnet agent: {e.__class__.__name__}: {e}")


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server: CNIServer = self.server  # type: ignore[assignment]
        raw = read_request(self.request, server.request_timeout)
        if raw is None:
            return  # too slow or too large: drop it (the plugin reports the agent unreachable)
        if not raw.strip():
            return  # a liveness probe: connected, sent nothing
        code, out = answer(server, raw)
        try:
            self.request.settimeout(server.request_timeout)
            self.request.sendall(json.dumps({"code": code, "stdout": out}).encode())
        except OSError:
            pass  # the client went away


class CNIServer(BoundedThreadingMixIn, socketserver.UnixStreamServer):
    request_queue_size = 128

    def __init__(self, path: str, max_handlers: int = MAX_HANDLERS, request_timeout: float = REQUEST_TIMEOUT) -> None:
        if os.path.exists(path):
            os.unlink(path)  # a previous agent's socket; we own this path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.delegate: DelegateConfig | None = None
        # (env, stdin) -> (code, stdout): the bridge plugin in-process; the agent wraps it to
        # record each attachment (anti-spoofing) before an ADD's success reaches the runtime
        self.run_plugin = run_bridge
        self.bound(max_handlers)
        self.request_timeout = request_timeout
        super().__init__(path, _Handler)
        os.chmod(path, 0o600)

    def start(self) -> threading.Thread:
        t = threading.Thread(target=self.serve_forever, name="cni-server", daemon=True)
        t.start()
        return t
