"""`podnet dns`: the cluster DNS server (UDP and TCP), answering from the store, forwarding
everything outside the cluster zone to an upstream resolver.

NXDOMAIN vs NODATA: a name that exists (a service, an endpoint hostname, or an empty
non-terminal such as `default.svc.cluster.local`) but has no record of the asked type gets
NOERROR with no answer; a name that does not exist gets NXDOMAIN. Both carry the zone's SOA.
"""

from __future__ import annotations

import json
import socket
import socketserver
import struct
import sys
import threading
import time

from dnslib import CNAME, PTR, QTYPE, RCODE, RR, SOA, SRV, TXT, A, DNSRecord
from dnslib.server import BaseResolver

from ..api.keys import ENDPOINT_SLICES, ROOT, SERVICES
from ..serving import BoundedThreadingMixIn
from ..store import Compacted, Store, open_store
from . import records

PREFIXES = (SERVICES, ENDPOINT_SLICES)


def _rdata(rr: records.RR):
    if rr.rtype == "A":
        return A(rr.data[0])
    if rr.rtype == "SRV":
        return SRV(priority=rr.data[0], weight=rr.data[1], port=rr.data[2], target=rr.data[3])
    if rr.rtype == "PTR":
        return PTR(rr.data[0])
    if rr.rtype == "CNAME":
        return CNAME(rr.data[0])
    return TXT(rr.data[0])


class ClusterResolver(BaseResolver):
    def __init__(self, zone: str, upstream: tuple[str, int] | None) -> None:
        self.zone = zone.lower().rstrip(".") + "."
        self.upstream = upstream
        self.index = records.build([], {}, zone)
        self.lock = threading.Lock()
        self.cache: dict[bytes, bytes] = {}  # query bytes after the ID -> answer bytes after the ID
        self.ready = False  # until the first index is loaded, in-zone questions get SERVFAIL

    def set_index(self, index: records.Index) -> None:
        with self.lock:
            self.index = index
            self.cache = {}
            self.ready = True

    def cacheable(self, qname: str) -> bool:
        """In-zone answers only change with the index (forwarded ones have their own TTLs)."""
        return self.ready and self.index.in_zone(qname) or qname.lower().endswith(".in-addr.arpa.") and self.index.lookup(qname)[0] == "ok"

    def soa(self) -> RR:
        return RR(self.zone, QTYPE.SOA, ttl=records.TTL,
                  rdata=SOA(f"ns.dns.{self.zone}", f"hostmaster.{self.zone}", (int(time.time()), 7200, 1800, 86400, records.TTL)))

    def resolve(self, request: DNSRecord, handler) -> DNSRecord:
        reply = request.reply()
        qname = str(request.q.qname)
        qtype = QTYPE[request.q.qtype]
        with self.lock:
            index = self.index
        if not index.in_zone(qname) and not qname.lower().endswith(".in-addr.arpa."):
            return self._forward(request, reply)
        if not self.ready:  # never a false NXDOMAIN that clients would cache
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        status, rrs = index.lookup(qname)
        if status == "nxdomain" and qname.lower().endswith(".in-addr.arpa.") and not index.in_zone(qname):
            return self._forward(request, reply)
        if status == "nxdomain" or records.is_headless_without_endpoints(index, qname):
            reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(self.soa())
            return reply
        cnames = [r for r in rrs if r.rtype == "CNAME"]
        wanted = [r for r in rrs if r.rtype == qtype or qtype == "ANY"]
        if cnames and qtype not in ("CNAME", "ANY"):
            wanted = cnames  # an ExternalName: the CNAME, then what the target resolves to
        for r in wanted:
            reply.add_answer(RR(qname, QTYPE.reverse[r.rtype], ttl=records.TTL, rdata=_rdata(r)))
        if cnames and qtype not in ("CNAME", "ANY") and self.upstream:
            self._chase(reply, cnames[0].data[0], request.q.qtype)
        for r in wanted:
            if r.rtype == "SRV":  # the A records the SRV targets point at, as the spec allows
                for a in index.lookup(r.data[3])[1]:
                    if a.rtype == "A":
                        reply.add_ar(RR(r.data[3], QTYPE.A, ttl=records.TTL, rdata=A(a.data[0])))
        if not wanted:
            reply.add_auth(self.soa())  # NODATA
        return reply

    def _chase(self, reply: DNSRecord, target: str, qtype: int) -> None:
        try:
            answer = DNSRecord.parse(DNSRecord.question(target, QTYPE[qtype]).send(*self.upstream, timeout=2))
            for rr in answer.rr:
                reply.add_answer(rr)
        except Exception:  # noqa: BLE001 - the CNAME alone is still a correct answer
            pass

    def _forward(self, request: DNSRecord, reply: DNSRecord) -> DNSRecord:
        if not self.upstream:
            reply.header.rcode = RCODE.REFUSED
            return reply
        try:
            return DNSRecord.parse(request.send(*self.upstream, timeout=3))
        except Exception:  # noqa: BLE001 - upstream down or slow
            reply.header.rcode = RCODE.SERVFAIL
            return reply


def log(msg: str) -> None:
    print(f"podnet dns: {msg}", file=sys.stderr, flush=True)


def load_index(store: Store, zone: str) -> tuple[records.Index, int]:
    """The index from every stored service and slice. A value that is not a JSON object is
    skipped (and named in `skipped`), never fatal: one corrupt key must not take DNS down."""
    services, rev = store.list(PREFIXES[0])
    slices, rev2 = store.list(PREFIXES[1])
    objs, by_svc, bad = [], {}, []
    for kv in services:
        obj = _object(kv.value)
        objs.append(obj) if obj is not None else bad.append(kv.key)
    for kv in slices:
        obj = _object(kv.value)
        ns, _, name = kv.key[len(PREFIXES[1]):].partition("/")
        if obj is None or not name:
            bad.append(kv.key)
        else:
            by_svc[(ns, name)] = obj
    index = records.build(objs, by_svc, zone)
    index.skipped += [f"{key}: not a JSON object" for key in bad]
    return index, max(rev, rev2)


def _object(value: str) -> dict | None:
    try:
        obj = json.loads(value)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def follow(store: Store, resolver: ClusterResolver, zone: str, stop: threading.Event) -> None:
    """Rebuild the index whenever a service or endpoint slice changes. Never gives up: a store
    that fails is retried with back-off while the last good index keeps answering."""
    rev: int | None = None
    delay, reported = 1.0, set()
    while not stop.is_set():
        try:
            if rev is None:
                index, rev = load_index(store, zone)
                resolver.set_index(index)
                for why in set(index.skipped) - reported:
                    log(f"skipping {why}")
                reported = set(index.skipped)
                delay = 1.0
                continue
            events = store.watch(ROOT, rev, 1.0)
            delay = 1.0
        except Compacted:
            rev = None
            continue
        except Exception as e:  # noqa: BLE001 - StoreError or anything else: retry, keep serving
            log(f"store: {e.__class__.__name__}: {e}; retrying in {delay:g} s")
            stop.wait(delay)
            delay = min(delay * 2, 30.0)
            continue
        if events:
            rev = events[-1].revision
            if any(e.key.startswith(PREFIXES) for e in events):
                rev = None  # reload (at the newest revision) on the next turn


CACHE_LIMIT = 100_000
UDP_PAYLOAD = 512  # without EDNS a client takes no more than this over UDP (RFC 1035 4.2.1)
TCP_IDLE = 10.0    # seconds a TCP client may wait between queries (RFC 7766 suggests a few)
TCP_MAX_CONNECTIONS = 64
_QR, _OPCODE, _RD = 0x8000, 0x7800, 0x0100
FORMERR, SERVFAIL, NOTIMP = 1, 2, 4


def header_only(data: bytes, rcode: int) -> bytes:
    """A reply carrying only a header: the query's ID, opcode and RD, QR set, no sections.
    Built by hand so that a query dnslib cannot even parse (or a reply it cannot pack)
    still gets an answer."""
    qid, flags = struct.unpack("!HH", data[:4])
    return struct.pack("!HHHHHH", qid, _QR | (flags & (_OPCODE | _RD)) | rcode, 0, 0, 0, 0)


def _wire_length(qname: str) -> int:
    labels = [label for label in qname.rstrip(".").split(".") if label]
    return sum(len(label.encode("utf-8", "replace")) + 1 for label in labels) + 1


def answer(resolver: ClusterResolver, data: bytes, max_size: int | None = None, cache: bool = False) -> bytes | None:
    """The reply to one query packet, or None when it must not be answered (too short to be a
    query, or itself a response: answering those would let two servers ping-pong forever).
    Never raises: anything the resolver cannot do becomes FORMERR, NOTIMP or SERVFAIL."""
    if len(data) < 12 or data[2] & 0x80:
        return None
    if cache:
        cached = resolver.cache.get(data[2:])
        if cached is not None:
            return data[:2] + cached
    try:
        request = DNSRecord.parse(data)
    except Exception:  # noqa: BLE001 - dnslib raises many types on garbage
        return header_only(data, FORMERR)
    if request.header.opcode != 0:
        return header_only(data, NOTIMP)
    if len(request.questions) != 1:
        return header_only(data, FORMERR)
    qname = str(request.q.qname)
    if _wire_length(qname) > 255:  # RFC 1035 2.3.4: names are at most 255 octets
        return header_only(data, FORMERR)
    try:
        cacheable = cache and resolver.cacheable(qname)
        reply = resolver.resolve(request, None)
        raw = reply.pack()
        if max_size is not None:
            limit = max(UDP_PAYLOAD, min(request.ar[0].edns_len, 4096)) if request.ar and request.ar[0].rtype == QTYPE.OPT \
                else UDP_PAYLOAD
            if len(raw) > limit:
                raw = reply.truncate().pack()  # TC: the client asks again over TCP
                cacheable = False
    except Exception:  # noqa: BLE001 - one query must never take the server down
        return header_only(data, SERVFAIL)
    if cacheable:
        if len(resolver.cache) > CACHE_LIMIT:
            resolver.cache = {}
        resolver.cache[data[2:]] = raw[2:]
    return raw


class UDPServer(threading.Thread):
    """A single-threaded UDP loop with an answer cache: a repeated in-zone question costs one
    dict lookup and one sendto. Cache misses are resolved inline; forwarded questions go to a
    small pool so a slow upstream never stalls the loop. (dnslib's own server starts a thread
    per packet, which caps it at a few thousand queries per second.)"""

    def __init__(self, resolver: ClusterResolver, host: str, port: int) -> None:
        super().__init__(name="dns-udp", daemon=True)
        from concurrent.futures import ThreadPoolExecutor

        self.resolver = resolver
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.sock.bind((host, port))
        self.pool = ThreadPoolExecutor(8, thread_name_prefix="dns-forward")
        self.errors = 0

    def run(self) -> None:
        sock, resolver = self.sock, self.resolver
        while True:
            try:
                data, addr = sock.recvfrom(4096)
            except OSError:
                if sock.fileno() < 0:
                    return  # closed: shutting down
                continue
            try:
                cached = resolver.cache.get(data[2:]) if len(data) >= 12 and not data[2] & 0x80 else None
                if cached is not None:
                    self._send(data[:2] + cached, addr)
                elif len(data) >= 12 and not data[2] & 0x80 and self._forwarded(data):
                    self.pool.submit(self._answer, data, addr)
                else:
                    self._send(answer(resolver, data, max_size=UDP_PAYLOAD, cache=True), addr)
            except Exception as e:  # noqa: BLE001 - keep serving; say what happened
                self._report(e)

    def _forwarded(self, data: bytes) -> bool:
        """A question the resolver sends upstream (slow: not on the loop's thread)."""
        try:
            request = DNSRecord.parse(data)
            return len(request.questions) == 1 and not self.resolver.cacheable(str(request.q.qname))
        except Exception:  # noqa: BLE001 - answer() replies FORMERR
            return False

    def _answer(self, data: bytes, addr) -> None:
        try:
            self._send(answer(self.resolver, data, max_size=UDP_PAYLOAD), addr)
        except Exception as e:  # noqa: BLE001
            self._report(e)

    def _send(self, raw: bytes | None, addr) -> None:
        if raw is None:
            return
        try:
            self.sock.sendto(raw, addr)
        except OSError:
            pass  # source port 0, an unreachable or unroutable source: nobody to answer

    def _report(self, e: Exception) -> None:
        self.errors += 1
        if self.errors <= 10 or self.errors % 1000 == 0:
            print(f"podnet dns: udp: {e.__class__.__name__}: {e} ({self.errors} so far)", file=sys.stderr, flush=True)


class _TCPHandler(socketserver.BaseRequestHandler):
    """DNS over TCP (RFC 7766): length-prefixed messages, several per connection, until the
    client closes or stays idle for TCP_IDLE seconds."""

    def handle(self) -> None:
        server: TCPServer = self.server  # type: ignore[assignment]
        conn = self.request
        conn.settimeout(TCP_IDLE)
        try:
            while True:
                head = _recv_exactly(conn, 2)
                if head is None:
                    return
                data = _recv_exactly(conn, struct.unpack("!H", head)[0])
                if data is None:
                    return
                raw = answer(server.resolver, data)
                if raw is None:
                    continue
                conn.sendall(struct.pack("!H", len(raw)) + raw)
        except (OSError, socket.timeout):
            return


def _recv_exactly(conn: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


class TCPServer(BoundedThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True

    def __init__(self, resolver: ClusterResolver, host: str, port: int, max_connections: int = TCP_MAX_CONNECTIONS) -> None:
        self.resolver = resolver
        self.bound(max_connections)
        super().__init__((host, port), _TCPHandler)


def serve(store_url: str, listen: str, zone: str, upstream: str) -> None:
    host, _, port = listen.rpartition(":")
    up = None
    if upstream:
        uhost, _, uport = upstream.rpartition(":")
        up = (uhost or upstream, int(uport) if uport.isdigit() else 53)
    resolver = ClusterResolver(zone, up)
    store = open_store(store_url)
    stop = threading.Event()
    watcher = threading.Thread(target=follow, args=(store, resolver, zone, stop), name="dns-follow", daemon=True)
    watcher.start()
    udp = UDPServer(resolver, host or "0.0.0.0", int(port))
    udp.start()
    tcp = TCPServer(resolver, host or "0.0.0.0", int(port))
    threading.Thread(target=tcp.serve_forever, name="dns-tcp", daemon=True).start()
    print(f"podnet dns: serving {zone} on {listen} (udp+tcp), upstream {upstream or 'none'}", file=sys.stderr, flush=True)
    try:
        while udp.is_alive() and watcher.is_alive():
            time.sleep(1)
    finally:
        stop.set()
        tcp.shutdown()
    # only reached when a thread died: exit non-zero so the pod's supervisor restarts the server
    print("podnet dns: a server thread stopped; exiting", file=sys.stderr, flush=True)
    raise SystemExit(1)
