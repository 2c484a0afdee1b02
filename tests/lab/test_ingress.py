"""Ingress through the lab's nginx controller, from a client outside the cluster (the underlay):
host and path routing, wildcard hosts, the default backend, TLS by SNI with two hosts and two
Secrets, spreading over 10 endpoints, no failed request while Ingresses are edited and the
backends scaled, no 5xx when a backend pod goes away mid-run, and a missing backend reported."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest

from podnet.api import kinds
from podnet.apiserver import objects
from podnet.kernel import netns as kns
from podnet.lab import ingress as ingress_mod
from podnet.lab import pods as pods_mod
from podnet.lab import topology, workloads
from tests.lab.conftest import module_lab, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow]

# A backend that stops the way Kubernetes asks of one: on SIGTERM it takes no new connection,
# answers the requests already under way (closing their connections after), then exits. Idle
# keep-alive connections are closed after 2 s, so none holds the exit up.
HTTP_ECHO = ("import http.server,os,signal,threading\n"
             "stopping=threading.Event()\n"
             "class H(http.server.BaseHTTPRequestHandler):\n"
             " protocol_version='HTTP/1.1'\n"
             " timeout=2\n"
             " def do_GET(s):\n"
             "  body=(os.environ['POD_NAME']+' '+s.path+'\\n').encode()\n"
             "  s.send_response(200);s.send_header('Content-Length',str(len(body)))\n"
             "  if stopping.is_set(): s.send_header('Connection','close');s.close_connection=True\n"
             "  s.end_headers();s.wfile.write(body)\n"
             " def log_message(s,*a): pass\n"
             "srv=http.server.ThreadingHTTPServer(('',8080),H)\n"
             "srv.daemon_threads=False\n"
             "def term(*_):\n"
             " stopping.set();threading.Thread(target=srv.shutdown).start()\n"
             "signal.signal(signal.SIGTERM,term)\n"
             "srv.serve_forever();srv.server_close()")


def deployment(name, replicas):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "web", "command": [sys.executable, "-c", HTTP_ECHO],
                                                           "ports": [{"name": "http", "containerPort": 8080}],
                                                           "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}}}}


def service(name):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}


def backend(name, port=80):
    return {"service": {"name": name, "port": {"number": port}}}


def path(p, kind, svc):
    return {"path": p, "pathType": kind, "backend": backend(svc)}


def ingress(name, rules=None, default=None, tls=None):
    spec = {"rules": rules or []}
    if default:
        spec["defaultBackend"] = backend(default)
    if tls:
        spec["tls"] = tls
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name}, "spec": spec}


class Client:
    """HTTP(S) from the underlay namespace: outside the cluster."""

    def __init__(self, underlay: str, address: str):
        self.underlay, self.address = underlay, address

    def get(self, host, path="/", timeout=3.0):
        with kns.entered(f"/var/run/netns/{self.underlay}"):
            conn = http.client.HTTPConnection(self.address, 80, timeout=timeout)
            try:
                conn.request("GET", path, headers={"Host": host})
                r = conn.getresponse()
                return r.status, r.read().decode(errors="replace").strip(), r.getheader("Location")
            finally:
                conn.close()

    def tls(self, host, path="/"):
        """(status, body, the certificate's CN) over HTTPS with SNI `host`."""
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        with kns.entered(f"/var/run/netns/{self.underlay}"):
            raw = socket.create_connection((self.address, 443), timeout=3)
        with ctx.wrap_socket(raw, server_hostname=host) as s:
            der = s.getpeercert(binary_form=True)
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        head, _, body = data.decode(errors="replace").partition("\r\n\r\n")
        pem = ssl.DER_cert_to_PEM_cert(der)
        cn = subprocess.run(["openssl", "x509", "-noout", "-subject"], input=pem, capture_output=True, text=True).stdout
        return int(head.split()[1]), body.strip(), cn.strip()

    def who(self, host, path="/"):
        status, body, _ = self.get(host, path)
        return body.split()[0] if status == 200 else status


def settled(predicate, timeout=20.0, runs=8):
    """True once `predicate` holds `runs` times in a row: right after a reload, nginx workers of
    the previous configuration may still take a new connection or two."""
    return wait_for(lambda: all(predicate() for _ in range(runs)), timeout)


class Cluster:
    def __init__(self, lab, store, client):
        self.lab, self.state, self.store, self.client = lab, lab.state, store, client

    def apply(self, *docs):
        for doc in docs:
            obj = kinds.BY_KIND[doc["kind"]].parse(doc, "test", "default")
            if doc["kind"] == "Service":
                workloads.apply_service(self.store, obj)
            else:
                objects.apply(self.store, obj)

    def ready(self, name, n):
        kv = self.store.get(f"/podnet/endpointslices/default/{name}")
        eps = [ep for sl in json.loads(kv.value)["items"] for ep in sl["endpoints"]
               if ep["conditions"].get("ready")] if kv else []
        return len(eps) == n

    def addresses(self, name):
        kv = self.store.get(f"/podnet/endpointslices/default/{name}")
        return {a for sl in json.loads(kv.value)["items"] for ep in sl["endpoints"] for a in ep["addresses"]} if kv else set()

    def ingress(self, name):
        return objects.get(self.store, kinds.BY_KIND["Ingress"], "default", name)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if shutil.which("nginx") is None or shutil.which("openssl") is None:
        pytest.skip("needs nginx and openssl")
    with module_lab(tmp_path_factory, "i", 2) as lab:
        address = ingress_mod.start(lab.state)
        with topology.store_context(lab.state):
            store = lab.store()
            try:
                c = Cluster(lab, store, Client(lab.state.underlay, address))
                c.apply(deployment("spread", 10), service("spread"), deployment("a", 1), service("a"),
                        deployment("b", 1), service("b"), deployment("c", 1), service("c"))
                assert wait_for(lambda: c.ready("spread", 10) and c.ready("a", 1) and c.ready("b", 1) and c.ready("c", 1), 90)
                yield c
            finally:
                store.close()


def test_host_path_wildcard_and_default_backend_routing(cluster):
    c = cluster
    c.apply(ingress("routes", [{"host": "foo.example", "http": {"paths": [path("/a", "Prefix", "a"), path("/b", "Exact", "b")]}},
                               {"host": "*.wild.example", "http": {"paths": [path("/", "Prefix", "c")]}}]),
            ingress("fallback", default="spread"))
    assert settled(lambda: str(c.client.who("foo.example", "/a")).startswith("a-")
                   and str(c.client.who("nobody.example")).startswith("spread-"))
    # unmatched paths of a known host go to the default backend too (there is one: Ingress fallback)
    cases = [("foo.example", "/a", "a"), ("foo.example", "/a/x", "a"), ("foo.example", "/ab", "spread"),
             ("foo.example", "/b", "b"), ("foo.example", "/b/", "spread"), ("FOO.example:80", "/a", "a"),
             ("x.wild.example", "/anything", "c"), ("y.x.wild.example", "/", "spread"), ("wild.example", "/", "spread"),
             ("nobody.example", "/", "spread")]
    for host, p, want in cases:
        got = c.client.who(host, p)
        got = got.split("-")[0] if isinstance(got, str) else got  # pod names: <deployment>-<suffix>
        assert got == want, f"Host {host} {p}: {got}, want {want}"
    status = wait_for(lambda: (c.ingress("routes").get("status") or {}).get("loadBalancer", {}).get("ingress"), 10)
    assert status == [{"ip": c.client.address}]


def test_100_requests_spread_over_10_endpoints(cluster):
    c = cluster
    c.apply(ingress("spread", [{"host": "spread.example", "http": {"paths": [path("/", "Prefix", "spread")]}}]))
    assert settled(lambda: str(c.client.who("spread.example")).startswith("spread-"))
    seen = [c.client.who("spread.example") for _ in range(100)]
    assert all(isinstance(s, str) and s.startswith("spread-") for s in seen)
    assert len(set(seen)) == 10


def test_tls_by_sni_with_two_hosts_and_two_secrets(cluster, tmp_path):
    c = cluster
    docs = []
    for host in ("one.tls.example", "two.tls.example"):
        key, crt = tmp_path / f"{host}.key", tmp_path / f"{host}.crt"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={host}", "-keyout", str(key),
                        "-out", str(crt), "-days", "2"], check=True, capture_output=True)
        docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": host.split(".")[0]}, "type": "kubernetes.io/tls",
                     "stringData": {"tls.crt": crt.read_text(), "tls.key": key.read_text()}})
    rules = [{"host": h, "http": {"paths": [path("/", "Prefix", svc)]}} for h, svc in (("one.tls.example", "a"),
                                                                                   ("two.tls.example", "b"))]
    c.apply(*docs, ingress("secure", rules, tls=[{"hosts": ["one.tls.example"], "secretName": "one"},
                                                 {"hosts": ["two.tls.example"], "secretName": "two"}]))

    def served():
        try:
            return c.client.tls("two.tls.example")
        except OSError:
            return None

    assert settled(lambda: (served() or (0,))[0] == 200)
    status, body, cn = c.client.tls("one.tls.example")
    assert status == 200 and body.startswith("a-") and "one.tls.example" in cn
    status, body, cn = c.client.tls("two.tls.example")
    assert status == 200 and body.startswith("b-") and "two.tls.example" in cn
    status, _, location = c.client.get("one.tls.example", "/x?y=1")
    assert status == 308 and location == "https://one.tls.example/x?y=1"


def test_a_missing_backend_answers_503_and_says_why(cluster):
    c = cluster
    c.apply(ingress("broken", [{"host": "broken.example", "http": {"paths": [path("/", "Prefix", "nope")]}}]))
    assert settled(lambda: c.client.get("broken.example")[0] == 503)
    problems = wait_for(lambda: (c.ingress("broken").get("status") or {}).get("podnet", {}).get("problems"), 10)
    assert any("default/nope" in p for p in problems)


class Hammer:
    """A client sending requests continuously from outside the cluster, in a thread."""

    def __init__(self, c, host):
        self.c, self.host, self.results, self.stop = c, host, [], threading.Event()  # results: (time sent, status, body)
        self.thread = threading.Thread(target=self.run)

    def run(self):
        while not self.stop.is_set():
            t = time.monotonic()
            try:
                status, body, _ = self.c.client.get(self.host, "/", timeout=10)
            except (OSError, http.client.HTTPException) as e:  # a cut response too (IncompleteRead)
                status, body = 0, f"{e.__class__.__name__}: {e}"
            self.results.append((t, status, body))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(20)

    def failed(self):
        return [r for r in self.results if r[1] != 200]


def live_ingress(extra=()):
    return ingress("live", [{"host": "live.example", "http": {"paths": [path("/", "Prefix", "live"), *extra]}}])


def serve_live(c):
    """Deployment live (2 pods) behind host live.example, answering through the Ingress."""
    c.apply(deployment("live", 2), service("live"), live_ingress())
    assert wait_for(lambda: c.ready("live", 2), 60) and settled(lambda: str(c.client.who("live.example")).startswith("live-"))


def test_no_failed_request_while_the_ingress_is_edited(cluster):
    c = cluster
    serve_live(c)
    with Hammer(c, "live.example") as h:
        time.sleep(1)
        for i in range(4):  # edits: a path added and removed again, each a reload
            c.apply(live_ingress([path(f"/extra{i}", "Exact", "a")]))
            time.sleep(0.7)
        c.apply(live_ingress())
        time.sleep(1)
    assert len(h.results) > 50 and not h.failed(), f"{len(h.failed())} of {len(h.results)} failed: {h.failed()[:5]}"


def test_no_failed_request_while_backends_scale_or_die(cluster):
    c = cluster
    serve_live(c)
    with Hammer(c, "live.example") as h:
        time.sleep(1)
        workloads.scale(c.state, c.store, "default", "live", 5)
        assert wait_for(lambda: c.ready("live", 5), 60)
        time.sleep(1)
        workloads.scale(c.state, c.store, "default", "live", 2)
        assert wait_for(lambda: c.ready("live", 2), 60)
        time.sleep(1)
        victim = next(p for p in pods_mod.list_pods(c.state, c.store, "default") if p["metadata"]["name"].startswith("live-"))
        t_kill = time.monotonic()
        pods_mod.delete_pod(c.state, c.store, "default", victim["metadata"]["name"], force=True)  # gone at once
        assert wait_for(lambda: victim["status"]["podIP"] not in c.addresses("live"), 10)
        t_gone = time.monotonic()  # its endpoint is gone (the controller reloads right after)
        time.sleep(2)
    # scale up and down: not one request may fail; a pod killed without warning: none after its
    # endpoint is gone (a request already on its way to it is retried on another)
    failed = [r for r in h.failed() if r[0] < t_kill or r[0] > t_gone + 0.5]
    assert len(h.results) > 50 and not failed, f"{len(failed)} of {len(h.results)} failed: {failed[:5]}"
