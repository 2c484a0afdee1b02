"""EndpointSlices computed from Services and Pods: the ready/serving/terminating conditions the
EndpointSlice controller writes (Kubernetes >= 1.26), and which pods are listed at all."""

from __future__ import annotations

from podnet.api.service import parse_service
from podnet.proxy import endpoints


def svc(name="web", **spec):
    doc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
           "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}], **spec}}
    return parse_service(doc, "t")


def pod(name, ip, ready=True, deleting=False, node="node1", phase="Running", **spec):
    p = {"metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
         "spec": {"nodeName": node, "containers": [{"name": "c", "ports": [{"containerPort": 8080}]}], **spec},
         "status": {"phase": phase, "podIP": ip,
                    "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}
    if deleting:
        p["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return p


def listed(service, pods) -> dict[str, dict]:
    """address -> conditions of every endpoint the service's slices hold."""
    out = endpoints.compute(service, pods)
    return {ep["addresses"][0]: ep["conditions"] for sl in out["items"] for ep in sl["endpoints"]}


def test_live_ready_terminating_and_not_ready_pods():
    got = listed(svc(), [pod("a", "10.244.1.2"), pod("b", "10.244.1.3", deleting=True),
                         pod("c", "10.244.1.4", ready=False, deleting=True), pod("d", "10.244.1.5", ready=False)])
    assert got == {
        "10.244.1.2": {"ready": True, "serving": True, "terminating": False},    # live and Ready
        "10.244.1.3": {"ready": False, "serving": True, "terminating": True},    # being deleted, still Ready
        "10.244.1.4": {"ready": False, "serving": False, "terminating": True},   # being deleted, no longer Ready
    }  # d: neither Ready nor terminating: not listed


def test_publish_not_ready_addresses_lists_every_pod_as_ready():
    s = svc()
    s["spec"]["publishNotReadyAddresses"] = True
    got = listed(s, [pod("a", "10.244.1.2", ready=False), pod("b", "10.244.1.3", ready=False, deleting=True)])
    assert got == {"10.244.1.2": {"ready": True, "serving": False, "terminating": False},
                   "10.244.1.3": {"ready": True, "serving": False, "terminating": True}}


def test_finished_pods_and_pods_without_an_ip_are_never_endpoints():
    got = listed(svc(), [pod("a", "10.244.1.2", phase="Succeeded", deleting=True), pod("b", "10.244.1.3", phase="Failed"),
                         pod("c", "")])
    assert got == {}


def test_a_host_network_pod_is_an_endpoint_at_its_nodes_address():
    out = endpoints.compute(svc(), [pod("h", "172.31.0.11", hostNetwork=True)])
    (ep,) = out["items"][0]["endpoints"]
    assert ep["addresses"] == ["172.31.0.11"] and ep["nodeName"] == "node1"
    assert ep["conditions"] == {"ready": True, "serving": True, "terminating": False}
    assert out["items"][0]["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]


def test_hostname_when_the_subdomain_is_the_service_also_while_terminating():
    out = endpoints.compute(svc("db"), [pod("a", "10.244.1.2", deleting=True, hostname="db-0", subdomain="db"),
                                        pod("b", "10.244.1.3", hostname="db-1", subdomain="other")])
    eps = {ep["addresses"][0]: ep for sl in out["items"] for ep in sl["endpoints"]}
    assert eps["10.244.1.2"]["hostname"] == "db-0" and eps["10.244.1.2"]["conditions"]["terminating"] is True
    assert "hostname" not in eps["10.244.1.3"]


def test_ready_condition_ignores_deletion_but_pod_ready_does_not():
    p = pod("a", "10.244.1.2", deleting=True)
    assert endpoints.ready_condition(p) is True
    assert endpoints.pod_ready(p) is False
    assert endpoints.pod_ready(pod("b", "10.244.1.3")) is True
    assert endpoints.ready_condition({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}) is False
