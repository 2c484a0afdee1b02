"""`podnet dns`: the cluster DNS server (UDP and TCP), answering from the store, forwarding
everything outside the cluster zone to an upstream resolver.

NXDOMAIN vs NODATA: a name that exists (a service, an endpoint hostname, or an empty
non-terminal such as `default.svc.cluster.local`) but has no record of the asked type gets
NOERROR with no answer; a name that does not exist gets NXDOMAIN. Both carry the zone's SOA.
"""

from __future__ import annotations

import json
import sys
import threading
import time

from dnslib import CNAME, PTR, QTYPE, RCODE, RR, SOA, SRV, TXT, A, DNSRecord
from dnslib.server import BaseResolver, DNSServer

from ..api.keys import SERVICES
from ..proxy.endpoints import SLICES
from ..store import Compacted, Store, StoreError, open_store
from . import records

PREFIXES = (SERVICES, SLICES)


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

    def set_index(self, index: records.Index) -> None:
        with self.lock:
            self.index = index
            self.cache = {}

    def cacheable(self, qname: str) -> bool:
        """In-zone answers only change with the index (forwarded ones have their own TTLs)."""
        return self.index.in_zone(qname) or qname.lower().endswith(".in-addr.arpa.") and self.index.lookup(qname)[0] == "ok"

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


def load_index(store: Store, zone: str) -> tuple[records.Index, int]:
    services, rev = store.list(PREFIXES[0])
    slices, rev2 = store.list(PREFIXES[1])
    by_svc = {}
    for kv in slices:
        ns, name = kv.key[len(PREFIXES[1]):].split("/", 1)
        by_svc[(ns, name)] = json.loads(kv.value)
    return records.build([json.loads(kv.value) for kv in services], by_svc, zone), max(rev, rev2)


def follow(store: Store, resolver: ClusterResolver, zone: str, stop: threading.Event) -> None:
    """Rebuild the index whenever a service or endpoint slice changes."""
    index, rev = load_index(store, zone)
    resolver.set_index(index)
    while not stop.is_set():
        try:
            events = store.watch("/podnet/", rev, 1.0)
        except Compacted:
            events, rev = [], store.revision()
        except StoreError:
            stop.wait(1)
            continue
        if events:
            rev = events[-1].revision
            if any(e.key.startswith(PREFIXES) for e in events):
                index, _ = load_index(store, zone)
                resolver.set_index(index)


CACHE_LIMIT = 100_000


class UDPServer(threading.Thread):
    """A single-threaded UDP loop with an answer cache: a repeated in-zone question costs one
    dict lookup and one sendto. Cache misses are resolved inline; forwarded questions go to a
    small pool so a slow upstream never stalls the loop. (dnslib's own server starts a thread
    per packet, which caps it at a few thousand queries per second.)"""

    def __init__(self, resolver: ClusterResolver, host: str, port: int) -> None:
        super().__init__(name="dns-udp", daemon=True)
        import socket
        from concurrent.futures import ThreadPoolExecutor

        self.resolver = resolver
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.sock.bind((host, port))
        self.pool = ThreadPoolExecutor(8, thread_name_prefix="dns-forward")

    def run(self) -> None:
        sock, resolver = self.sock, self.resolver
        while True:
            try:
                data, addr = sock.recvfrom(4096)
            except OSError:
                return
            if len(data) < 12:
                continue
            cached = resolver.cache.get(data[2:])
            if cached is not None:
                sock.sendto(data[:2] + cached, addr)
                continue
            try:
                request = DNSRecord.parse(data)
            except Exception:  # noqa: BLE001 - malformed packet: drop it, as servers do
                continue
            qname = str(request.q.qname)
            if resolver.cacheable(qname):
                raw = resolver.resolve(request, None).pack()
                if len(resolver.cache) > CACHE_LIMIT:
                    resolver.cache = {}
                resolver.cache[data[2:]] = raw[2:]
                sock.sendto(raw, addr)
            else:
                self.pool.submit(self._answer, request, addr)

    def _answer(self, request: DNSRecord, addr) -> None:
        try:
            self.sock.sendto(self.resolver.resolve(request, None).pack(), addr)
        except OSError:
            pass


def serve(store_url: str, listen: str, zone: str, upstream: str) -> None:
    host, _, port = listen.rpartition(":")
    up = None
    if upstream:
        uhost, _, uport = upstream.rpartition(":")
        up = (uhost or upstream, int(uport) if uport.isdigit() else 53)
    resolver = ClusterResolver(zone, up)
    store = open_store(store_url)
    stop = threading.Event()
    watcher = threading.Thread(target=follow, args=(store, resolver, zone, stop), daemon=True)
    watcher.start()
    udp = UDPServer(resolver, host or "0.0.0.0", int(port))
    udp.start()
    tcp = DNSServer(resolver, address=host or "0.0.0.0", port=int(port), tcp=True, logger=_QuietLogger())
    tcp.start_thread()
    print(f"podnet dns: serving {zone} on {listen} (udp+tcp), upstream {upstream or 'none'}", file=sys.stderr, flush=True)
    try:
        while udp.is_alive() and tcp.isAlive():
            time.sleep(1)
    finally:
        stop.set()
        tcp.stop()


class _QuietLogger:
    def __getattr__(self, name):
        return lambda *args, **kwargs: None
