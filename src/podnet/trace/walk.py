"""The walk: where would this packet go? Asked of the live kernel, namespace by namespace, the
way the kernel itself would decide, without sending anything.

In each namespace the packet is in:

    arrives on a bridge port    the bridge forwards the frame to the port whose far side owns
                                the next hop (L2: FDB), unless the frame is for the bridge itself
    service DNAT                the proxy's maps (table ip podnet_proxy: service-ips, service-
                                nodeports -> a mark; endpoints: mark . index -> address . port):
                                every endpoint is a candidate, the walk follows one (the first,
                                the client's affinity entry, or --endpoint)
    route lookup                `ip route get DST from SRC [iif IN]`, and `fibmatch` for the
                                table entry that matched; local -> delivery (or VXLAN decap)
    NetworkPolicy               on a node, for its own pods (egress where the source lives,
                                ingress where the destination lives): podnet's policy model
                                names the policy and rule; the kernel's isolation maps are shown
    masquerade                  the proxy's marks (hairpin, outside sources, NodePorts), the
                                agent's ip-masq rules (table inet podnet_agent), evaluated
    out device                  veth: into the namespace of its peer (link-netnsid), after
                                checking something answers ARP for the next hop; bridge: to the
                                port; vxlan: neighbour entry -> VTEP MAC, FDB -> the remote
                                underlay address, then the outer packet is walked the same way
                                until a VXLAN device of the same VNI and port decapsulates it

Nothing here runs a command: everything is read through a `Kernel` (podnet.trace.kernel),
which tests replace with canned output. The hop list is what `--probe` will check, namespace
by namespace and hook by hook.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ..proxy import maps as proxy_maps
from .inventory import Inventory, Place
from .kernel import Kernel, KernelError
from .model import (DELIVERED, DROPPED, FORWARDED, NO_NEIGHBOUR, NO_ROUTE, REFUSED, Endpoint, Evidence, Hop, Packet,
                    Trace)
from .netpol import explain

MAX_STEPS = 48
USABLE_NEIGHBOUR = {"PERMANENT", "REACHABLE", "STALE", "DELAY", "PROBE", "NOARP"}
NO_ROUTE_TYPES = {"unreachable", "blackhole", "prohibit", "throw"}
WILDCARDS = {"0.0.0.0", "*", "::", ""}


class TraceError(ValueError):
    """The trace cannot be made as asked (e.g. --endpoint names no endpoint of the service)."""


@dataclass
class Tunnel:
    inner: Packet                # the packet inside
    vni: int
    port: int
    device: str                  # the encapsulating device
    nexthop: str                 # the inner next hop (the remote VTEP's address)


class _Done(Exception):
    """The walk has its verdict."""


def _ipv4(text: str | None) -> bool:
    try:
        ipaddress.IPv4Address(text or "")
        return True
    except ValueError:
        return False


def _in_prefix(ip: str, right) -> bool | None:
    """nft JSON's right-hand side of an address match: an address, a prefix, a set of them."""
    if isinstance(right, str):
        try:
            return ipaddress.ip_address(ip) in ipaddress.ip_network(right, strict=False)
        except ValueError:
            return None
    if isinstance(right, dict) and "prefix" in right:
        net = ipaddress.ip_network(f"{right['prefix']['addr']}/{right['prefix']['len']}", strict=False)
        return ipaddress.ip_address(ip) in net
    if isinstance(right, dict) and "set" in right:
        results = [_in_prefix(ip, r) for r in right["set"]]
        return None if None in results else any(results)
    return None


def _elem_key(e):
    """A map element's key, without the wrapping nft adds for timeouts and comments."""
    key = e[0] if isinstance(e, list) else e
    if isinstance(key, dict) and "elem" in key:
        key = key["elem"].get("val")
    return key


def _concat(v) -> list:
    return v["concat"] if isinstance(v, dict) and "concat" in v else [v]


class Walk:
    def __init__(self, kernel: Kernel, inventory: Inventory, max_steps: int = MAX_STEPS) -> None:
        self.k = kernel
        self.inv = inventory
        self.max_steps = max_steps

    # -- entry point -------------------------------------------------------------------------
    def run(self, src: Endpoint, dst: Endpoint, proto: str = "tcp", sport: int | None = None,
            endpoint: str | None = None) -> Trace:
        """Walk from SRC to DST; a Trace with its verdict. TraceError: cannot be walked as asked."""
        self.trace = Trace(src, dst, proto)
        self.endpoint = endpoint
        self.pkt = Packet(src.ip, dst.ip, proto, sport, dst.port if proto != "icmp" else None)
        self.tunnels: list[Tunnel] = []
        self.masq: dict[str, str] = {}           # netns -> why the proxy marked the packet for masquerade
        self.policed: set[tuple[str, str]] = set()
        start = src.netns or self._owner_namespace(src.ip)
        if start is None:
            raise TraceError(f"SRC {src.spec!r}: {src.ip} is no pod's or node's address, nor one of the lab's "
                             "namespaces' (underlay, router): nowhere to start from")
        if src.ip == dst.ip:
            self.trace.notes.append("source and destination are the same address: the packet stays on loopback")
        where: tuple[str, str | None, str | None] | None = (start, None, None)
        try:
            for _ in range(self.max_steps):
                where = self._namespace(*where)
            hop = self._hop(where[0], "route", where[1], None, "the walk goes round in circles (a routing loop?)",
                            result="drop")
            self._finish(DROPPED, f"no verdict after {self.max_steps} steps: a routing loop", hop)
        except _Done:
            pass
        if endpoint and not any(h.stage == "dnat" for h in self.trace.hops):
            self.trace.notes.append(f"--endpoint {endpoint} not used: no service DNAT on the path")
        return self.trace

    # -- readings (cached by the Kernel) -----------------------------------------------------
    def _links(self, ns: str) -> list[dict]:
        return self.k.links(ns).data

    def _link(self, ns: str, name: str | None) -> dict | None:
        return next((l for l in self._links(ns) if l.get("ifname") == name), None) if name else None

    @staticmethod
    def _kind(link: dict | None) -> str:
        return ((link or {}).get("linkinfo") or {}).get("info_kind", "") if link else ""

    def _addresses(self, ns: str) -> list[tuple[str, str, int]]:
        """(device, address, prefix length) of every IPv4 address of a namespace."""
        try:
            data = self.k.addresses(ns).data
        except KernelError:
            return []
        return [(l["ifname"], a["local"], a.get("prefixlen", 32)) for l in data for a in l.get("addr_info", [])
                if a.get("family") == "inet"]

    def _owns(self, ns: str, ip: str | None) -> bool:
        return bool(ip) and any(a == ip for _, a, _ in self._addresses(ns))

    def _owner_namespace(self, ip: str) -> str | None:
        return next((ns for ns in self.inv.host_netns() if self._owns(ns, ip)), None)

    def _peer(self, ns: str, link: dict) -> tuple[str, dict] | None:
        """The far end of a veth: (its namespace, its link)."""
        nsid = link.get("link_netnsid")
        peer_ns = ns
        if nsid is not None:
            ids = {e.get("nsid"): e.get("name") for e in self.k.netns_ids(ns).data}
            peer_ns = ids.get(nsid)
            if not peer_ns:
                return None
        index = link.get("link_index")
        try:
            peer = next((l for l in self._links(peer_ns) if l.get("ifindex") == index), None)
        except KernelError:
            return None
        return (peer_ns, peer) if peer else None

    def _neighbour(self, ns: str, dev: str, ip: str) -> tuple[dict | None, str]:
        r = self.k.neighbours(ns, dev)
        return next((n for n in r.data if n.get("dst") == ip), None), r.cmd

    # -- hops --------------------------------------------------------------------------------
    def _place(self, ns: str) -> Place:
        return self.inv.place(ns)

    def _hop(self, ns: str, stage: str, in_: str | None, out: str | None, decision: str, result: str = "pass",
             highlight: str = "", hook: str | None = None, evidence: list[Evidence] | None = None) -> Hop:
        place = self._place(ns)
        label = f"{place.kind} {place.label}" if place.kind in ("pod", "node") else place.label
        inner, outer = (self.tunnels[0].inner, self.pkt) if self.tunnels else (self.pkt, None)
        return self.trace.add(Hop(place.node, ns, label, stage, in_, out, decision, inner.copy(), result, highlight,
                                  hook, outer.copy() if outer else None, [], list(evidence or [])))

    def _finish(self, verdict: str, reason: str, hop: Hop | None = None, responsible: list[dict] | None = None):
        self.trace.finish(verdict, reason, hop, responsible)
        raise _Done()

    # -- one namespace -----------------------------------------------------------------------
    def _namespace(self, ns: str, in_dev: str | None, nexthop: str | None):
        """The packet is in `ns` (arrived on in_dev, addressed at L2 to `nexthop`; both None when
        it starts here): where it goes next, as (namespace, in device, next hop)."""
        if in_dev is not None:
            link = self._link(ns, in_dev)
            master = (link or {}).get("master")
            if master and self._kind(self._link(ns, master)) == "bridge":
                if not self._owns(ns, nexthop):
                    return self._bridge(ns, master, in_dev, nexthop)
                in_dev = master  # a frame for the bridge itself: up to IP
        return self._l3(ns, in_dev)

    def _l3(self, ns: str, in_dev: str | None):
        pkt, originating = self.pkt, in_dev is None
        if not self.tunnels:
            self._dnat(ns, in_dev)
        pkt = self.pkt
        args = {"src": pkt.src, "iif": in_dev, "proto": pkt.proto, "sport": pkt.sport, "dport": pkt.dport}
        try:
            r = self.k.route_get(ns, pkt.dst, **args)
        except KernelError as e:
            hop = self._hop(ns, "route", in_dev, None, f"route get {pkt.dst}: {e.message}", "no-route", e.message,
                            "output" if originating else "prerouting", [Evidence(e.cmd, e.message)])
            self._finish(NO_ROUTE, f"{hop.place} has no route to {pkt.dst}: {e.message}", hop)
        route = (r.data or [{}])[0]
        rtype = route.get("type", "unicast")
        ev = [Evidence(r.cmd, self._route_text(route), route)]
        if rtype == "local":
            return self._local(ns, in_dev, ev)
        if rtype in NO_ROUTE_TYPES or not route.get("dev"):
            hop = self._hop(ns, "route", in_dev, None, f"route get {pkt.dst}: {rtype}", "no-route", rtype,
                            "output" if originating else "forward", ev)
            self._finish(NO_ROUTE, f"{hop.place}: the route to {pkt.dst} is {rtype}", hop)
        out, gw = route["dev"], route.get("gateway")
        nexthop = gw or pkt.dst
        try:
            fib = self.k.route_get(ns, pkt.dst, fibmatch=True, **args)
            entry = (fib.data or [{}])[0]
            ev.append(Evidence(fib.cmd, "matched " + self._route_text(entry), entry))
            matched = f" (route {self._route_text(entry)})"
        except KernelError:
            matched = ""
        via = f"via {gw} dev {out}" if gw else f"dev {out}"
        where = f"from {in_dev}: " if in_dev else ""
        what = "outer " if self.tunnels else ""
        hop = self._hop(ns, "route", in_dev, out, f"{where}{what}{pkt.dst} {via}{matched}", highlight=via,
                        hook="output" if originating else "forward", evidence=ev)
        if not originating:
            self._policy(ns, "forward")
        self._masquerade(ns, out, nexthop)
        link = self._link(ns, out)
        kind = self._kind(link)
        if kind == "vxlan":
            return self._encapsulate(ns, link, nexthop)
        if kind == "veth":
            return self._cross(ns, link, nexthop, hop)
        if kind == "bridge":
            return self._bridge(ns, out, None, nexthop)
        leave = self._hop(ns, "leave", None, out, f"leaves through {out} ({kind or 'device'}) towards {nexthop}: "
                          "not followed further", "leave", out, "postrouting")
        self._finish(FORWARDED, f"left {leave.place} through {out} towards {nexthop}", leave)

    @staticmethod
    def _route_text(route: dict) -> str:
        parts = [route.get("type", "")] if route.get("type") not in (None, "unicast") else []
        parts.append(route.get("dst", "?"))
        if route.get("gateway"):
            parts.append(f"via {route['gateway']}")
        if route.get("dev"):
            parts.append(f"dev {route['dev']}")
        if route.get("protocol"):
            parts.append(f"proto {route['protocol']}")
        if route.get("table"):
            parts.append(f"table {route['table']}")
        parts += [f for f in route.get("flags", []) if f]
        return " ".join(parts)

    # -- service DNAT ------------------------------------------------------------------------
    def _dnat(self, ns: str, in_dev: str | None) -> None:
        pkt = self.pkt
        if pkt.proto not in proxy_maps.PROTOCOLS or not pkt.dport:
            return
        table = proxy_maps.TABLE
        ips = self.k.nft(ns, "map", proxy_maps.FAMILY, table, "service-ips")
        if ips is None:
            return  # no proxy in this namespace
        hook = "output" if in_dev is None else "prerouting"
        key = [pkt.dst, pkt.proto, pkt.dport]
        found = self._lookup(ips.data, key)
        frontend, nodeport, source = f"{pkt.dst}:{pkt.dport} {pkt.proto}", False, ips
        local = self._owns(ns, pkt.dst) and not pkt.dst.startswith("127.")
        if found is None and local:
            ports = self.k.nft(ns, "map", proxy_maps.FAMILY, table, "service-nodeports")
            found = self._lookup(ports.data, [pkt.proto, pkt.dport]) if ports else None
            nodeport, source = True, ports
            frontend = f"NodePort {pkt.proto}/{pkt.dport} on {pkt.dst}"
        svc = self.inv.service_for(pkt.dst, pkt.proto, pkt.dport, nodeport)
        svc_name = f"{svc['metadata'].get('namespace', 'default')}/{svc['metadata']['name']}" if svc else None
        if found is None:
            self._no_endpoints(ns, in_dev, hook, local, svc, svc_name)
            return
        mark = found
        n = mark >> proxy_maps.N_SHIFT & proxy_maps.N_MAX
        eps = self.k.nft(ns, "map", proxy_maps.FAMILY, table, "endpoints")
        by_index = {}
        for e in (eps.data[0]["map"].get("elem", []) if eps and eps.data else []):
            k = _concat(_elem_key(e))
            if len(k) == 2 and k[0] == mark:
                ip, port = _concat(e[1])
                by_index[k[1]] = (ip, int(port))
        candidates = [by_index[i] for i in range(n) if i in by_index]
        evidence = [Evidence(source.cmd, f"{frontend} -> mark 0x{mark:08x} ({n} endpoints)",
                             {"key": key, "mark": mark}),
                    Evidence(eps.cmd if eps else "", ", ".join(f"0x{mark:08x} . {i} : {ip} . {p}"
                                                               for i, (ip, p) in enumerate(candidates)),
                             [[mark, i, ip, p] for i, (ip, p) in enumerate(candidates)])]
        label = f"Service {svc_name}" if svc_name else "a Service"
        if not candidates:
            hop = self._hop(ns, "dnat", in_dev, None, f"{frontend} is {label}, but the endpoints map holds none of "
                            f"its {n} endpoints", "drop", "none", hook, evidence)
            self._finish(DROPPED, f"{label}: no endpoint in the proxy's endpoints map", hop, self._svc_ref(svc))
        chosen, how = candidates[0], "the first"
        if mark & proxy_maps.AFFINITY:
            aff = self.k.nft(ns, "map", proxy_maps.FAMILY, table, "affinity")
            for e in (aff.data[0]["map"].get("elem", []) if aff and aff.data else []):
                if _concat(_elem_key(e)) == [pkt.src, mark]:
                    ip, port = _concat(e[1])
                    chosen, how = (ip, int(port)), "the client's affinity entry"
                    evidence.append(Evidence(aff.cmd, f"affinity {pkt.src} . 0x{mark:08x} : {ip} . {port}", e))
        if self.endpoint:
            want_ip, _, want_port = self.endpoint.partition(":")
            pick = [c for c in candidates if c[0] == want_ip and (not want_port or str(c[1]) == want_port)]
            if not pick:
                raise TraceError(f"--endpoint {self.endpoint}: not an endpoint of {label} "
                                 f"(endpoints: {', '.join(f'{ip}:{p}' for ip, p in candidates)})")
            chosen, how = pick[0], "--endpoint"
        if mark & proxy_maps.MASQ_ALL:
            self.masq[ns] = "NodePort/LoadBalancer traffic (externalTrafficPolicy Cluster) is masqueraded"
        elif mark & proxy_maps.MASQ_OUTSIDE and not self.inv.in_cluster(pkt.src):
            self.masq[ns] = f"{pkt.src} is outside the cluster network: masqueraded"
        if chosen[0] == pkt.src:
            self.masq[ns] = "hairpin (a pod reaching itself through its Service): masqueraded"
        self.pkt = pkt.copy(dst=chosen[0], dport=chosen[1])
        target = f"{chosen[0]}:{chosen[1]}"
        others = f"{len(candidates)} endpoints, following {how}" if len(candidates) > 1 else "its only endpoint"
        hop = self._hop(ns, "dnat", in_dev, None, f"{frontend} is {label}: DNAT to {target} ({others})",
                        highlight=f"DNAT to {target}", hook=hook, evidence=evidence)
        hop.candidates = [f"{ip}:{p}" for ip, p in candidates]

    @staticmethod
    def _lookup(data: list, key: list):
        if not data:
            return None
        for e in data[0].get("map", {}).get("elem", []) or []:
            if _concat(_elem_key(e)) == key:
                return e[1]
        return None

    def _no_endpoints(self, ns, in_dev, hook, local, svc, svc_name) -> None:
        pkt = self.pkt
        checks = [("no-endpoint-services", [pkt.dst, pkt.proto, pkt.dport])]
        if local:
            checks.append(("no-endpoint-nodeports", [pkt.proto, pkt.dport]))
        for name, key in checks:
            m = self.k.nft(ns, "map", proxy_maps.FAMILY, proxy_maps.TABLE, name)
            verdict = self._lookup(m.data, key) if m else None
            if verdict is not None:
                how = "rejected (ICMP port unreachable)" if "goto" in (verdict or {}) else "dropped"
                label = f"Service {svc_name}" if svc_name else "a Service"
                hop = self._hop(ns, "dnat", in_dev, None, f"{pkt.dst}:{pkt.dport} {pkt.proto} is {label}, which has "
                                f"no endpoints: {how}", "drop", how, hook, [Evidence(m.cmd, f"{name}: {key}", verdict)])
                self._finish(DROPPED, f"{label} has no ready endpoints: {how}", hop, self._svc_ref(svc))

    @staticmethod
    def _svc_ref(svc: dict | None) -> list[dict]:
        if not svc:
            return []
        return [{"kind": "Service", "namespace": svc["metadata"].get("namespace", "default"),
                 "name": svc["metadata"]["name"]}]

    # -- NetworkPolicy -----------------------------------------------------------------------
    def _policy(self, ns: str, hook: str) -> None:
        place = self._place(ns)
        if place.kind != "node" or self.tunnels:
            return
        world, pkt = self.inv.world, self.pkt
        proto, port = pkt.proto.upper(), pkt.dport or 0
        src, dst = world.pod_by_ip(pkt.src), world.pod_by_ip(pkt.dst)
        if src is not None and dst is not None and src == dst:
            return
        checks = []
        if src is not None and src.node == place.node:
            checks.append(("egress", src, pkt.dst))
        if dst is not None and dst.node == place.node and hook == "forward":
            checks.append(("ingress", dst, pkt.src))
        for direction, pod, peer in checks:
            if (direction, pod.ip) in self.policed:
                continue
            self.policed.add((direction, pod.ip))
            ex = explain(world, direction, pod, peer, port, proto)
            evidence = [Evidence(f"store: NetworkPolicy {r['namespace']}/{r['name']}",
                                 f"{direction} rule {r['rule']}" if r["rule"] is not None else f"isolates for {direction}",
                                 r) for r in ex.responsible()]
            evidence += [Evidence("policy model", m) for m in ex.misses]
            kernel_isolates = self._isolated_in_kernel(ns, direction, pod.ip, evidence)
            if kernel_isolates is not None and kernel_isolates != bool(ex.isolating):
                self.trace.notes.append(
                    f"{place.label}: the kernel {'isolates' if kernel_isolates else 'does not yet isolate'} "
                    f"{pod.namespace}/{pod.name} for {direction}, the policies say it should "
                    f"{'' if ex.isolating else 'not '}be (the agent has not caught up?)")
            hop = self._hop(ns, "policy", None, None, ex.text, "pass" if ex.allowed else "drop",
                            "allowed" if ex.allowed else "isolated", hook, evidence)
            if not ex.allowed:
                names = ", ".join(f"{r['namespace']}/{r['name']}" for r in ex.responsible())
                self._finish(DROPPED, f"NetworkPolicy {names} ({direction} of {pod.namespace}/{pod.name}): no rule "
                             f"allows {pkt.flow()}", hop, ex.responsible())

    def _isolated_in_kernel(self, ns: str, direction: str, ip: str, evidence: list[Evidence]) -> bool | None:
        m = self.k.nft(ns, "map", "ip", "podnet_policy", f"{direction}-isolated")
        if m is None or not m.data:
            return None
        for e in m.data[0].get("map", {}).get("elem", []) or []:
            if _elem_key(e) == ip:
                verdict = e[1] if isinstance(e, list) and len(e) > 1 else None
                text = " ".join(f"{k} {v.get('target', '')}".strip() if isinstance(v, dict) else k
                                for k, v in verdict.items()) if isinstance(verdict, dict) else str(verdict)
                evidence.append(Evidence(m.cmd, f"{direction}-isolated: {ip} : {text}", e))
                return True
        evidence.append(Evidence(m.cmd, f"{direction}-isolated: no element for {ip}", None))
        return False

    # -- masquerade --------------------------------------------------------------------------
    def _masquerade(self, ns: str, out: str, nexthop: str) -> None:
        pkt = self.pkt
        why = self.masq.pop(ns, None)
        evidence: list[Evidence] = []
        if why is None:
            table = self.k.nft(ns, "table", "inet", "podnet_agent")
            why, evidence = self._masq_rule(table, pkt) if table else (None, [])
        if why is None:
            return
        addrs = [(a, plen) for dev, a, plen in self._addresses(ns) if dev == out]
        new = next((a for a, plen in addrs if _ipv4(nexthop) and
                    ipaddress.ip_address(nexthop) in ipaddress.ip_network(f"{a}/{plen}", strict=False)), None)
        new = new or (addrs[0][0] if addrs else None)
        if new is None:
            return
        old = pkt.src
        self.pkt = pkt.copy(src=new, sport=None)
        self._hop(ns, "masquerade", None, out, f"{why}: source {old} becomes {new} ({out}'s address)",
                  highlight=f"becomes {new}", hook="postrouting", evidence=evidence)

    @staticmethod
    def _masq_rule(table, pkt: Packet) -> tuple[str | None, list[Evidence]]:
        """The first masquerade rule of a nat postrouting chain whose address matches all hold."""
        chains = {o["chain"]["name"] for o in table.data if "chain" in o and o["chain"].get("hook") == "postrouting"}
        for o in table.data:
            rule = o.get("rule")
            if not rule or rule.get("chain") not in chains:
                continue
            exprs = rule.get("expr", [])
            if not any("masquerade" in e for e in exprs):
                continue
            ok = True
            for e in exprs:
                m = e.get("match")
                if m is None:
                    continue
                left = (m.get("left") or {}).get("payload", {})
                if left.get("protocol") != "ip" or left.get("field") not in ("saddr", "daddr"):
                    ok = False  # a match this reader does not model: do not claim it
                    break
                hit = _in_prefix(pkt.src if left["field"] == "saddr" else pkt.dst, m.get("right"))
                if hit is None or hit != (m.get("op") in ("==", "in")):
                    ok = False
                    break
            if ok:
                text = f"ip-masq rule \"{rule.get('comment', '')}\"" if rule.get("comment") else "an ip-masq rule"
                return (f"{pkt.dst} is outside the cluster network, {text}",
                        [Evidence(table.cmd, f"inet {rule.get('table')} {rule['chain']} handle {rule.get('handle')}",
                                  rule)])
        return None, []

    # -- crossings ---------------------------------------------------------------------------
    def _cross(self, ns: str, link: dict, nexthop: str, route_hop: Hop):
        """Out through a veth: into the namespace of its far end."""
        dev = link["ifname"]
        peer = self._peer(ns, link)
        if peer is None:
            hop = self._hop(ns, "leave", None, dev, f"{dev}'s far end is in a namespace without a name: not "
                            "followed further", "leave", dev, "postrouting")
            self._finish(FORWARDED, f"left {hop.place} through {dev}", hop)
        peer_ns, peer_link = peer
        place = self._place(peer_ns)
        peer_dev = peer_link["ifname"]
        entry, cmd = self._neighbour(ns, dev, nexthop)
        state = ",".join(entry.get("state", [])) if entry else ""
        if entry and entry.get("lladdr"):
            route_hop.evidence.append(Evidence(cmd, f"neighbour {nexthop} lladdr {entry['lladdr']} {state}", entry))
        master = peer_link.get("master")
        where = f"{place.label} {peer_dev}" + (f" (port of {master})" if master else "")
        route_hop.decision += f" -> {where}"
        if not master:
            answered = self._owns(peer_ns, nexthop)
            how = f"{nexthop} is {place.label}'s address"
            if not answered and self.k.sysctl(peer_ns, f"net/ipv4/conf/{peer_dev}/proxy_arp") == "1":
                answered, how = True, f"{peer_dev} answers ARP for {nexthop} by proxy ARP"
            if not answered and entry and set(entry.get("state", [])) & USABLE_NEIGHBOUR:
                answered, how = True, f"neighbour entry {state}"
            if not answered:
                hop = self._hop(ns, "neighbour", None, dev, f"nothing behind {dev} ({where}) answers ARP for {nexthop}",
                                "no-neighbour", nexthop, None,
                                [Evidence(cmd, f"no usable neighbour entry for {nexthop}", entry)])
                self._finish(NO_NEIGHBOUR, f"{hop.place}: no neighbour {nexthop} behind {dev}", hop)
            if not entry:
                route_hop.evidence.append(Evidence(cmd, f"no neighbour entry yet for {nexthop}: ARP resolves it ({how})"))
        return peer_ns, peer_dev, nexthop

    def _bridge(self, ns: str, bridge: str, from_port: str | None, nexthop: str | None):
        """A bridge forwards the frame for `nexthop` to the port whose far side owns it."""
        if not nexthop:
            hop = self._hop(ns, "bridge", from_port, None, f"{bridge}: no next hop to forward to", "no-neighbour")
            self._finish(NO_NEIGHBOUR, f"{bridge}: nowhere to forward", hop)
        ports = [l for l in self._links(ns) if l.get("master") == bridge and l.get("ifname") != from_port]
        hint = None
        pod = self.inv.pod_by_ip(nexthop)
        if pod is not None:
            hint = self.inv.pod_netns(pod)
        elif self.inv.node_by_ip(nexthop):
            hint = self.inv.node_netns.get(self.inv.node_by_ip(nexthop))
        found = None
        ids = {e.get("nsid"): e.get("name") for e in self.k.netns_ids(ns).data} \
            if any(p.get("link_netnsid") is not None for p in ports) else {}
        veths = [p for p in ports if self._kind(p) == "veth"]
        veths.sort(key=lambda p: 0 if ids.get(p.get("link_netnsid")) == hint else 1)  # the likely owner first
        for port in veths:
            peer = self._peer(ns, port)
            if peer is not None and self._owns(peer[0], nexthop):
                found = (port, peer)
                break
        in_ = from_port or bridge
        if found is None:
            hop = self._hop(ns, "bridge", in_, None, f"{bridge}: no port leads to {nexthop} (nothing would answer ARP)",
                            "no-neighbour", nexthop, None)
            self._finish(NO_NEIGHBOUR, f"{hop.place}: no neighbour {nexthop} on {bridge}", hop)
        port, (peer_ns, peer_link) = found
        mac = peer_link.get("address", "")
        evidence = []
        try:
            fdb = self.k.fdb(ns, bridge=bridge)
            entry = next((e for e in fdb.data if e.get("mac") == mac and "self" not in e.get("flags", [])), None)
            if entry:
                evidence.append(Evidence(fdb.cmd, f"FDB {mac} on {entry.get('ifname')} ({entry.get('state', 'learned')})",
                                         entry))
                if entry.get("ifname") != port["ifname"]:
                    self.trace.notes.append(f"{bridge}'s FDB has {mac} on {entry.get('ifname')}, not on "
                                            f"{port['ifname']} where its owner is")
            else:
                evidence.append(Evidence(fdb.cmd, f"{mac} not learned yet: the bridge floods, {port['ifname']} delivers"))
        except KernelError as e:
            evidence.append(Evidence(e.cmd, e.message))
        if from_port is None:
            entry, cmd = self._neighbour(ns, bridge, nexthop)
            if entry:
                evidence.append(Evidence(cmd, f"neighbour {nexthop} lladdr {entry.get('lladdr')} "
                                         f"{','.join(entry.get('state', []))}", entry))
        place = self._place(peer_ns)
        self._hop(ns, "bridge", in_, port["ifname"], f"{bridge}: {nexthop} ({mac}) is behind port {port['ifname']} -> "
                  f"{place.label} {peer_link['ifname']}", highlight=f"port {port['ifname']}", evidence=evidence)
        if from_port is not None:
            self._policy(ns, "forward")  # bridged between two ports: the forward hook sees it (br_netfilter)
        return peer_ns, peer_link["ifname"], nexthop

    # -- VXLAN -------------------------------------------------------------------------------
    def _encapsulate(self, ns: str, link: dict, nexthop: str):
        dev = link["ifname"]
        info = (link.get("linkinfo") or {}).get("info_data") or {}
        vni, port, local = info.get("id"), info.get("port", 4789), info.get("local")
        entry, ncmd = self._neighbour(ns, dev, nexthop)
        evidence = [Evidence(self.k.links(ns).cmd, f"{dev}: vxlan id {vni} dstport {port} local {local}", info)]
        if not entry or not entry.get("lladdr") or not set(entry.get("state", [])) & USABLE_NEIGHBOUR:
            evidence.append(Evidence(ncmd, f"no neighbour entry for {nexthop} on {dev}", entry))
            hop = self._hop(ns, "encapsulate", None, dev, f"{dev}: no neighbour entry for VTEP {nexthop}: the frame "
                            "has no destination MAC", "no-neighbour", f"no neighbour entry for VTEP {nexthop}",
                            "postrouting", evidence)
            self._finish(NO_NEIGHBOUR, f"{hop.place}: {dev} has no neighbour entry for {nexthop}", hop)
        mac = entry["lladdr"]
        evidence.append(Evidence(ncmd, f"neighbour {nexthop} lladdr {mac} {','.join(entry.get('state', []))}", entry))
        fdb = self.k.fdb(ns, dev=dev)
        fentry = next((e for e in fdb.data if e.get("mac") == mac and e.get("dst")), None)
        remote = fentry["dst"] if fentry else info.get("remote") or info.get("group")
        if not remote:
            evidence.append(Evidence(fdb.cmd, f"no FDB entry for {mac} on {dev}", fdb.data))
            hop = self._hop(ns, "encapsulate", None, dev, f"{dev}: VTEP {nexthop} is {mac}, but no FDB entry says "
                            f"which node has {mac}", "no-neighbour", f"no FDB entry for {mac}", "postrouting", evidence)
            self._finish(NO_NEIGHBOUR, f"{hop.place}: {dev} has no FDB entry for {mac} (VTEP {nexthop})", hop)
        evidence.append(Evidence(fdb.cmd, f"FDB {mac} dst {remote}" if fentry else f"device remote {remote}", fentry))
        if not local:
            local = next((a for d, a, _ in self._addresses(ns) if d == info.get("link")), None) or ""
        node = self.inv.node_by_ip(remote)
        outer = Packet(local, remote, "udp", None, port)
        self.tunnels.append(Tunnel(self.pkt, vni, port, dev, nexthop))
        inner, self.pkt = self.pkt, outer
        hop = self._hop(ns, "encapsulate", None, dev,
                        f"{dev}: VTEP {nexthop} is {mac}, FDB: {mac} is at {remote}" + (f" ({node})" if node else "")
                        + f"; VXLAN VNI {vni}, outer {local} -> {remote} udp/{port}",
                        highlight=f"{remote}" + (f" ({node})" if node else ""), hook="postrouting", evidence=evidence)
        hop.packet = inner.copy()
        return ns, None, None

    def _local(self, ns: str, in_dev: str | None, evidence: list[Evidence]):
        pkt = self.pkt
        if self.tunnels and pkt.proto == "udp":
            t = self.tunnels[-1]
            vx = next((l for l in self._links(ns) if self._kind(l) == "vxlan"
                       and ((l.get("linkinfo") or {}).get("info_data") or {}).get("port", 4789) == pkt.dport
                       and ((l.get("linkinfo") or {}).get("info_data") or {}).get("id") == t.vni), None)
            if vx is None:
                hop = self._hop(ns, "decapsulate", in_dev, None, f"no VXLAN device with VNI {t.vni} on udp/{pkt.dport} "
                                f"here: the datagram is dropped", "drop", f"no VXLAN device with VNI {t.vni}", "input",
                                evidence)
                self._finish(DROPPED, f"{hop.place} has no VXLAN device for VNI {t.vni} port {pkt.dport}", hop)
            guard = self.k.nft(ns, "set", "ip", "podnet_overlay", "peers")
            if guard is not None and guard.data:
                peers = [e if isinstance(e, str) else _elem_key(e) for e in guard.data[0].get("set", {}).get("elem", [])]
                evidence.append(Evidence(guard.cmd, f"VXLAN accepted from: {', '.join(map(str, peers))}", peers))
                if pkt.src not in peers:
                    hop = self._hop(ns, "decapsulate", in_dev, vx["ifname"], f"VXLAN from {pkt.src}, which is not a "
                                    "peer node: dropped by the overlay guard", "drop", "not a peer node", "input",
                                    evidence)
                    self._finish(DROPPED, f"{hop.place}: VXLAN from {pkt.src} is not from a peer node", hop,
                                 [{"kind": "nftables", "name": "ip podnet_overlay input"}])
            self.tunnels.pop()
            outer, self.pkt = pkt, t.inner
            hop = self._hop(ns, "decapsulate", in_dev, vx["ifname"], f"udp/{pkt.dport} from {outer.src} to a local "
                            f"address: {vx['ifname']} (VNI {t.vni}) decapsulates", highlight=f"{vx['ifname']} (VNI {t.vni})",
                            hook="input", evidence=evidence)
            hop.outer = outer.copy()
            return ns, vx["ifname"], t.nexthop
        if in_dev is not None:
            self._policy(ns, "input")
        return self._deliver(ns, in_dev, evidence)

    # -- delivery ----------------------------------------------------------------------------
    def _deliver(self, ns: str, in_dev: str | None, evidence: list[Evidence]):
        pkt = self.pkt
        place = self._place(ns)
        hook = "input" if in_dev else "output"
        if pkt.proto == "icmp":
            hop = self._hop(ns, "deliver", in_dev, None, f"{pkt.dst} is local: the kernel answers the echo request",
                            "deliver", f"{pkt.dst} is local", hook, evidence)
            self._finish(DELIVERED, f"{pkt.flow()} reaches {place.label}", hop)
        if not pkt.dport:
            hop = self._hop(ns, "deliver", in_dev, None, f"{pkt.dst} is local (no port given: listeners not checked)",
                            "deliver", f"{pkt.dst} is local", hook, evidence)
            self._finish(DELIVERED, f"{pkt.flow()} reaches {place.label}", hop)
        try:
            ss = self.k.listening(ns, pkt.proto)
            listeners = ss.data
            evidence = evidence + [Evidence(ss.cmd, f"{len(listeners)} {pkt.proto} sockets listening",
                                            [list(s) for s in listeners])]
        except KernelError as e:
            listeners = None
            evidence = evidence + [Evidence(e.cmd, e.message)]
        sock = next((s for s in listeners or [] if s[1] == pkt.dport and (s[0] in WILDCARDS or s[0] == pkt.dst
                                                                           or s[0] == f"::ffff:{pkt.dst}")), None)
        if listeners is None:
            hop = self._hop(ns, "deliver", in_dev, None, f"{pkt.dst} is local (could not read its sockets)", "deliver",
                            f"{pkt.dst} is local", hook, evidence)
            self._finish(DELIVERED, f"{pkt.flow()} reaches {place.label}; listeners not known", hop)
        if sock is None:
            answer = "a TCP reset" if pkt.proto == "tcp" else "ICMP port unreachable"
            hop = self._hop(ns, "deliver", in_dev, None, f"{pkt.dst} is local, but nothing listens on "
                            f"{pkt.proto}/{pkt.dport}: the kernel answers with {answer}", "refused",
                            f"nothing listens on {pkt.proto}/{pkt.dport}", hook, evidence)
            self._finish(REFUSED, f"{pkt.flow()} reaches {place.label}, where nothing listens on {pkt.proto}/{pkt.dport}",
                         hop)
        who = f"{sock[2]} " if sock[2] else ""
        hop = self._hop(ns, "deliver", in_dev, None, f"{pkt.dst} is local; {who}listens on {sock[0] or '*'}:{sock[1]}",
                        "deliver", f"{who}listens on {sock[0] or '*'}:{sock[1]}".strip(), hook, evidence)
        self._finish(DELIVERED, f"{pkt.flow()} reaches {place.label}" + (f" ({place.node})" if place.kind == "pod" else "")
                     + f", where {who}listens", hop)


def walk(kernel: Kernel, inventory: Inventory, src: Endpoint, dst: Endpoint, proto: str = "tcp",
         sport: int | None = None, endpoint: str | None = None) -> Trace:
    return Walk(kernel, inventory).run(src, dst, proto, sport, endpoint)
