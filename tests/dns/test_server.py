"""The DNS server's sockets: no packet, however malformed, stops it from answering the next
one. Servers and clients run inside a private namespace (pn-*), on its loopback."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from podnet.dns import records
from podnet.dns.server import ClusterResolver, TCPServer, UDPServer, answer, follow
from podnet.kernel import netns as kns
from podnet.store.sqlite import SQLiteStore
from tests.dns.test_resolver import SERVICES, SLICES

LONG = ".".join(["a" * 63] * 4) + ".svc.cluster.local"


def query_bytes(name: str, qtype: int = 1, qid: int = 0x4242) -> bytes:
    """A query packed by hand: dnslib refuses to pack names longer than 253 characters."""
    qname = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", qtype, 1)


class Servers:
    def __init__(self, ns: str) -> None:
        self.ns = ns
        self.resolver = ClusterResolver("cluster.local", None)
        self.resolver.set_index(records.build(SERVICES, SLICES))
        with kns.entered(f"/var/run/netns/{ns}"):
            self.udp = UDPServer(self.resolver, "127.0.0.1", 53)
            self.tcp = TCPServer(self.resolver, "127.0.0.1", 53)
        self.udp.start()
        threading.Thread(target=self.tcp.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.tcp.shutdown()
        self.tcp.server_close()
        self.udp.sock.close()

    def udp_exchange(self, payload: bytes, timeout: float = 1.0) -> bytes | None:
        with kns.entered(f"/var/run/netns/{self.ns}"):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(timeout)
        try:
            s.sendto(payload, ("127.0.0.1", 53))
            return s.recv(65535)
        except socket.timeout:
            return None
        finally:
            s.close()

    def tcp_connect(self) -> socket.socket:
        with kns.entered(f"/var/run/netns/{self.ns}"):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(3)
        s.connect(("127.0.0.1", 53))
        return s

    def alive(self) -> bool:
        """A normal question still gets its normal answer, over UDP and over TCP."""
        raw = self.udp_exchange(DNSRecord.question("web.default.svc.cluster.local", "A").pack())
        ok_udp = raw is not None and [str(r.rdata) for r in DNSRecord.parse(raw).rr] == ["10.96.0.50"]
        s = self.tcp_connect()
        try:
            q = DNSRecord.question("web.default.svc.cluster.local", "A").pack()
            s.sendall(struct.pack("!H", len(q)) + q)
            n = struct.unpack("!H", _recv(s, 2))[0]
            ok_tcp = [str(r.rdata) for r in DNSRecord.parse(_recv(s, n)).rr] == ["10.96.0.50"]
        finally:
            s.close()
        return ok_udp and ok_tcp and self.udp.is_alive()


def _recv(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        assert chunk, "connection closed"
        buf += chunk
    return buf


@pytest.fixture
def servers(netns):
    srv = Servers(netns.new("dns"))
    try:
        yield srv
    finally:
        srv.close()


pytestmark = pytest.mark.root


def test_overlong_name_is_formerr_and_the_server_lives(servers):
    raw = servers.udp_exchange(query_bytes(LONG))
    assert raw is not None
    reply = DNSRecord.parse(raw)
    assert RCODE[reply.header.rcode] == "FORMERR"
    assert servers.alive()


def test_responses_are_never_answered(servers):
    query = DNSRecord.question("web.default.svc.cluster.local", "A")
    query.header.qr = 1
    assert servers.udp_exchange(query.pack(), timeout=0.5) is None
    assert servers.alive()


def test_source_port_zero_does_not_stop_the_loop(servers):
    """A datagram from port 0 makes sendto() fail with EINVAL: the reply is dropped, nothing else."""
    payload = DNSRecord.question("web.default.svc.cluster.local", "A").pack()
    udp = struct.pack("!HHHH", 0, 53, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, socket.IPPROTO_UDP, 0,
                     socket.inet_aton("127.0.0.1"), socket.inet_aton("127.0.0.1"))
    with kns.entered(f"/var/run/netns/{servers.ns}"):
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    try:
        for _ in range(3):
            raw.sendto(ip + udp, ("127.0.0.1", 0))
    finally:
        raw.close()
    time.sleep(0.1)
    assert servers.alive()


@pytest.mark.parametrize("payload", [
    b"\x12\x34" + b"\x00" * 10,                       # a header and no question
    b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01",  # a pointer loop
    b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x7f" + b"a" * 10,          # a label past the end
    b"\x12\x34\x28\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x01",        # opcode UPDATE
    b"\x12\x34\x01\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x01\x00\x00\x01\x00\x01",  # two questions
])
def test_malformed_queries_get_an_error_reply_with_their_id(servers, payload):
    raw = servers.udp_exchange(payload)
    assert raw is not None and raw[:2] == b"\x12\x34" and raw[2] & 0x80
    assert raw[3] & 0x0F in (1, 4), raw  # FORMERR or NOTIMP
    assert servers.alive()


def test_tcp_several_queries_per_connection_and_garbage(servers):
    s = servers.tcp_connect()
    try:
        for i, name in enumerate(("web.default.svc.cluster.local", LONG, "db.default.svc.cluster.local")):
            q = query_bytes(name, qid=i + 1)
            s.sendall(struct.pack("!H", len(q)) + q)
            n = struct.unpack("!H", _recv(s, 2))[0]
            reply = DNSRecord.parse(_recv(s, n))
            assert reply.header.id == i + 1
        s.sendall(b"\x00\x05hello")  # garbage shorter than a header: no reply, connection stays usable
        q = DNSRecord.question("web.default.svc.cluster.local", "A").pack()
        s.sendall(struct.pack("!H", len(q)) + q)
        n = struct.unpack("!H", _recv(s, 2))[0]
        assert [str(r.rdata) for r in DNSRecord.parse(_recv(s, n)).rr] == ["10.96.0.50"]
    finally:
        s.close()
    assert servers.alive()


def test_big_udp_answers_are_truncated_for_plain_clients():
    resolver = ClusterResolver("cluster.local", None)
    eps = [{"addresses": [f"10.244.{i // 250}.{i % 250 + 1}"], "conditions": {"ready": True}} for i in range(100)]
    resolver.set_index(records.build(
        [{"metadata": {"name": "big", "namespace": "default"}, "spec": {"type": "ClusterIP", "clusterIP": "None", "ports": []}}],
        {("default", "big"): {"items": [{"endpoints": eps, "ports": []}]}}))
    q = DNSRecord.question("big.default.svc.cluster.local", "A").pack()
    udp = DNSRecord.parse(answer(resolver, q, max_size=512))
    assert udp.header.tc == 1 and not udp.rr
    tcp = DNSRecord.parse(answer(resolver, q))
    assert tcp.header.tc == 0 and len(tcp.rr) == 100


def test_corrupt_store_values_do_not_stop_the_index(tmp_path):
    store = SQLiteStore(str(tmp_path / "s.db"))
    import json

    store.put("/podnet/services/default/good", json.dumps(SERVICES[0]))
    for i, bad in enumerate(['{not json', '[1]', '"x"', json.dumps({"metadata": {}}),
                             json.dumps({"metadata": {"name": "x", "namespace": "default"}, "spec": {"type": "ClusterIP",
                                                                                                       "clusterIP": "bogus"}})]):
        store.put(f"/podnet/services/default/bad{i}", bad)
    store.put("/podnet/endpointslices/default/db", "{not json")
    resolver = ClusterResolver("cluster.local", None)
    stop = threading.Event()
    t = threading.Thread(target=follow, args=(store, resolver, "cluster.local", stop), daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 5
        while not resolver.ready and time.monotonic() < deadline:
            time.sleep(0.02)
        reply = resolver.resolve(DNSRecord.question("web.default.svc.cluster.local", "A"), None)
        assert [str(r.rdata) for r in reply.rr] == ["10.96.0.50"]
        assert len(resolver.index.skipped) == 6
        store.put("/podnet/services/default/bad0", "{still not json")  # an event: reload, still serving
        time.sleep(1.5)
        assert t.is_alive()
        reply = resolver.resolve(DNSRecord.question("web.default.svc.cluster.local", "A"), None)
        assert [str(r.rdata) for r in reply.rr] == ["10.96.0.50"]
    finally:
        stop.set()
        t.join(5)


def test_in_zone_questions_are_servfail_until_the_index_is_loaded():
    resolver = ClusterResolver("cluster.local", None)
    reply = resolver.resolve(DNSRecord.question("web.default.svc.cluster.local", "A"), None)
    assert RCODE[reply.header.rcode] == "SERVFAIL"
    assert not resolver.cacheable("web.default.svc.cluster.local.")
    _ = QTYPE  # keep the import for readers: QTYPE names the types asked above
