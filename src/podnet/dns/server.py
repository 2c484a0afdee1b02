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

from ..store import Compacted, Store, StoreError, open_store
from . import records

PREFIXES = ("/podnet/services/", "/podnet/endpointslices/")


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

    def set_index(self, index: records.Index) -> None:
        with self.lock:
            self.index = index

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
    servers = [DNSServer(resolver, address=host or "0.0.0.0", port=int(port), tcp=tcp, logger=_QuietLogger())
               for tcp in (False, True)]
    for s in servers:
        s.start_thread()
    print(f"podnet dns: serving {zone} on {listen} (udp+tcp), upstream {upstream or 'none'}", file=sys.stderr, flush=True)
    try:
        while all(s.isAlive() for s in servers):
            time.sleep(1)
    finally:
        stop.set()
        for s in servers:
            s.stop()


class _QuietLogger:
    def __getattr__(self, name):
        return lambda *args, **kwargs: None
