"""The NetworkPolicy truth-table cases, in the shape of the Kubernetes e2e network-policy model:
namespaces x, y, z (labelled ns=<name>), pods a, b, c in each (labelled pod=<name>), pod a on
node1, b on node2, c on node3 (so 10.244.1.0/24 holds the a pods, and so on), each serving TCP
and UDP on ports 80 and 81, with container ports named serve-<port>-<tcp|udp>.

Each case states by hand which (source, destination) pairs are blocked for the ports it probes.
tests/policy/test_evaluate.py checks the oracle against these expectations, and
tests/lab/test_networkpolicy.py checks real packets in a 3-node lab against the same ones.

In an ipBlock, "@y/c/32" stands for the IP of pod y/c (known only once the pod exists), and
"@node2" for the range node2's pods get their addresses from (its pod CIDR, 10.244.2.0/24 with
a subnet lease; its first block in routed mode).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

NS = ["x", "y", "z"]
PODS = ["a", "b", "c"]
NODE_OF = {"a": "node1", "b": "node2", "c": "node3"}
ALL = [f"{n}/{p}" for n in NS for p in PODS]
X, Y, Z = ([f"{n}/{p}" for p in PODS] for n in NS)
PORTS = tuple((f"serve-{n}-{p.lower()}", n, p) for n in (80, 81) for p in ("TCP", "UDP"))
TCP80, TCP81, UDP80, UDP81 = (80, "TCP"), (81, "TCP"), (80, "UDP"), (81, "UDP")


def named(pod: str) -> list[str]:
    return [f"{n}/{pod}" for n in NS]


def pairs(sources, destinations) -> set[tuple[str, str]]:
    """Every source to every destination, but never a pod to itself (its loopback: always allowed)."""
    return {(s, d) for s in sources for d in destinations if s != d}


def but(group, *removed) -> list[str]:
    gone = {p for r in removed for p in ([r] if isinstance(r, str) else r)}
    return [p for p in group if p not in gone]


def sel(**labels) -> dict:
    return {"matchLabels": labels}


def ns_sel(name: str) -> dict:
    return {"namespaceSelector": sel(ns=name)}


def pod_sel(name: str) -> dict:
    return {"podSelector": sel(pod=name)}


ALL_PODS: dict = {}
DENY_INGRESS = {"podSelector": ALL_PODS, "policyTypes": ["Ingress"]}
DENY_EGRESS = {"podSelector": ALL_PODS, "policyTypes": ["Egress"]}


@dataclass
class Case:
    name: str
    policies: list[tuple[str, dict]]          # (namespace, spec)
    blocked: dict[tuple[int, str], set]       # (port, protocol) -> blocked pairs
    ns_labels: dict[str, dict] = field(default_factory=dict)  # extra namespace labels

    def specs(self, ip_of: dict[str, str]) -> list[tuple[str, dict]]:
        """The policies with "@ns/pod" in ipBlocks replaced by that pod's IP."""
        return [(ns, _resolve(copy.deepcopy(spec), ip_of)) for ns, spec in self.policies]


def _resolve(obj, ip_of):
    if isinstance(obj, dict):
        return {k: _resolve(v, ip_of) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_resolve(v, ip_of) for v in obj]
    if isinstance(obj, str) and obj.startswith("@"):
        if "/" not in obj:
            return ip_of[obj[1:]]  # a node's pod range
        pod, _, length = obj[1:].rpartition("/")
        return f"{ip_of[pod]}/{length}"
    return obj


CASES = [
    Case("no policy: everything reaches everything", [], {TCP80: set(), UDP80: set()}),
    Case("default deny ingress in x", [("x", DENY_INGRESS)], {TCP80: pairs(ALL, X), UDP81: pairs(ALL, X)}),
    Case("default deny ingress everywhere", [(n, DENY_INGRESS) for n in NS], {TCP80: pairs(ALL, ALL)}),
    Case("deny ingress, then allow all ingress", [("x", DENY_INGRESS), ("x", {"podSelector": {}, "ingress": [{}]})],
         {TCP80: set(), UDP80: set()}),
    Case("allow-all ingress alone isolates nothing", [("y", {"podSelector": {}, "ingress": [{"from": [], "ports": []}]})],
         {TCP81: set()}),
    Case("default deny egress in x", [("x", DENY_EGRESS)], {TCP80: pairs(X, ALL), UDP80: pairs(X, ALL)}),
    Case("deny egress, then allow all egress", [("x", DENY_EGRESS), ("x", {**DENY_EGRESS, "egress": [{}]})], {TCP80: set()}),
    Case("deny all in and out of x", [("x", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})],
         {TCP80: pairs(ALL, X) | pairs(X, ALL), UDP81: pairs(ALL, X) | pairs(X, ALL)}),
    Case("x/a only from pod b (podSelector = same namespace)",
         [("x", {"podSelector": sel(pod="a"), "ingress": [{"from": [pod_sel("b")]}]})],
         {TCP80: pairs(but(ALL, "x/b"), ["x/a"])}),
    Case("x/a only from namespace y", [("x", {"podSelector": sel(pod="a"), "ingress": [{"from": [ns_sel("y")]}]})],
         {TCP80: pairs(but(ALL, Y), ["x/a"]), UDP80: pairs(but(ALL, Y), ["x/a"])}),
    Case("namespace and pod selector in one peer: AND",
         [("x", {"podSelector": sel(pod="a"), "ingress": [{"from": [{**ns_sel("y"), **pod_sel("b")}]}]})],
         {TCP80: pairs(but(ALL, "y/b"), ["x/a"])}),
    Case("two peers in one rule: OR",
         [("x", {"podSelector": sel(pod="a"), "ingress": [{"from": [ns_sel("y"), pod_sel("b")]}]})],
         {TCP80: pairs(but(ALL, Y, "x/b"), ["x/a"])}),
    Case("two rules: OR",
         [("x", {"podSelector": sel(pod="a"), "ingress": [{"from": [ns_sel("y")]}, {"from": [pod_sel("c")]}]})],
         {TCP80: pairs(but(ALL, Y, "x/c"), ["x/a"])}),
    Case("every namespace, but only pods b",
         [("x", {"podSelector": sel(pod="a"), "ingress": [{"from": [{"namespaceSelector": {}, **pod_sel("b")}]}]})],
         {TCP80: pairs(but(ALL, named("b")), ["x/a"])}),
    Case("two policies add up",
         [("x", {"podSelector": sel(pod="a"), "ingress": [{"from": [ns_sel("y")]}]}),
          ("x", {"podSelector": sel(pod="a"), "ingress": [{"from": [ns_sel("z")]}]})],
         {TCP80: pairs(X, ["x/a"])}),
    Case("matchExpressions In and NotIn",
         [("x", {"podSelector": {"matchExpressions": [{"key": "pod", "operator": "In", "values": ["a", "b"]}]},
                 "ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [
                     {"key": "ns", "operator": "NotIn", "values": ["x"]}]}}]}]})],
         {TCP80: pairs(X, ["x/a", "x/b"])}),
    Case("namespace label Exists", [("x", {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {
        "matchExpressions": [{"key": "team", "operator": "Exists"}]}}]}]})],
         {TCP80: pairs(but(ALL, Y), X)}, ns_labels={"y": {"team": "red"}}),
    Case("namespace label DoesNotExist", [("x", {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {
        "matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}}]}]})],
         {TCP80: pairs(Y, X)}, ns_labels={"y": {"team": "red"}}),
    Case("namespace by its automatic name label",
         [("x", {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": sel(**{"kubernetes.io/metadata.name": "z"})}]}]})],
         {TCP80: pairs(but(ALL, Z), X)}),
    Case("ingress from the own namespace only", [("x", {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]})],
         {TCP80: pairs(but(ALL, X), X)}),
    Case("ipBlock with except (node2's pod subnet)",
         [("x", {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.244.0.0/16", "except": ["@node2"]}}]}]})],
         {TCP80: pairs(named("b"), X)}),
    Case("ipBlock of one pod", [("x", {"podSelector": sel(pod="a"), "ingress": [{"from": [{"ipBlock": {"cidr": "@y/c/32"}}]}]})],
         {TCP80: pairs(but(ALL, "y/c"), ["x/a"])}),
    Case("ipBlock except one pod",
         [("x", {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.244.0.0/16", "except": ["@z/a/32"]}}]}]})],
         {TCP80: pairs(["z/a"], X)}),
    Case("egress rules without policyTypes isolate ingress too (the API's defaulting)",
         [("x", {"podSelector": sel(pod="a"), "egress": [{}]})], {TCP80: pairs(ALL, ["x/a"])}),
    Case("egress to an ipBlock (node1's pod subnet)",
         [("x", {**DENY_EGRESS, "egress": [{"to": [{"ipBlock": {"cidr": "@node1"}}]}]})],
         {TCP80: pairs(X, but(ALL, named("a")))}),
    Case("ingress on port 80 only", [("x", {"podSelector": {}, "ingress": [{"ports": [{"port": 80}]}]})],
         {TCP80: set(), TCP81: pairs(ALL, X), UDP80: pairs(ALL, X)}),
    Case("ingress on UDP 81 only", [("x", {"podSelector": {}, "ingress": [{"ports": [{"port": 81, "protocol": "UDP"}]}]})],
         {UDP81: set(), TCP81: pairs(ALL, X), UDP80: pairs(ALL, X)}),
    Case("named port on ingress", [("x", {"podSelector": {}, "ingress": [{"ports": [{"port": "serve-81-tcp"}]}]})],
         {TCP81: set(), TCP80: pairs(ALL, X), UDP81: pairs(ALL, X)}),
    Case("named port on egress, resolved per destination",
         [("z", {**DENY_EGRESS, "egress": [{"to": [ns_sel("x")], "ports": [{"port": "serve-80-tcp"}]}]})],
         {TCP80: pairs(Z, but(ALL, X)), TCP81: pairs(Z, ALL)}),
    Case("endPort range 80-81", [("x", {"podSelector": {}, "ingress": [{"ports": [{"port": 80, "endPort": 81}]}]})],
         {TCP80: set(), TCP81: set(), UDP80: pairs(ALL, X)}),
    Case("endPort range 81-90", [("x", {"podSelector": {}, "ingress": [{"ports": [{"port": 81, "endPort": 90}]}]})],
         {TCP80: pairs(ALL, X), TCP81: set()}),
    Case("protocol without a port", [("x", {"podSelector": {}, "ingress": [{"ports": [{"protocol": "UDP"}]}]})],
         {UDP80: set(), UDP81: set(), TCP80: pairs(ALL, X)}),
    Case("a connection needs egress at the source and ingress at the destination",
         [("x", {"podSelector": sel(pod="a"), "policyTypes": ["Egress"], "egress": [{"to": [pod_sel("b")]}]}),
          ("x", {"podSelector": sel(pod="b"), "ingress": [{"from": [pod_sel("c")]}]})],
         {TCP80: pairs(["x/a"], ALL) | pairs(but(ALL, "x/c"), ["x/b"])}),
    Case("a policy selecting no pod changes nothing",
         [("y", {"podSelector": sel(pod="nobody"), "policyTypes": ["Ingress", "Egress"]})], {TCP80: set()}),
    Case("egress to namespace y on port 81",
         [("x", {**DENY_EGRESS, "egress": [{"to": [ns_sel("y")], "ports": [{"port": 81}]}]})],
         {TCP80: pairs(X, ALL), TCP81: pairs(X, but(ALL, Y))}),
    Case("ingress from namespace y on port 80",
         [("x", {"podSelector": {}, "ingress": [{"from": [ns_sel("y")], "ports": [{"port": 80}]}]})],
         {TCP80: pairs(but(ALL, Y), X), TCP81: pairs(ALL, X)}),
    Case("egress policy in y, ingress policy in x",
         [("y", {**DENY_EGRESS, "egress": [{"to": [ns_sel("z")]}]}),
          ("x", {"podSelector": {}, "ingress": [{"from": [ns_sel("y")]}]})],
         {TCP80: pairs(Y, but(ALL, Z)) | pairs(but(ALL, Y), X)}),
]
