"""Services as elements of a fixed set of nftables maps: a ruleset whose chains do not grow with
services or endpoints (issue 11's design; the agent still uses podnet.proxy.render).

Every service port becomes one or two *targets* (what traffic from inside the cluster is sent
to, and what traffic from outside is sent to when the external policy differs). A target has a
mark, set once per connection in `ct mark`:

    bit 31       ClientIP affinity
    bit 30       masquerade always (NodePort / LoadBalancer with externalTrafficPolicy Cluster)
    bit 29       masquerade when the source is outside the cluster network (ClusterIP)
    bits 18-28   n, the number of endpoints (1..2047)
    bits 0-17    the target's id (1..262143), stable while the target exists

    map service-ips        daddr . l4proto . dport  -> mark     ClusterIPs and LoadBalancer IPs
    map service-nodeports  l4proto . dport          -> mark     on every local address
    map dispatch           mark & n-bits            -> goto pick-<n>   (one chain per distinct n)
    map endpoints          mark . index             -> endpoint address . port
    map remember           mark                     -> jump remember-<timeout>  (affinity)
    map affinity           saddr . mark             -> endpoint    (dynamic, filled by packets)
    set hairpin            endpoint . endpoint       masquerade a pod reaching itself
    map no-endpoint-*      as in render.py: reject (or drop) at once

    chain pick-<n>:  dnat ip to ct mark . numgen random mod <n> map @endpoints

A change to one service is a handful of element adds and deletes: libnftables then reads only
the few chains and sets of this table, not a ruleset that grows with the cluster (measured:
0.1-0.7 ms to add an element to a 100,000-element map, where a per-service-chain ruleset of
10,000 services costs ~3 s per command on nft 1.0.6).

`contribution` is pure (one Service and its EndpointSlices in, its frontends and targets out);
`Table` keeps every service's contribution and turns a change into nft commands, text form.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

TABLE = "podnet_proxy"
FAMILY = "ip"
MASQ_MARK = 0x4000
AFFINITY = 1 << 31
MASQ_ALL = 1 << 30
MASQ_OUTSIDE = 1 << 29
N_SHIFT = 18
N_MASK = 0x7FF << N_SHIFT
N_MAX = 0x7FF
ID_MAX = (1 << N_SHIFT) - 1
PROTOCOLS = ("tcp", "udp", "sctp")

REJECT = "goto reject-chain"
DROP = "drop"


@dataclass(frozen=True)
class Target:
    endpoints: tuple[tuple[str, int], ...]   # (address, port), sorted
    flags: int = 0                           # MASQ_ALL | MASQ_OUTSIDE | AFFINITY
    timeout: int = 0                         # affinity timeout (s) when AFFINITY is set


@dataclass
class Contribution:
    """What one Service puts in the table: frontend keys -> a target name or a verdict."""
    service_ips: dict[tuple[str, str, int], str] = field(default_factory=dict)
    nodeports: dict[tuple[str, int], str] = field(default_factory=dict)
    no_endpoint_ips: dict[tuple[str, str, int], str] = field(default_factory=dict)
    no_endpoint_nodeports: dict[tuple[str, int], str] = field(default_factory=dict)
    targets: dict[str, Target] = field(default_factory=dict)


def conditions(ep: dict) -> tuple[bool, bool, bool]:
    """(ready, serving, terminating) of one endpoint as kube-proxy reads them: ready or serving
    absent (or null: unknown) count as True, as for slices stored before these conditions
    existed; terminating absent counts as False."""
    c = ep.get("conditions") or {}
    ready, serving = c.get("ready"), c.get("serving")
    return ready is None or bool(ready), serving is None or bool(serving), bool(c.get("terminating"))


def usable_endpoints(slices: dict, port: dict, node: str) -> tuple[list[tuple[str, int, str]], list[tuple[str, int, str]]]:
    """(cluster, local): the (address, target port, node) endpoints new connections to one
    service port go to, as kube-proxy chooses them (its CategorizeEndpoints, KEP-1669):
    cluster-wide the ready endpoints, or when there is none, the serving terminating ones;
    on `node` (traffic policy Local) the local ready ones, or when there is none, the local
    serving terminating ones. Connections already made keep their endpoint through conntrack."""
    ready, draining = set(), set()
    for sl in slices.get("items", []):
        target = next((p["port"] for p in sl.get("ports", [])
                       if p.get("name", "") == port["name"] and p["protocol"] == port["protocol"]), None)
        if target is None:
            continue
        for ep in sl.get("endpoints", []):
            is_ready, serving, terminating = conditions(ep)
            into = ready if is_ready else draining if serving and terminating else None
            if into is not None:
                into.update((ip, target, ep.get("nodeName", "")) for ip in ep.get("addresses", []))
    local = [e for e in ready if e[2] == node] or [e for e in draining if e[2] == node]
    return sorted(ready or draining), sorted(local)


def ready_endpoints(slices: dict, port: dict) -> list[tuple[str, int, str]]:
    """(address, target port, node) of the endpoints new connections to one service port go
    to: the ready ones, or the serving terminating ones when none is ready."""
    return usable_endpoints(slices, port, "")[0]


def contribution(svc: dict, slices: dict | None, node: str) -> Contribution:
    """The table's share for one Service: same semantics as podnet.proxy.render."""
    c = Contribution()
    spec = svc["spec"]
    if spec["type"] == "ExternalName" or spec.get("clusterIP") in (None, "", "None"):
        return c
    ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
    lb_ips = [i["ip"] for i in svc.get("status", {}).get("loadBalancer", {}).get("ingress", []) if i.get("ip")]
    timeout = 0
    if spec.get("sessionAffinity") == "ClientIP":
        timeout = int((spec.get("sessionAffinityConfig") or {}).get("clientIP", {}).get("timeoutSeconds") or 10800)
    sticky = AFFINITY if timeout else 0
    for sp in spec["ports"]:
        proto = sp["protocol"].lower()
        ident = f"{ns}/{name}/{proto}/{sp['name'] or sp['port']}"
        endpoints, local = usable_endpoints(slices or {"items": []}, sp, node)
        cluster_key = (spec["clusterIP"], proto, sp["port"])
        lb_keys = [(ip, proto, sp["port"]) for ip in lb_ips]
        node_key = (proto, sp["nodePort"]) if sp.get("nodePort") else None
        if not endpoints:  # nothing to send to: refuse at once rather than time out
            for k in [cluster_key, *lb_keys]:
                c.no_endpoint_ips[k] = REJECT
            if node_key:
                c.no_endpoint_nodeports[node_key] = REJECT
            continue
        internal = local if spec.get("internalTrafficPolicy") == "Local" else endpoints
        if internal:
            c.targets[ident] = Target(_pairs(internal), MASQ_OUTSIDE | sticky, timeout)
            c.service_ips[cluster_key] = ident
        else:
            c.no_endpoint_ips[cluster_key] = REJECT
        if not (node_key or lb_keys):
            continue
        if spec.get("externalTrafficPolicy") == "Local":  # no masquerade: the client's address reaches the pod
            external, ext = _pairs(local), Target(_pairs(local), sticky, timeout)
        else:
            external, ext = _pairs(endpoints), Target(_pairs(endpoints), MASQ_ALL | sticky, timeout)
        if not external:
            for k in lb_keys:
                c.no_endpoint_ips[k] = DROP
            if node_key:
                c.no_endpoint_nodeports[node_key] = DROP
            continue
        c.targets[ident + "/ext"] = ext
        for k in lb_keys:
            c.service_ips[k] = ident + "/ext"
        if node_key:
            c.nodeports[node_key] = ident + "/ext"
    return c


def checked_contribution(svc: dict, slices: dict | None, node: str) -> tuple[Contribution | None, str]:
    """contribution(), or (None, what is wrong) for an object that is not a usable Service: a
    stored value may be anything, and one bad service must not keep the others out."""
    try:
        c = contribution(svc, slices, node)
        _check(c)
        return c, ""
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        return None, f"{type(e).__name__}: {e}"


def _check(c: Contribution) -> None:
    """Everything that reaches nft's syntax is an address, a known protocol or a port."""
    def port(p) -> None:
        if not isinstance(p, int) or isinstance(p, bool) or not 1 <= p <= 65535:
            raise ValueError(f"port {p!r} is not 1-65535")

    def address(ip) -> None:
        if not isinstance(ip, str):
            raise ValueError(f"address {ip!r} is not text")
        ipaddress.IPv4Address(ip)

    for ip, proto, p in [*c.service_ips, *c.no_endpoint_ips]:
        address(ip)
        if proto not in PROTOCOLS:
            raise ValueError(f"protocol {proto!r}")
        port(p)
    for proto, p in [*c.nodeports, *c.no_endpoint_nodeports]:
        if proto not in PROTOCOLS:
            raise ValueError(f"protocol {proto!r}")
        port(p)
    for t in c.targets.values():
        if not isinstance(t.timeout, int) or not 0 <= t.timeout <= 86400:
            raise ValueError(f"affinity timeout {t.timeout!r}")
        for ip, p in t.endpoints:
            address(ip)
            port(p)


def _pairs(endpoints: list[tuple[str, int, str]]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted({(ip, port) for ip, port, _ in endpoints}, key=lambda e: (ipaddress.IPv4Address(e[0]), e[1])))


# -- the table's state and the commands that change it --------------------------------------
class Table:
    """Every service's contribution, the marks given to targets, and the elements and chains
    they need; `set_service` returns the nft commands (text) for one service's change only."""

    def __init__(self, cluster_cidr: str) -> None:
        self.cluster_cidr = cluster_cidr
        self._reset()

    def _reset(self) -> None:
        self.services: dict[str, Contribution] = {}
        self.ids: dict[str, int] = {}            # target name -> id
        self.in_use: set[int] = set()
        self.next_id = 1
        self.marks: dict[str, int] = {}          # target name -> mark in the kernel
        self.targets: dict[str, Target] = {}
        self.counts: dict[int, int] = {}         # n -> how many targets have n endpoints (pick-<n> chains)
        self.timeouts: dict[int, int] = {}       # affinity timeout -> how many targets (remember-<t> chains)
        self.hairpins: dict[tuple[str, str], int] = {}
        # UDP flows to endpoints the last set_service removed, to forget in conntrack (UDP has no
        # end: without it a client keeps sending to a gone pod): (frontend address or "", port, endpoint)
        self.stale_udp: list[tuple[str, int, str]] = []

    # ids: stable while a target exists; a new one is taken round-robin, so that a freed id
    # (whose connections' affinity entries may still be in the kernel) comes back last
    def _id(self, name: str) -> int:
        if name not in self.ids:
            if len(self.in_use) >= ID_MAX:
                raise OverflowError(f"more than {ID_MAX} service targets")
            while self.next_id in self.in_use:
                self.next_id = self.next_id % ID_MAX + 1
            self.ids[name] = self.next_id
            self.in_use.add(self.next_id)
            self.next_id = self.next_id % ID_MAX + 1
        return self.ids[name]

    def mark_of(self, name: str, target: Target) -> int:
        n = min(len(target.endpoints), N_MAX)
        return target.flags | (n << N_SHIFT) | self._id(name)

    def set_service(self, key: str, new: Contribution | None) -> list[str]:
        """Install `new` as service `key`'s contribution (None: the service is gone); the nft
        commands that take the kernel from the old contribution to the new one, and no more."""
        old = self.services.pop(key, None) or Contribution()
        new = new or Contribution()
        self.stale_udp = _stale_udp(old, new)
        adds: list[str] = []
        dels: list[str] = []
        self._touched: dict[tuple[str, object], int] = {}  # (kind, key) -> its use count before this change
        old_marks = {name: self.marks[name] for name in old.targets}
        for name in sorted(old.targets.keys() | new.targets.keys()):
            before, after = old.targets.get(name), new.targets.get(name)
            if before != after:
                self._change_target(name, before, after, adds, dels)
        for mname, o, n in (("service-ips", old.service_ips, new.service_ips),
                            ("service-nodeports", old.nodeports, new.nodeports)):
            for k in o.keys() - n.keys():
                dels.append(_element("delete", mname, _key(k)))
            for k, target in n.items():
                mark = self.marks[target]
                if k not in o or old_marks.get(o[k]) != mark:
                    if k in o:
                        dels.append(_element("delete", mname, _key(k)))
                    adds.append(_element("add", mname, _key(k), f"0x{mark:08x}"))
        for mname, o, n in (("no-endpoint-services", old.no_endpoint_ips, new.no_endpoint_ips),
                            ("no-endpoint-nodeports", old.no_endpoint_nodeports, new.no_endpoint_nodeports)):
            for k in o.keys() - n.keys():
                dels.append(_element("delete", mname, _key(k)))
            for k, verdict in n.items():
                if o.get(k) != verdict:
                    if k in o:
                        dels.append(_element("delete", mname, _key(k)))
                    adds.append(_element("add", mname, _key(k), verdict))
        for name in old.targets.keys() - new.targets.keys():
            self._forget(name)
        if new.targets or new.service_ips or new.nodeports or new.no_endpoint_ips or new.no_endpoint_nodeports:
            self.services[key] = new
        made, gone = self._shared_changes()
        # removals first, then the chains new elements point at, then the elements; chains no
        # longer used go last, after the elements that pointed at them
        return dels + made + adds + gone

    def _change_target(self, name: str, before: Target | None, after: Target | None,
                       adds: list[str], dels: list[str]) -> None:
        """Only the elements that differ: an endpoint replaced in a target whose endpoint count
        stays is one element out and one in."""
        had: dict[str, str] = {}
        if before is not None:
            mark = self.marks.pop(name)
            had = self._elements(mark, before)
            self._count("counts", mark >> N_SHIFT & N_MAX, -1)
            if before.flags & AFFINITY:
                self._count("timeouts", before.timeout, -1)
            for ip, _ in before.endpoints:
                self._count("hairpins", (ip, ip), -1)
            del self.targets[name]
        has: dict[str, str] = {}
        if after is not None:
            if before is not None and after.flags & AFFINITY and set(before.endpoints) - set(after.endpoints):
                # clients pinned to an endpoint that is gone must choose again: their affinity
                # entries are keyed by the mark, so the target takes a new id (the old ones age out)
                self._forget(name)
            mark = self.mark_of(name, after)
            self.marks[name], self.targets[name] = mark, after
            has = self._elements(mark, after)
            self._count("counts", mark >> N_SHIFT & N_MAX, 1)
            if after.flags & AFFINITY:
                self._count("timeouts", after.timeout, 1)
            for ip, _ in after.endpoints:
                self._count("hairpins", (ip, ip), 1)
        for key, value in had.items():
            if has.get(key) != value:
                mname, _, k = key.partition(" ")
                dels.append(_element("delete", mname, k))
        for key, value in has.items():
            if had.get(key) != value:
                mname, _, k = key.partition(" ")
                adds.append(_element("add", mname, k, value))

    @staticmethod
    def _elements(mark: int, target: Target) -> dict[str, str]:
        """A target's own elements, as "map key" -> value."""
        n = mark >> N_SHIFT & N_MAX
        out = {f"endpoints 0x{mark:08x} . {i}": f"{ip} . {port}" for i, (ip, port) in enumerate(target.endpoints[:n])}
        if target.flags & AFFINITY:
            out[f"remember 0x{mark:08x}"] = f"jump remember-{target.timeout}"
        return out

    def _count(self, kind: str, key, delta: int) -> None:
        """Change the use count of a shared chain or element, remembering what it was before
        this change (only what a change touches is compared: the cost stays the change's)."""
        counts = getattr(self, kind)
        self._touched.setdefault((kind, key), counts.get(key, 0))
        counts[key] = counts.get(key, 0) + delta
        if counts[key] == 0:
            del counts[key]

    def _shared_changes(self) -> tuple[list[str], list[str]]:
        """Chains and elements shared between targets (pick-<n>, remember-<t>, hairpin pairs)
        that came into use, and those no longer used."""
        made: list[str] = []
        gone: list[str] = []
        for (kind, key), before in self._touched.items():
            now = getattr(self, kind).get(key, 0)
            if bool(before) == bool(now):
                continue
            if kind == "counts":
                if now:
                    made += _pick_chain(key) + [_element("add", "dispatch", f"0x{key << N_SHIFT:08x}", f"goto pick-{key}")]
                else:
                    gone += [_element("delete", "dispatch", f"0x{key << N_SHIFT:08x}"), _chain_delete(f"pick-{key}")]
            elif kind == "timeouts":
                (made if now else gone).extend(_remember_chain(key) if now else [_chain_delete(f"remember-{key}")])
            else:
                (made if now else gone).append(_element("add" if now else "delete", "hairpin", f"{key[0]} . {key[1]}"))
        return made, gone

    def _forget(self, name: str) -> None:
        ident = self.ids.pop(name, None)
        if ident is not None:
            self.in_use.discard(ident)

    def skeleton(self) -> str:
        """The table with its fixed chains, maps and sets, empty of services."""
        return skeleton(self.cluster_cidr)

    def rebuild(self, contributions: dict[str, Contribution]) -> list[str]:
        """Forget everything and fill the table anew: one transaction that replaces whatever
        table is in the kernel (the agent's first sync, or after an error or drift)."""
        self._reset()
        cmds: list[str] = []
        for key in sorted(contributions):
            cmds += self.set_service(key, contributions[key])
        return [f"table {FAMILY} {TABLE} {{}}", f"delete table {FAMILY} {TABLE}", self.skeleton(), *compact(cmds)]

    def endpoint_count(self) -> int:
        return sum(mark >> N_SHIFT & N_MAX for mark in self.marks.values())

    def expected(self) -> tuple[dict[str, int], dict[str, int]]:
        """(elements per map, rules per chain that come and go) as the kernel should hold them;
        the dynamic affinity map is left out."""
        maps_ = {"service-ips": 0, "service-nodeports": 0, "no-endpoint-services": 0, "no-endpoint-nodeports": 0}
        for c in self.services.values():
            maps_["service-ips"] += len(c.service_ips)
            maps_["service-nodeports"] += len(c.nodeports)
            maps_["no-endpoint-services"] += len(c.no_endpoint_ips)
            maps_["no-endpoint-nodeports"] += len(c.no_endpoint_nodeports)
        maps_["endpoints"] = self.endpoint_count()
        maps_["remember"] = sum(1 for t in self.targets.values() if t.flags & AFFINITY)
        maps_["dispatch"] = len(self.counts)
        maps_["hairpin"] = len(self.hairpins)
        chains = {f"pick-{n}": len(PROTOCOLS) for n in self.counts}
        chains.update({f"remember-{t}": len(PROTOCOLS) for t in self.timeouts})
        return maps_, chains


_ADD_ELEMENT = f"add element {FAMILY} {TABLE} "


def compact(cmds: list[str], per_statement: int = 5000) -> list[str]:
    """Additions only (a fresh table): chains and rules first, then each map's elements in
    statements of up to `per_statement` (nft parses one statement of many elements far faster
    than many statements)."""
    chains = [c for c in cmds if not c.startswith(_ADD_ELEMENT)]
    elements: dict[str, list[str]] = {}
    for c in cmds:
        if c.startswith(_ADD_ELEMENT):
            name, _, body = c[len(_ADD_ELEMENT):].partition(" { ")
            elements.setdefault(name, []).append(body[:-2])
    out = list(chains)
    for name, bodies in elements.items():
        for i in range(0, len(bodies), per_statement):
            out.append(f"{_ADD_ELEMENT}{name} {{ {', '.join(bodies[i:i + per_statement])} }}")
    return out


def _stale_udp(old: Contribution, new: Contribution) -> list[tuple[str, int, str]]:
    """(frontend address, port, endpoint address) for each UDP frontend whose target lost an
    endpoint; the address is "" for a NodePort (any local address)."""
    out = set()
    fronts = [((ip, port), target) for (ip, proto, port), target in old.service_ips.items() if proto == "udp"]
    fronts += [(("", port), target) for (proto, port), target in old.nodeports.items() if proto == "udp"]
    for (ip, port), target in fronts:
        before = {ep for ep, _ in old.targets[target].endpoints}
        after_target = new.targets.get(target)
        after = {ep for ep, _ in after_target.endpoints} if after_target else set()
        out |= {(ip, port, ep) for ep in before - after}
    return sorted(out)


def _key(k: tuple) -> str:
    return " . ".join(str(x) for x in k)


def _element(op: str, name: str, key: str, value: str | None = None) -> str:
    body = key if value is None or op == "delete" else f"{key} : {value}"
    return f"{op} element {FAMILY} {TABLE} {name} {{ {body} }}"


def _chain_delete(name: str) -> str:
    return f"delete chain {FAMILY} {TABLE} {name}"


def _pick_chain(n: int) -> list[str]:
    return [f"add chain {FAMILY} {TABLE} pick-{n}"] + [
        f"add rule {FAMILY} {TABLE} pick-{n} meta l4proto {p} dnat ip to ct mark . numgen random mod {n} map @endpoints"
        for p in PROTOCOLS]


def _remember_chain(timeout: int) -> list[str]:
    return [f"add chain {FAMILY} {TABLE} remember-{timeout}"] + [
        f"add rule {FAMILY} {TABLE} remember-{timeout} meta l4proto {p} "
        f"update @affinity {{ ip saddr . ct mark timeout {timeout}s : ip daddr . {p} dport }}" for p in PROTOCOLS]


def skeleton(cluster_cidr: str) -> str:
    t = f"{FAMILY} {TABLE}"
    mark = f"meta mark set meta mark | 0x{MASQ_MARK:x}"
    return f"""table {t} {{
  map service-ips {{ type ipv4_addr . inet_proto . inet_service : mark; }}
  map service-nodeports {{ type inet_proto . inet_service : mark; }}
  map no-endpoint-services {{ type ipv4_addr . inet_proto . inet_service : verdict; }}
  map no-endpoint-nodeports {{ type inet_proto . inet_service : verdict; }}
  map dispatch {{ type mark : verdict; }}
  map remember {{ type mark : verdict; }}
  map endpoints {{ typeof ct mark . numgen random mod 2 : ip daddr . tcp dport; }}
  map affinity {{ type ipv4_addr . mark : ipv4_addr . inet_service; size 1048576; flags dynamic,timeout; timeout 3h; }}
  set hairpin {{ type ipv4_addr . ipv4_addr; }}
  chain reject-chain {{ reject with icmp type port-unreachable; }}
  chain sticky {{
{chr(10).join(f"    meta l4proto {p} dnat ip to ip saddr . ct mark map @affinity" for p in PROTOCOLS)}
  }}
  chain services {{
    ct mark set ip daddr . meta l4proto . th dport map @service-ips
    ct mark == 0 fib daddr type local ip daddr != 127.0.0.0/8 ct mark set meta l4proto . th dport map @service-nodeports
    ct mark == 0 return
    ct mark & 0x{MASQ_ALL:08x} != 0 {mark}
    ct mark & 0x{MASQ_OUTSIDE:08x} != 0 ip saddr != {cluster_cidr} {mark}
    ct mark & 0x{AFFINITY:08x} != 0 jump sticky
    ct mark & 0x{N_MASK:08x} vmap @dispatch
  }}
  chain masquerading {{
    ct mark & 0x{AFFINITY:08x} != 0 ct mark vmap @remember
    ip saddr . ip daddr @hairpin {mark}
    meta mark & 0x{MASQ_MARK:x} == 0 return
    meta mark set meta mark ^ 0x{MASQ_MARK:x}
    masquerade fully-random
  }}
  chain nat-prerouting {{ type nat hook prerouting priority -100; policy accept; jump services; }}
  chain nat-output {{ type nat hook output priority -100; policy accept; jump services; }}
  chain nat-postrouting {{ type nat hook postrouting priority 100; policy accept; jump masquerading; }}
  chain filter-input {{ type filter hook input priority -110; policy accept;
    ip daddr . meta l4proto . th dport vmap @no-endpoint-services
    fib daddr type local meta l4proto . th dport vmap @no-endpoint-nodeports
  }}
  chain filter-forward {{ type filter hook forward priority -110; policy accept;
    ip daddr . meta l4proto . th dport vmap @no-endpoint-services
  }}
  chain filter-output {{ type filter hook output priority -110; policy accept;
    ip daddr . meta l4proto . th dport vmap @no-endpoint-services
    fib daddr type local meta l4proto . th dport vmap @no-endpoint-nodeports
  }}
}}
"""
