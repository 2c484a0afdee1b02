"""Scheduling a new Pod: the least busy Ready node, and only where its host ports are free (the
scheduler's NodePorts filter): every containerPort of a hostNetwork pod, ports[].hostPort of
the others, keyed by (port, protocol)."""

from __future__ import annotations

import json

import pytest

from podnet.api import kinds
from podnet.api.errors import ValidationError
from podnet.api.pod import parse_pod
from podnet.apiserver import objects
from podnet.store.sqlite import SQLiteStore


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(str(tmp_path / "s.db"))
    for name in ("node1", "node2"):
        s.put(f"/podnet/nodes/{name}", json.dumps({
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": {},
            "status": {"conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": objects.now()}]}}))
    return s


def pod(name, *ports, node="", host_network=False, ns="default"):
    """ports: (containerPort, hostPort or None[, protocol])"""
    spec = {"containers": [{"name": "c", "command": ["sleep", "1"], "ports": [
        {"containerPort": p[0], **({"hostPort": p[1]} if p[1] else {}), **({"protocol": p[2]} if len(p) > 2 else {})}
        for p in ports]}]}
    if node:
        spec["nodeName"] = node
    if host_network:
        spec["hostNetwork"] = True
    return parse_pod({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns}, "spec": spec},
                     "t").to_object()


def node_of(store, name, ns="default"):
    return objects.get(store, kinds.BY_KIND["Pod"], ns, name)["spec"]["nodeName"]


def test_a_host_port_goes_where_it_is_free(store):
    objects.apply(store, pod("a", (8080, None), host_network=True, node="node1"))
    objects.apply(store, pod("filler", (80, None), node="node2"))  # node2 now busier, but its 8080 is free
    objects.apply(store, pod("b", (8080, None), host_network=True))
    assert node_of(store, "b") == "node2"
    # without host ports the least busy node, as before (node1: 1 pod, node2: 2)
    objects.apply(store, pod("c", (8080, None)))
    assert node_of(store, "c") == "node1"
    # a hostPort of an ordinary pod collides with a hostNetwork pod's containerPort; UDP does not
    objects.apply(store, pod("u", (53, 8080, "UDP")))
    with pytest.raises(ValidationError) as e:
        objects.apply(store, pod("d", (9000, 8080)))
    assert e.value.field == "spec.containers[0].ports[0]"
    assert e.value.problem == ("no node has port 8080/TCP free: it is taken on node1 by default/a, "
                               "on node2 by default/b")
    assert objects.get(store, kinds.BY_KIND["Pod"], "default", "d") is None


def test_a_named_node_with_the_port_taken_is_refused(store):
    objects.apply(store, pod("other", (8080, None), host_network=True, node="node2"))
    with pytest.raises(ValidationError) as e:
        objects.apply(store, pod("x", (80, None), (8080, None), host_network=True, node="node2"))
    assert e.value.field == "spec.containers[0].ports[1].containerPort"
    assert e.value.problem == "port 8080/TCP is already used on node node2 by hostNetwork pod default/other"
    with pytest.raises(ValidationError) as e:
        objects.apply(store, pod("y", (80, 8080), node="node2", ns="kube-system"))
    assert e.value.field == "spec.containers[0].ports[0].hostPort"
    assert "by hostNetwork pod default/other" in e.value.problem
    objects.apply(store, pod("z", (80, 8080), node="node1"))  # free there
    assert node_of(store, "z") == "node1"
    objects.apply(store, pod("w", (8080, None), node="node2"))  # no host port at all: any node
    assert node_of(store, "w") == "node2"


def test_draining_pods_hold_ports_until_gone_finished_ones_and_the_pod_itself_do_not(store):
    objects.apply(store, pod("a", (8080, None), host_network=True, node="node1"))
    objects.apply(store, pod("b", (8080, None), host_network=True, node="node2"))
    objects.delete(store, kinds.BY_KIND["Pod"], "default", "a")  # marked for its kubelet: still draining
    assert objects.get(store, kinds.BY_KIND["Pod"], "default", "a")["metadata"]["deletionTimestamp"]
    with pytest.raises(ValidationError) as e:
        objects.apply(store, pod("c", (8080, None), host_network=True, node="node1"))
    assert "by hostNetwork pod default/a" in e.value.problem
    objects.delete_pod(store, "default", "a", force=True)  # gone

    def failed(obj):
        obj["status"]["phase"] = "Failed"

    objects.update(store, kinds.BY_KIND["Pod"], "default", "b", failed)
    objects.apply(store, pod("c", (8080, None), host_network=True, node="node1"))
    objects.apply(store, pod("d", (8080, None), host_network=True, node="node2"))
    # the same namespace/name as a pod that holds the port is the pod itself, not a rival
    me = pod("d", (8080, None), host_network=True)
    assert objects.schedule(store, "node2", me) == "node2"
    assert objects.schedule(store, "", me) == "node2"
    # re-applying an existing pod does not schedule it again
    assert objects.apply(store, pod("d", (8080, None), host_network=True)) == "unchanged"


def test_several_ports_blocked_on_different_nodes(store):
    objects.apply(store, pod("a", (8080, None), host_network=True, node="node1"))
    objects.apply(store, pod("b", (53, 9053, "UDP"), node="node2"))
    with pytest.raises(ValidationError) as e:
        objects.apply(store, pod("c", (8080, None), (53, None, "UDP"), (9053, None, "UDP"), host_network=True))
    assert e.value.field == "spec.containers[0].ports[0]"
    assert e.value.problem == ("no node has all of ports 8080/TCP, 9053/UDP free: taken are 8080/TCP on node1 by default/a, "
                               "9053/UDP on node2 by default/b")


def test_host_ports_of_a_pod():
    assert objects.host_ports(pod("a", (80, None), (53, 5353, "UDP"))) == [(5353, "UDP", "spec.containers[0].ports[1].hostPort")]
    assert objects.host_ports(pod("h", (80, None), (53, None, "UDP"), host_network=True)) == [
        (80, "TCP", "spec.containers[0].ports[0].containerPort"), (53, "UDP", "spec.containers[0].ports[1].containerPort")]
    bad = pod("b", (80, None))
    bad["spec"]["containers"][0]["ports"][0]["hostPort"] = "http"
    assert objects.host_ports(bad) == []
    with pytest.raises(ValidationError, match="hostPort: must be a port number"):
        objects.host_ports(bad, strict=True)
