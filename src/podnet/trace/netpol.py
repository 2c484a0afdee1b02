"""NetworkPolicy for one flow, explained: not only allowed or not (podnet.policy.evaluate says
that), but which policy and rule allows it, or which policies isolate the pod and why each of
their rules does not match. Same semantics as the evaluator, built from its parts (a unit test
checks both agree on the e2e truth-table cases)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..api.networkpolicy import rules
from ..policy.evaluate import PodInfo, World, _peer_matches, _port_matches, _selecting


@dataclass
class Explanation:
    direction: str               # egress, ingress
    pod: PodInfo                 # the pod whose policies apply (source for egress, destination for ingress)
    allowed: bool
    text: str                    # one line
    isolating: list[dict] = field(default_factory=list)    # policies selecting the pod for this direction
    allowed_by: tuple[dict, int] | None = None             # (policy, rule index)
    misses: list[str] = field(default_factory=list)        # why each rule did not match

    def responsible(self) -> list[dict]:
        """The objects behind the decision, as the trace's JSON names them."""
        if self.allowed_by is not None:
            p, i = self.allowed_by
            return [_ref(p, self.direction, i)]
        return [_ref(p, self.direction, None) for p in self.isolating]


def _ref(policy: dict, direction: str, rule: int | None) -> dict:
    m = policy["metadata"]
    return {"kind": "NetworkPolicy", "namespace": m["namespace"], "name": m["name"], "direction": direction,
            "rule": rule}


def name_of(policy: dict) -> str:
    return f"{policy['metadata']['namespace']}/{policy['metadata']['name']}"


def _pod_label(p: PodInfo) -> str:
    return f"{p.namespace}/{p.name}"


def _describe_port(port: int, proto: str) -> str:
    return proto.lower() if proto == "ICMP" or not port else f"{proto.lower()}/{port}"


def _ports_text(ports: list[dict]) -> str:
    return ", ".join(f"{p['protocol'].lower()}/{p['port'] if p['port'] is not None else '*'}"
                     + (f"-{p['endPort']}" if p.get("endPort") else "") for p in ports)


def explain(world: World, direction: str, pod: PodInfo, peer_ip: str, port: int, proto: str) -> Explanation:
    """`direction` egress: `pod` sends to peer_ip; ingress: `pod` receives from peer_ip.
    `proto` as the API spells it (TCP, UDP, SCTP; ICMP matches only rules without ports)."""
    what = _describe_port(port, proto)
    policy_type = "Egress" if direction == "egress" else "Ingress"
    peer_pod = world.pod_by_ip(peer_ip)
    peer_text = f"{peer_ip} ({_pod_label(peer_pod)})" if peer_pod else peer_ip
    if direction == "ingress" and peer_ip in world.node_ips.get(pod.node, set()):
        return Explanation(direction, pod, True, f"from {_pod_label(pod)}'s own node: always allowed")
    selecting = _selecting(world, pod, policy_type)
    if not selecting:
        return Explanation(direction, pod, True,
                           f"{direction}: {_pod_label(pod)} is not isolated (no NetworkPolicy selects it for {policy_type})")
    dst_pod = peer_pod if direction == "egress" else pod
    misses = []
    for policy in selecting:
        policy_rules = rules(policy, direction)
        if not policy_rules:
            misses.append(f"{name_of(policy)}: no {direction} rules (denies all)")
        for i, (peers, ports) in enumerate(policy_rules):
            peers_ok = peers is None or any(
                _peer_matches(world, peer, policy["metadata"]["namespace"], peer_ip, peer_pod) for peer in peers)
            ports_ok = _port_matches(ports, dst_pod, port, proto)
            if peers_ok and ports_ok:
                return Explanation(direction, pod, True,
                                   f"{direction}: allowed by NetworkPolicy {name_of(policy)} rule {i}",
                                   selecting, (policy, i))
            why = []
            if not peers_ok:
                why.append(f"peer {peer_text} not in its {'to' if direction == 'egress' else 'from'}")
            if not ports_ok:
                why.append(f"{what} not in its ports ({_ports_text(ports)})")
            misses.append(f"{name_of(policy)} rule {i}: " + " and ".join(why))
    names = ", ".join(name_of(p) for p in selecting)
    return Explanation(direction, pod, False,
                       f"{direction}: {_pod_label(pod)} is isolated by NetworkPolicy {names} and no rule allows "
                       f"{peer_text} {what}", selecting, None, misses)
