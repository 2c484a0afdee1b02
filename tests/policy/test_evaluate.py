"""NetworkPolicy semantics (the oracle) on the e2e truth-table model: namespaces x, y, z with
pods a, b, c each serving TCP/UDP 80 and 81. Each case states exactly which pairs are blocked."""

import pytest

from podnet.api.errors import ValidationError
from podnet.api.networkpolicy import parse_namespace, parse_network_policy
from podnet.policy.evaluate import PodInfo, World, allowed, selector_matches, truth_table

NS = ["x", "y", "z"]
PODS = ["a", "b", "c"]
PORTS = tuple((f"serve-{n}-{p.lower()}", n, p) for n in (80, 81) for p in ("TCP", "UDP"))
ALL = [f"{n}/{p}" for n in NS for p in PODS]


def world(*policies, namespaces=None):
    pods = [PodInfo(p, n, f"10.244.{i + 1}.{j + 2}", node=f"node{j + 1}", labels=(("pod", p),), ports=PORTS)
            for i, n in enumerate(NS) for j, p in enumerate(PODS)]
    labels = namespaces or {n: {"ns": n, "kubernetes.io/metadata.name": n} for n in NS}
    parsed = [parse_network_policy({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                                    "metadata": {"name": f"p{i}", "namespace": ns}, "spec": spec}, "t")
              for i, (ns, spec) in enumerate(policies)]
    return World(pods, labels, parsed, node_ips={"node1": {"172.31.0.11"}})


def blocked(w, port=80, proto="TCP"):
    return {pair for pair, ok in truth_table(w, port, proto).items() if not ok}


def cross(pairs):
    """Expected blocked pairs never include a pod and itself (loopback is always allowed)."""
    return {(s, d) for s, d in pairs if s != d}


def into(dst, sources):
    return {(s, dst) for s in sources}


def out_of(src, dsts):
    return {(src, d) for d in dsts}


DENY_IN_X = ("x", {"podSelector": {}, "policyTypes": ["Ingress"]})


def test_no_policy_allows_everything():
    assert blocked(world()) == set()


def test_default_deny_ingress_isolates_only_the_selected_namespace():
    assert blocked(world(DENY_IN_X)) == cross((s, d) for s in ALL for d in ALL if d.startswith("x/"))


def test_allow_all_ingress_adds_back():
    assert blocked(world(DENY_IN_X, ("x", {"podSelector": {}, "ingress": [{}]}))) == set()


def test_pod_selector_means_same_namespace():
    w = world(("x", {"podSelector": {"matchLabels": {"pod": "a"}},
                     "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]}))
    assert blocked(w) == cross(into("x/a", set(ALL) - {"x/b"}))


def test_namespace_selector_alone():
    w = world(("x", {"podSelector": {"matchLabels": {"pod": "a"}},
                     "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]}))
    assert blocked(w) == cross(into("x/a", set(ALL) - {"y/a", "y/b", "y/c"}))


def test_pod_and_namespace_selector_in_one_peer_is_and():
    w = world(("x", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [
        {"namespaceSelector": {"matchLabels": {"ns": "y"}}, "podSelector": {"matchLabels": {"pod": "b"}}}]}]}))
    assert blocked(w) == cross(into("x/a", set(ALL) - {"y/b"}))


def test_two_peers_are_or():
    w = world(("x", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [
        {"namespaceSelector": {"matchLabels": {"ns": "y"}}}, {"podSelector": {"matchLabels": {"pod": "b"}}}]}]}))
    assert blocked(w) == cross(into("x/a", set(ALL) - {"y/a", "y/b", "y/c", "x/b"}))


def test_match_expressions():
    w = world(("x", {"podSelector": {"matchExpressions": [{"key": "pod", "operator": "In", "values": ["a", "b"]}]},
                     "ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [
                         {"key": "ns", "operator": "NotIn", "values": ["x"]}]}}]}]}))
    assert blocked(w) == cross(into("x/a", [f"x/{p}" for p in PODS]) | into("x/b", [f"x/{p}" for p in PODS]))
    assert selector_matches({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist", "values": []}]}, {"pod": "a"})
    assert not selector_matches({"matchExpressions": [{"key": "tier", "operator": "Exists", "values": []}]}, {"pod": "a"})


def test_ip_block_with_except():
    w = world(("x", {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.244.0.0/16",
                                                                           "except": ["10.244.2.0/24"]}}]}]}))
    assert blocked(w) == cross((s, d) for s in ALL for d in ALL if d.startswith("x/") and s.startswith("y/"))


def test_named_ports_and_end_port():
    named = world(("x", {"podSelector": {}, "ingress": [{"ports": [{"port": "serve-81-tcp"}]}]}))
    assert blocked(named, 81) == set()
    assert blocked(named, 80) == cross((s, d) for s in ALL for d in ALL if d.startswith("x/"))
    assert blocked(named, 81, "UDP") == cross((s, d) for s in ALL for d in ALL if d.startswith("x/"))
    ranged = world(("x", {"podSelector": {}, "ingress": [{"ports": [{"port": 79, "endPort": 80, "protocol": "TCP"}]}]}))
    assert blocked(ranged, 80) == set() and blocked(ranged, 81) != set()


def test_default_deny_egress_and_egress_to_dns_only():
    w = world(("x", {"podSelector": {}, "policyTypes": ["Egress"]}))
    assert blocked(w) == cross((s, d) for s in ALL for d in ALL if s.startswith("x/"))
    dns = world(("x", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]}))
    assert blocked(dns, 53, "UDP") == set()
    assert blocked(dns, 80) == cross((s, d) for s in ALL for d in ALL if s.startswith("x/"))


def test_connection_needs_both_ends():
    w = world(("x", {"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"],
                     "egress": [{"to": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]}),
              ("x", {"podSelector": {"matchLabels": {"pod": "b"}}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "c"}}}]}]}))
    t = truth_table(w, 80)
    assert not t[("x/a", "x/b")]  # egress allows it, ingress at x/b does not
    assert t[("x/c", "x/b")] and not t[("x/a", "x/c")]


def test_traffic_from_the_node_passes():
    w = world(DENY_IN_X)
    dst = next(p for p in w.pods if p.namespace == "x" and p.name == "a")
    from podnet.policy.evaluate import ingress_allowed

    assert ingress_allowed(w, "172.31.0.11", dst, 80, "TCP")
    assert not ingress_allowed(w, "172.31.0.12", dst, 80, "TCP")


def test_policy_types_default_from_the_rules():
    p = parse_network_policy({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "p"},
                              "spec": {"podSelector": {}, "egress": [{}]}}, "t")
    assert p["spec"]["policyTypes"] == ["Egress", "Ingress"]
    assert parse_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}, "t")["metadata"]["labels"] == \
        {"kubernetes.io/metadata.name": "x"}


@pytest.mark.parametrize("spec,field", [
    ({}, "spec.podSelector"),
    ({"podSelector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}}, "spec.podSelector.matchExpressions[0].operator"),
    ({"podSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}, "spec.podSelector.matchExpressions[0].values"),
    ({"podSelector": {}, "ingress": [{"ports": [{"port": "http", "endPort": 90}]}]}, "spec.ingress[0].ports[0].endPort"),
    ({"podSelector": {}, "ingress": [{"ports": [{"port": 90, "endPort": 80}]}]}, "spec.ingress[0].ports[0].endPort"),
    ({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["192.168.0.0/16"]}}]}]},
     "spec.ingress[0].from[0].ipBlock.except[0]"),
    ({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}]}, "spec.ingress[0].from[0]"),
    ({"podSelector": {}, "policyTypes": ["Sideways"]}, "spec.policyTypes"),
])
def test_bad_policies_name_the_field(spec, field):
    with pytest.raises(ValidationError) as e:
        parse_network_policy({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "p"},
                              "spec": spec}, "np.yaml")
    assert e.value.field == field


def test_allowed_is_symmetric_only_when_policies_are():
    w = world(DENY_IN_X)
    x_a = next(p for p in w.pods if (p.namespace, p.name) == ("x", "a"))
    y_a = next(p for p in w.pods if (p.namespace, p.name) == ("y", "a"))
    assert allowed(w, x_a, y_a, 80) and not allowed(w, y_a, x_a, 80)


def test_a_pod_always_reaches_itself():
    w = world(DENY_IN_X, ("x", {"podSelector": {}, "policyTypes": ["Egress"]}))
    x_a = next(p for p in w.pods if (p.namespace, p.name) == ("x", "a"))
    assert allowed(w, x_a, x_a, 80)
