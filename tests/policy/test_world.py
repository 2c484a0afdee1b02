"""Stored API objects -> the policy World (what the agent enforces and the probe expects)."""

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
