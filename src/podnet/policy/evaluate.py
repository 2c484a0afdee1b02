"""NetworkPolicy semantics as a pure function: is this connection allowed?

This is the reference the nftables renderer is checked against (and the truth the e2e probes
compare the kernel with). The rules, from the networking.k8s.io/v1 API:

- a pod is isolated for a direction only when some policy of its namespace selects it and lists
  that direction in policyTypes; an isolated pod accepts only what some selecting policy allows
  (policies add up: OR);
- a connection needs egress allowed at the source and ingress allowed at the destination;
- peers: podSelector (pods of the policy's namespace), namespaceSelector (all pods of matching
  namespaces), both in one peer (AND), several peers (OR), ipBlock (cidr minus except);
- ports: none listed = all; a number, a number..endPort range, or a name resolved against the
  destination pod's container ports;
- traffic from the destination pod's own node always passes (kubelet probes), and so does a
  pod's traffic to itself (it never leaves the pod's loopback).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from ..api.networkpolicy import rules


def selector_matches(selector: dict, labels: dict[str, str]) -> bool:
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        present, value = e["key"] in labels, labels.get(e["key"])
        op = e["operator"]
        if op == "In" and (not present or value not in e["values"]):
            return False
        if op == "NotIn" and present and value in e["values"]:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def in_ip_block(ip: str, cidr: str, excepts: list[str]) -> bool:
    addr = ipaddress.ip_address(ip)
    return addr in ipaddress.ip_network(cidr) and not any(addr in ipaddress.ip_network(e) for e in excepts)


@dataclass(frozen=True)
class PodInfo:
    name: str
    namespace: str
    ip: str
    node: str = ""
    labels: tuple = ()          # sorted (key, value) pairs
    ports: tuple = ()           # (name, number, protocol)

    @property
    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)


@dataclass
class World:
    pods: list[PodInfo]
    namespaces: dict[str, dict[str, str]]          # name -> labels
    policies: list[dict]
    node_ips: dict[str, set[str]] = field(default_factory=dict)   # node -> its addresses
    skipped: list[str] = field(default_factory=list)  # stored objects too malformed to take part

    def pod_by_ip(self, ip: str) -> PodInfo | None:
        return next((p for p in self.pods if p.ip == ip), None)

    def ns_labels(self, ns: str) -> dict[str, str]:
        return self.namespaces.get(ns, {"kubernetes.io/metadata.name": ns})


def _selecting(world: World, pod: PodInfo, direction: str) -> list[dict]:
    return [p for p in world.policies
            if p["metadata"]["namespace"] == pod.namespace and direction in p["spec"]["policyTypes"]
            and selector_matches(p["spec"]["podSelector"], pod.label_dict)]


def _peer_matches(world: World, peer: dict, policy_ns: str, ip: str, pod: PodInfo | None) -> bool:
    if "ipBlock" in peer:
        return in_ip_block(ip, peer["ipBlock"]["cidr"], peer["ipBlock"]["except"])
    if pod is None:
        return False  # selectors only ever match pods
    if "namespaceSelector" in peer:
        if not selector_matches(peer["namespaceSelector"], world.ns_labels(pod.namespace)):
            return False
    elif pod.namespace != policy_ns:
        return False
    return "podSelector" not in peer or selector_matches(peer["podSelector"], pod.label_dict)


def _port_matches(ports: list[dict], dst: PodInfo | None, port: int, proto: str) -> bool:
    if not ports:
        return True
    for p in ports:
        if p["protocol"] != proto:
            continue
        if p["port"] is None:
            return True
        if isinstance(p["port"], int):
            if p["port"] <= port <= (p.get("endPort") or p["port"]):
                return True
        elif dst is not None and any(n == p["port"] and num == port and pr == proto for n, num, pr in dst.ports):
            return True
    return False


def _allowed_by(world: World, policies: list[dict], direction: str, peer_ip: str, peer_pod: PodInfo | None,
                dst_pod: PodInfo | None, port: int, proto: str) -> bool:
    for policy in policies:
        for peers, ports in rules(policy, direction):
            peers_ok = peers is None or any(
                _peer_matches(world, peer, policy["metadata"]["namespace"], peer_ip, peer_pod) for peer in peers)
            if peers_ok and _port_matches(ports, dst_pod, port, proto):
                return True
    return False


def egress_allowed(world: World, src: PodInfo, dst_ip: str, port: int, proto: str) -> bool:
    selecting = _selecting(world, src, "Egress")
    if not selecting:
        return True
    dst_pod = world.pod_by_ip(dst_ip)
    return _allowed_by(world, selecting, "egress", dst_ip, dst_pod, dst_pod, port, proto)


def ingress_allowed(world: World, src_ip: str, dst: PodInfo, port: int, proto: str) -> bool:
    if src_ip in world.node_ips.get(dst.node, set()):
        return True
    selecting = _selecting(world, dst, "Ingress")
    if not selecting:
        return True
    return _allowed_by(world, selecting, "ingress", src_ip, world.pod_by_ip(src_ip), dst, port, proto)


def allowed(world: World, src: PodInfo, dst: PodInfo, port: int, proto: str = "TCP") -> bool:
    if src == dst:
        return True  # a pod reaching its own IP stays on its loopback: no CNI sees it (the e2e "AllowLoopback")
    return egress_allowed(world, src, dst.ip, port, proto) and ingress_allowed(world, src.ip, dst, port, proto)


def truth_table(world: World, port: int, proto: str = "TCP") -> dict[tuple[str, str], bool]:
    """{("x/a", "y/b"): allowed} for every ordered pair of pods, as the e2e tests tabulate it."""
    return {(f"{s.namespace}/{s.name}", f"{d.namespace}/{d.name}"): allowed(world, s, d, port, proto)
            for s in world.pods for d in world.pods}
