"""Stored API objects -> the policy World (what the agent enforces and the probe expects)."""

import json

from podnet.api.networkpolicy import parse_network_policy
from podnet.policy import render
from podnet.policy.evaluate import egress_allowed, ingress_allowed
from podnet.policy.world import build_world, node_addresses, pod_info


def _pod(name, ns, ip, node="node1", labels=None, ports=None):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "command": ["x"], "ports": ports or []}]},
            "status": {"phase": "Running", "podIP": ip}}


def test_pod_info_carries_labels_node_and_named_ports():
    info = pod_info(_pod("a", "x", "10.244.1.5", "node2", {"pod": "a", "app": "web"},
                         [{"name": "http", "containerPort": 8080}, {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                          {"containerPort": 9000}]))
    assert (info.name, info.namespace, info.ip, info.node) == ("a", "x", "10.244.1.5", "node2")
    assert info.label_dict == {"pod": "a", "app": "web"}
    assert set(info.ports) == {("http", 8080, "TCP"), ("dns", 53, "UDP"), ("", 9000, "TCP")}


def test_a_pod_without_an_ip_is_left_out():
    pod = _pod("a", "x", "")
    assert pod_info(pod) is None
    assert build_world([pod], [], [], []).pods == []


def test_namespaces_stored_or_implied_by_their_pods():
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x", "labels": {"team": "red",
                                                                                        "kubernetes.io/metadata.name": "x"}}}
    w = build_world([_pod("a", "x", "10.244.1.2"), _pod("b", "y", "10.244.1.3")], [ns], [], [])
    assert w.ns_labels("x") == {"team": "red", "kubernetes.io/metadata.name": "x"}
    assert w.ns_labels("y") == {"kubernetes.io/metadata.name": "y"}


def test_node_addresses_are_its_internal_ip_and_pod_gateway():
    node = {"metadata": {"name": "node1"}, "spec": {"podCIDR": "10.244.1.0/24"},
            "status": {"addresses": [{"type": "InternalIP", "address": "172.31.0.11"}, {"type": "Hostname", "address": "node1"}]}}
    assert node_addresses(node) == {"172.31.0.11", "10.244.1.1"}
    assert build_world([], [], [], [node]).node_ips == {"node1": {"172.31.0.11", "10.244.1.1"}}


def test_policies_come_in_a_stable_order():
    pols = [{"metadata": {"namespace": ns, "name": n}, "spec": {}} for ns, n in (("y", "b"), ("x", "z"), ("x", "a"))]
    w = build_world([], [], pols, [])
    assert [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in w.policies] == [("x", "a"), ("x", "z"), ("y", "b")]


def _node(name, ip, cidr):
    return {"metadata": {"name": name}, "spec": {"podCIDR": cidr},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}]}}


def test_host_network_pods_are_neither_selected_nor_peers():
    """A hostNetwork pod has its node's IP: NetworkPolicy does not apply to it, and a podSelector
    never matches it (else the node's own address would be isolated, admitted or denied)."""
    agent = _pod("agent", "x", "172.31.0.12", "node2", {"app": "web"})
    agent["spec"]["hostNetwork"] = True
    web = _pod("web", "x", "10.244.1.2", "node1", {"app": "web"})
    other = _pod("other", "x", "10.244.2.3", "node2", {"app": "web"})
    policy = parse_network_policy({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                                   "metadata": {"name": "same-app", "namespace": "x"},
                                   "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                                            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}],
                                            "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]}}, "t")
    nodes = [_node("node1", "172.31.0.11", "10.244.1.0/24"), _node("node2", "172.31.0.12", "10.244.2.0/24")]
    w = build_world([agent, web, other], [], [policy], nodes)
    assert pod_info(agent) is None
    assert [p.name for p in w.pods] == ["other", "web"]
    web_info = next(p for p in w.pods if p.name == "web")
    # node2's address (the hostNetwork pod's) is no pod with app=web: denied, both ways
    assert ingress_allowed(w, "172.31.0.12", web_info, 80, "TCP") is False
    assert egress_allowed(w, web_info, "172.31.0.12", 80, "TCP") is False
    assert ingress_allowed(w, "10.244.2.3", web_info, 80, "TCP") is True
    # node2 enforces for its pods only: "other" is isolated, the node's own address is not
    on2 = json.dumps(render.render(w, "node2"))
    assert "10.244.2.3" in on2 and "172.31.0.12" not in on2
    on1 = json.dumps(render.render(w, "node1"))
    assert "10.244.2.3" in on1 and "172.31.0.12" not in on1  # the peer set holds pods only
