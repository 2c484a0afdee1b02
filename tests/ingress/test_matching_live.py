"""The rendered configuration on a real nginx: the Kubernetes docs' pathType examples, hostname
wildcards, host-less rules and the default backend, asked over HTTP, must be answered by the
backend the model says (and the docs say); TLS picks each host's own certificate by SNI.

Everything runs inside one private namespace per test (`netns` fixture): tiny HTTP backends on
127.0.0.1:91xx, each answering its own name, nginx on ports 80/443, and the client (this thread,
switched into the namespace for each request). nginx and the backends are stopped at the end,
also on failure; the namespace's removal kills anything left."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

import pytest

from podnet.ingress import model
from podnet.ingress.model import build
from podnet.ingress.nginx import cert_files, render
from podnet.kernel.netns import entered
from tests.ingress.test_model import (
    BACKENDS,
    HOSTS_BACKENDS,
    docs_cases,
    docs_ingresses,
    endpoint,
    hosts_cases,
    hosts_ingresses,
    ingress,
    path,
    rule,
    service,
    slice_list,
    tls_secret,
    world,
)
from tests.ingress.test_nginx import make_cert

pytestmark = pytest.mark.root

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
STATUS_PORT = 10254
BASE_PORT = 9101

BACKEND = r"""
import sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = (self.server.name + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

for arg in sys.argv[1:]:
    name, port = arg.split("=")
    srv = ThreadingHTTPServer(("127.0.0.1", int(port)), Handler)
    srv.name = name
    threading.Thread(target=srv.serve_forever, daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""


@pytest.fixture(autouse=True)
def _needs_nginx():
    if not os.path.exists(NGINX):
        pytest.skip("nginx not installed")


class Lab:
    """Backends and nginx in one namespace; stop() ends what it started."""

    def __init__(self, ns: str, tmp_path) -> None:
        self.ns, self.tmp = ns, tmp_path
        self.path = f"/var/run/netns/{ns}"
        self.procs: list[subprocess.Popen] = []
        self.nginx: subprocess.Popen | None = None
        for sub in ("certs", "temp"):
            (tmp_path / sub).mkdir(exist_ok=True)

    def backends(self, names) -> dict[str, int]:
        """Start one HTTP server per name (one process); {name: port}."""
        ports = {name: BASE_PORT + i for i, name in enumerate(names)}
        p = subprocess.Popen(["ip", "netns", "exec", self.ns, sys.executable, "-c", BACKEND,
                              *(f"{n}={port}" for n, port in ports.items())],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.procs.append(p)
        assert p.stdout.readline().strip() == "ready"
        return ports

    def render(self, m: model.Model, **kw) -> str:
        return render(m, str(self.tmp / "certs"), status_port=STATUS_PORT, pid_path=str(self.tmp / "nginx.pid"),
                      temp_dir=str(self.tmp / "temp"), error_log=str(self.tmp / "error.log"),
                      access_log=str(self.tmp / "access.log"), **kw)

    def write(self, text: str, certs: dict[str, bytes] | None = None) -> None:
        for name, data in (certs or {}).items():
            (self.tmp / "certs" / name).write_bytes(data)
        (self.tmp / "nginx.conf").write_text(text)

    def start_nginx(self, text: str, certs: dict[str, bytes] | None = None) -> None:
        self.write(text, certs)
        with open(self.tmp / "nginx.out", "wb") as log:
            self.nginx = subprocess.Popen(["ip", "netns", "exec", self.ns, NGINX, "-p", str(self.tmp), "-c",
                                           str(self.tmp / "nginx.conf"), "-g", "daemon off;"],
                                          stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self.procs.append(self.nginx)
        deadline = time.monotonic() + 15
        while True:
            try:
                if self.get("127.0.0.1", "/healthz", port=STATUS_PORT) == (200, "ok"):
                    return
            except OSError:
                pass
            if self.nginx.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"nginx did not start: {(self.tmp / 'nginx.out').read_text()}"
                                     f"{(self.tmp / 'error.log').read_text() if (self.tmp / 'error.log').exists() else ''}")
            time.sleep(0.05)

    def reload(self, text: str) -> None:
        self.write(text)
        self.nginx.send_signal(signal.SIGHUP)

    def get(self, host: str, path: str, port: int = 80) -> tuple[int, str]:
        """(status, body stripped) of GET path with this Host header, sent from inside the namespace."""
        with entered(self.path):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                conn.request("GET", path, headers={"Host": host})
                r = conn.getresponse()
                return r.status, r.read().decode(errors="replace").strip() if r.status != 308 \
                    else r.getheader("Location")
            finally:
                conn.close()

    def tls_get(self, sni: str, path: str, host: str | None = None) -> tuple[bytes, int, str]:
        """(peer certificate DER, status, body) of GET over TLS with this SNI name."""
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with entered(self.path), socket.create_connection(("127.0.0.1", 443), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname=sni) as s:
            der = s.getpeercert(binary_form=True)
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host or sni}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        return der, int(head.split()[1]), body.decode(errors="replace").strip()

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
            if p.stdout:
                p.stdout.close()
        self.procs.clear()


@pytest.fixture
def lab(netns, tmp_path):
    lab = Lab(netns.new("ingr"), tmp_path)
    try:
        yield lab
    finally:
        lab.stop()


def expect(status_body: tuple[int, str], want: str | None) -> bool:
    return status_body == ((404, status_body[1]) if want is None else (200, want))


def test_docs_examples_hosts_and_default_backend(lab):
    ports = lab.backends(BACKENDS + HOSTS_BACKENDS)
    services, slices = world(ports)
    m = build(docs_ingresses() + hosts_ingresses(False), services, slices, {})
    assert not m.problems and not m.warnings
    lab.start_nginx(lab.render(m))
    cases = docs_cases() + hosts_cases(False)
    wrong = []
    for host, req, want in cases:
        got = lab.get(host, req)
        served = m.route(host, req)
        model_says = None if served.upstream is None else served.backend.split("/")[1].split(":")[0]
        if not expect(got, want) or model_says != want:
            wrong.append(f"{host}{req}: nginx {got}, model {model_says}, want {want or 404}")
    assert not wrong, "\n".join(wrong)

    # the same Ingresses plus a default backend: a graceful reload, then what matched nothing goes there
    m = build(docs_ingresses() + hosts_ingresses(True), services, slices, {})
    lab.reload(lab.render(m))
    deadline = time.monotonic() + 10
    # settled: right after a reload, a worker of the old configuration may still take a connection
    while not all(lab.get("unknown.example", "/catchy") == (200, "dflt") for _ in range(10)):
        assert time.monotonic() < deadline, "the reload did not take"
        time.sleep(0.05)
    time.sleep(0.3)
    for host, req, want in docs_cases() + hosts_cases(True):
        want = want or "dflt"
        assert expect(lab.get(host, req), want), (host, req, want)


def test_503_without_endpoints_and_retry_past_a_dead_pod(lab):
    ports = lab.backends(["live"])
    services = {("default", "web"): service("web"), ("default", "empty"): service("empty")}
    slices = {
        # one endpoint nothing listens on (a pod that just went away) and one that answers
        ("default", "web"): slice_list(([endpoint("127.0.0.1")], [{"name": "http", "port": 9199}]),
                                       ([endpoint("127.0.0.1")], [{"name": "http", "port": ports["live"]}])),
        ("default", "empty"): slice_list(([endpoint("127.0.0.1", ready=False)], [{"name": "http", "port": 9198}])),
    }
    m = build([ingress("a", rule(None, path("/web", "Prefix", "web"), path("/empty", "Prefix", "empty"),
                                 path("/none", "Exact", "none")))], services, slices, {})
    assert m.upstreams == {"default_web_80": ["127.0.0.1:9101", "127.0.0.1:9199"]}
    lab.start_nginx(lab.render(m))
    assert [lab.get("x", "/web/a") for _ in range(8)] == [(200, "live")] * 8
    assert lab.get("x", "/empty") == (503, "service default/empty has no ready endpoints")
    assert lab.get("x", "/none") == (503, "service default/none not found")
    assert lab.get("x", "/other")[0] == 404


def test_tls_certificates_by_sni_and_redirect(lab):
    ports = lab.backends(["web", "plain"])
    services, slices = world(ports)
    pems = {cn: make_cert(str(lab.tmp), cn) for cn in ("a.example.com", "b.example.com")}
    secrets = {("default", "a"): tls_secret("a", *pems["a.example.com"]),
               ("default", "b"): tls_secret("b", *pems["b.example.com"])}
    ings = [ingress("a", rule("a.example.com", path("/", "Prefix", "web")),
                    rule("b.example.com", path("/", "Prefix", "web")),
                    tls=[{"hosts": ["a.example.com"], "secretName": "a"}, {"hosts": ["b.example.com"], "secretName": "b"}]),
            ingress("b", rule("b.example.com", path("/plain", "Prefix", "plain")),
                    annotations={model.SSL_REDIRECT: "false"}),
            ingress("c", rule("c.example.com", path("/", "Prefix", "plain")))]
    m = build(ings, services, slices, secrets)
    assert not m.problems and not m.warnings
    lab.start_nginx(lab.render(m), cert_files(m, secrets))

    for cn in ("a.example.com", "b.example.com"):
        der, status, body = lab.tls_get(cn, "/x")
        assert der == ssl.PEM_cert_to_DER_cert(pems[cn][0].decode()), f"{cn} got another certificate"
        assert _subject_cn(lab.tmp, der) == cn
        assert (status, body) == (200, "web")
    # plain HTTP on a TLS host: 308 to https, but not for the Ingress that turned it off
    assert lab.get("a.example.com", "/x?y=1") == (308, "https://a.example.com/x?y=1")
    assert lab.get("b.example.com", "/x") == (308, "https://b.example.com/x")
    assert lab.get("b.example.com", "/plain/1") == (200, "plain")
    assert lab.get("c.example.com", "/") == (200, "plain")
    # a name without a certificate: the default server refuses the handshake
    with pytest.raises(ssl.SSLError):
        lab.tls_get("c.example.com", "/")


def _subject_cn(tmp, der: bytes) -> str:
    f = tmp / "peer.der"
    f.write_bytes(der)
    out = subprocess.run(["openssl", "x509", "-inform", "DER", "-in", str(f), "-noout", "-subject",
                          "-nameopt", "multiline"], capture_output=True, text=True, check=True).stdout
    return next(line.split("=", 1)[1].strip() for line in out.splitlines() if "commonName" in line)
