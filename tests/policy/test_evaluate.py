"""NetworkPolicy semantics (the oracle) on the e2e truth-table model: namespaces x, y, z with
pods a, b, c each serving TCP/UDP 80 and 81. Each case (tests/policy/cases.py) states exactly
which pairs are blocked; the lab test checks real packets against the same cases."""

import pytest

from podnet.api.errors import ValidationError
from podnet.api.networkpolicy import parse_namespace, parse_network_policy
from podnet.policy.evaluate import PodInfo, World, allowed, selector_matches, truth_table

from tests.policy.cases import ALL, CASES, NODE_OF, NS, PODS, PORTS


def world(*policies, namespaces=None):
    """The cases' cluster: pod p of namespace i on NODE_OF[p] = node<j+1>, with IP 10.244.<j+1>.<i+2>."""
    pods = [PodInfo(p, n, f"10.244.{j + 1}.{i + 2}", node=NODE_OF[p], labels=(("pod", p),), ports=PORTS)
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


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_oracle_matches_the_stated_truth_table(case):
    ip_of = {f"{p.namespace}/{p.name}": p.ip for p in world().pods}
    ip_of.update({f"node{i}": f"10.244.{i}.0/24" for i in (1, 2, 3)})
    labels = {n: {"ns": n, "kubernetes.io/metadata.name": n, **case.ns_labels.get(n, {})} for n in NS}
    w = world(*case.specs(ip_of), namespaces=labels)
    for (port, proto), expected in case.blocked.items():
        assert blocked(w, port, proto) == expected, (port, proto)


def test_there_are_at_least_30_cases_and_they_cover_the_kinds():
    assert len(CASES) >= 30
    text = repr([c.policies for c in CASES])
    for needle in ("namespaceSelector", "matchExpressions", "ipBlock", "except", "endPort", "serve-80-tcp", "'Egress'", "UDP"):
        assert needle in text


def test_match_expressions_operators():
    assert selector_matches({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist", "values": []}]}, {"pod": "a"})
    assert not selector_matches({"matchExpressions": [{"key": "tier", "operator": "Exists", "values": []}]}, {"pod": "a"})
    assert selector_matches({"matchExpressions": [{"key": "pod", "operator": "NotIn", "values": ["b"]}]}, {"x": "1"})
    assert not selector_matches({"matchExpressions": [{"key": "pod", "operator": "In", "values": ["b"]}]}, {"x": "1"})


def test_egress_to_dns_only():
    dns = world(("x", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]}))
    assert blocked(dns, 53, "UDP") == set()
    assert blocked(dns, 80) == cross((s, d) for s in ALL for d in ALL if s.startswith("x/"))


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
