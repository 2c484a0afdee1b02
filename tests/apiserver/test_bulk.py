"""Many Services in few transactions: the same results as applying them one by one, on both
stores, also with a conflicting writer and with two bulk applies at once."""

from __future__ import annotations

import json
import threading

import pytest

from podnet.api.errors import ValidationError
from podnet.api.service import parse_service
from podnet.apiserver import bulk, objects
from tests.store.test_store import store  # noqa: F401 - the same fixture: each test on SQLite and etcd


def svc(name: str, namespace: str = "default", **spec) -> dict:
    return parse_service({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
                          "spec": {"selector": {"app": name}, "ports": [{"port": 80}], **spec}}, "test")


def owners(store) -> dict[str, str]:
    return {kv.key: kv.value for kv in store.list("/podnet/allocations/")[0]}


def test_a_bulk_apply_gives_what_single_applies_give(store):  # noqa: F811
    objs = [svc(f"s{i}") for i in range(90)] + [svc("fixed", clusterIP="10.96.50.50"), svc("np", type="NodePort"),
                                              svc("lb", type="LoadBalancer")]
    results = bulk.apply_services(store, objs)
    assert results == [("created", None)] * len(objs)
    stored = [json.loads(store.get(f"/podnet/services/default/{o['metadata']['name']}").value) for o in objs]
    ips = [s["spec"]["clusterIP"] for s in stored]
    assert len(set(ips)) == len(objs) and stored[90]["spec"]["clusterIP"] == "10.96.50.50"
    assert stored[91]["spec"]["ports"][0]["nodePort"] and stored[92]["status"]["loadBalancer"]["ingress"][0]["ip"]
    assert all(s["metadata"]["uid"] and s["metadata"]["creationTimestamp"] for s in stored)
    held = owners(store)
    assert all(held[f"/podnet/allocations/clusterips/{s['spec']['clusterIP']}"] == f"default/{s['metadata']['name']}"
               for s in stored)
    assert len(held) == len(objs) + 3  # a ClusterIP each, the two NodePorts, the LoadBalancer address
    assert bulk.apply_services(store, objs) == [("unchanged", None)] * len(objs)  # again: nothing to write


def test_conflicts_and_missing_namespaces_are_reported_per_object(store):  # noqa: F811
    objects.apply(store, svc("owner", clusterIP="10.96.60.60"))
    objs = [svc("a"), svc("thief", clusterIP="10.96.60.60"), svc("lost", namespace="nowhere"), svc("b")]
    results = bulk.apply_services(store, objs)
    assert results[0] == ("created", None) and results[3] == ("created", None)
    assert isinstance(results[1][1], ValidationError) and "already allocated" in str(results[1][1])
    assert isinstance(results[2][1], objects.NotFound)
    assert store.get("/podnet/services/default/thief") is None


def test_a_writer_that_takes_a_key_meanwhile_sends_the_batch_one_by_one(store, monkeypatch):  # noqa: F811
    real = bulk.Recorder.__init__

    def snapshot_then_race(self, s):
        real(self, s)
        objects.apply(store, svc("s3"))  # created after the snapshot: the batch's create_all must fail

    monkeypatch.setattr(bulk.Recorder, "__init__", snapshot_then_race)
    results = bulk.apply_services(store, [svc(f"s{i}") for i in range(6)])
    assert [r[0] for r in results] == ["created", "created", "created", "unchanged", "created", "created"], results


def test_two_bulk_applies_at_once_never_share_an_address(store):  # noqa: F811
    out: list = []

    def run(prefix: str) -> None:
        out.extend(bulk.apply_services(store, [svc(f"{prefix}{i}") for i in range(80)]))

    threads = [threading.Thread(target=run, args=(p,)) for p in ("x", "y")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == [("created", None)] * 160
    ips = [json.loads(kv.value)["spec"]["clusterIP"] for kv in store.list("/podnet/services/")[0]]
    assert len(ips) == 160 and len(set(ips)) == 160
