"""The controller manager's controllers on a real (SQLite) store: Deployments get their replicas
(owned pods, the newest removed first) and a status; EndpointSlices follow Ready pods."""

from __future__ import annotations

import json

import pytest

from podnet.api import kinds
from podnet.api.deployment import parse_deployment
from podnet.api.service import parse_service
from podnet.apiserver import objects
from podnet.controllers import deployments, endpointslices
from podnet.store.sqlite import SQLiteStore

DEP = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
       "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "c", "command": ["sleep", "1"],
                                                      "ports": [{"name": "http", "containerPort": 8080}]}]}}}}


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(str(tmp_path / "s.db"))
    s.put("/podnet/nodes/node1", json.dumps({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node1"},
                                             "spec": {}, "status": {}}))
    return s


def pods(store) -> list[dict]:
    return objects.list_objects(store, kinds.BY_KIND["Pod"])[0]


def test_replicas_are_made_and_removed_newest_first(store):
    objects.apply(store, parse_deployment(DEP, "t"))
    assert deployments.sync(store) == 3
    made = pods(store)
    assert len(made) == 3 and all(p["metadata"]["ownerReferences"][0]["name"] == "web" for p in made)
    assert all(p["spec"]["nodeName"] == "node1" for p in made)  # scheduled on the way in
    assert deployments.sync(store) == 0  # nothing to do twice
    objects.scale(store, "default", "web", 1)
    assert deployments.sync(store) == 2
    live = [p for p in pods(store) if not p["metadata"].get("deletionTimestamp")]
    oldest = min(made, key=lambda p: p["metadata"]["creationTimestamp"])["metadata"]["creationTimestamp"]
    assert len(live) == 1 and live[0]["metadata"]["creationTimestamp"] == oldest
    dep = objects.get(store, kinds.BY_KIND["Deployment"], "default", "web")
    assert dep["status"]["replicas"] == 1 and dep["status"]["readyReplicas"] == 0


def test_endpoint_slices_follow_ready_pods_and_vanish_with_their_service(store):
    objects.apply(store, parse_service({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                                        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}},
                                       "t"))
    objects.apply(store, parse_deployment(DEP, "t"))
    deployments.sync(store)
    assert endpointslices.sync(store) == 1
    slices = json.loads(store.get("/podnet/endpointslices/default/web").value)
    assert slices["items"] == []  # nothing is Ready yet
    first = pods(store)[0]

    def ready(obj: dict) -> None:
        obj["status"].update(podIP="10.244.1.7", conditions=[{"type": "Ready", "status": "True"}])

    objects.update(store, kinds.BY_KIND["Pod"], "default", first["metadata"]["name"], ready)
    assert endpointslices.sync(store) == 1
    slices = json.loads(store.get("/podnet/endpointslices/default/web").value)
    assert [(e["addresses"], sl["ports"][0]["port"]) for sl in slices["items"] for e in sl["endpoints"]] == \
        [(["10.244.1.7"], 8080)]
    assert endpointslices.sync(store) == 0
    objects.delete(store, kinds.BY_KIND["Service"], "default", "web")
    endpointslices.sync(store)
    assert store.get("/podnet/endpointslices/default/web") is None


def test_endpoint_slices_from_events_equal_a_full_pass(store):
    """Events recompute only the services they touch; whatever they were, a full pass
    afterwards finds nothing to change. A Pod event touches only the services selecting it."""
    def svc(name, app, ns="default"):
        return parse_service({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
                              "spec": {"selector": {"app": app}, "ports": [{"port": 80, "targetPort": 8080}]}}, "t")

    def pod(name, app, ip, ready=True):
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
                "spec": {"nodeName": "node1", "containers": [{"name": "c"}]},
                "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}

    objects.apply(store, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
    for i in range(50):
        objects.apply(store, svc(f"s{i}", f"app{i}"))
    controller = endpointslices.EndpointSlices()
    _, rev = store.list("/podnet/")
    controller(store)  # the first run is a full pass
    written = []

    def step(change):
        nonlocal rev
        change()
        events = store.watch("/podnet/", rev, 0.1)
        if events:
            rev = events[-1].revision
        written.append(controller(store, events=events))

    step(lambda: store.put("/podnet/pods/default/a", json.dumps(pod("a", "app3", "10.244.1.2"))))
    assert written[-1] == 1  # only s3's slices
    step(lambda: store.put("/podnet/pods/default/a", json.dumps(pod("a", "app4", "10.244.1.2"))))
    assert written[-1] == 2  # s3 loses it, s4 gains it
    step(lambda: store.put("/podnet/pods/default/b", json.dumps(pod("b", "app4", "10.244.1.3", ready=False))))
    step(lambda: objects.apply(store, svc("s4", "app3")))  # the selector changes
    step(lambda: objects.apply(store, svc("s4", "app4", ns="other")))  # same name, another namespace
    step(lambda: store.delete("/podnet/pods/default/a"))
    step(lambda: store.delete("/podnet/services/default/s7"))
    step(lambda: store.put("/podnet/pods/default/c", "{not json"))
    assert endpointslices.sync(store) == 0  # a full pass agrees with what the events did
    assert store.get("/podnet/endpointslices/default/s7") is None
