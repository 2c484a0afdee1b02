"""Pure renderers shared by the agent and its backends: the Desired routes, neighbours and FDB
entries (each backend renders its own, in podnet.agent.backends), masquerading, and the
overlay guard table."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field


@dataclass
class Desired:
    # (dst CIDR, gateway, onlink)
    routes: set[tuple[str, str, bool]] = field(default_factory=set)
    # (ip, mac) permanent neighbours on the vxlan device
    neighbours: set[tuple[str, str]] = field(default_factory=set)
    # (mac, remote underlay ip) FDB entries on the vxlan device
    fdb: set[tuple[str, str]] = field(default_factory=set)


def masquerade_rules(sources: list[str], pod_networks: list[str]) -> list[dict]:
    """One nft transaction replacing table inet podnet_agent: traffic from `sources` to anywhere
    outside `pod_networks` (and not multicast) is masqueraded; pod-to-pod traffic never is."""
    t = {"family": "inet", "table": "podnet_agent"}

    def prefixes(nets: list[str]) -> dict:
        items = [{"prefix": {"addr": str(n.network_address), "len": n.prefixlen}}
                 for n in sorted({ipaddress.ip_network(x) for x in nets})]
        return items[0] if len(items) == 1 else {"set": items}

    def m(field_: str, op: str, right: object) -> dict:
        return {"match": {"op": op, "left": {"payload": {"protocol": "ip", "field": field_}}, "right": right}}

    cmds = [
        {"add": {"table": {"family": "inet", "name": "podnet_agent"}}},
        {"delete": {"table": {"family": "inet", "name": "podnet_agent"}}},
        {"add": {"table": {"family": "inet", "name": "podnet_agent"}}},
        {"add": {"chain": {**t, "name": "postrouting", "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}}},
    ]
    if sources:
        expr = [m("saddr", "==", prefixes(sources))]
        if pod_networks:
            expr.append(m("daddr", "!=", prefixes(pod_networks)))
        expr += [m("daddr", "!=", {"prefix": {"addr": "224.0.0.0", "len": 4}}), {"masquerade": None}]
        cmds.append({"add": {"rule": {**t, "chain": "postrouting", "comment": "podnet ip-masq", "expr": expr}}})
    return cmds


OVERLAY_TABLE = "podnet_overlay"


def overlay_guard(cluster: str, port: int, peers: list[str]) -> list[dict]:
    """One transaction replacing `table ip podnet_overlay`: VXLAN (UDP `port`) reaches this
    node only from peer nodes' underlay addresses, and pods cannot send it to a node. Without
    it a pod that knows a VTEP MAC can hand the kernel a forged inner packet, which is
    decapsulated and delivered past NetworkPolicy."""
    net = ipaddress.ip_network(cluster)
    t = {"family": "ip", "table": OVERLAY_TABLE}

    def m(proto: str, field_: str, op: str, right: object) -> dict:
        return {"match": {"op": op, "left": {"payload": {"protocol": proto, "field": field_}}, "right": right}}

    cmds: list[dict] = [
        {"add": {"table": {"family": "ip", "name": OVERLAY_TABLE}}},
        {"delete": {"table": {"family": "ip", "name": OVERLAY_TABLE}}},
        {"add": {"table": {"family": "ip", "name": OVERLAY_TABLE}}},
        {"add": {"set": {**t, "name": "peers", "type": "ipv4_addr"}}},
        {"add": {"counter": {**t, "name": "foreign-vxlan"}}},
        {"add": {"chain": {**t, "name": "input", "type": "filter", "hook": "input", "prio": -10, "policy": "accept"}}},
        {"add": {"rule": {**t, "chain": "input", "comment": "VXLAN only from peer nodes", "expr": [
            m("udp", "dport", "==", port), m("ip", "saddr", "!=", "@peers"), {"counter": "foreign-vxlan"}, {"drop": None}]}}},
        {"add": {"chain": {**t, "name": "forward", "type": "filter", "hook": "forward", "prio": -10, "policy": "accept"}}},
        {"add": {"rule": {**t, "chain": "forward", "comment": "no VXLAN from pods to nodes", "expr": [
            m("ip", "saddr", "==", {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}),
            m("udp", "dport", "==", port), m("ip", "daddr", "==", "@peers"), {"counter": "foreign-vxlan"}, {"drop": None}]}}},
    ]
    if peers:
        cmds.append({"add": {"element": {**t, "name": "peers", "elem": sorted(peers)}}})
    return cmds


def no_overlay_guard() -> list[dict]:
    """Remove the guard (a backend without an overlay port)."""
    return [{"add": {"table": {"family": "ip", "name": OVERLAY_TABLE}}},
            {"delete": {"table": {"family": "ip", "name": OVERLAY_TABLE}}}]
