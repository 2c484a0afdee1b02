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
