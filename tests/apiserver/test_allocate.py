"""Allocation of ClusterIPs, NodePorts and LoadBalancer addresses: unique, kept on re-apply,
released when no longer used, and never half-done."""

from __future__ import annotations

import copy

import pytest

from podnet.api.errors import ValidationError
from podnet.api.service import parse_service
from podnet.apiserver.allocate import allocate, release_all
from podnet.store.sqlite import SQLiteStore


def svc(name: str, **spec) -> dict:
    return parse_service({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                          "spec": {"selector": {"app": name}, "ports": [{"port": 80}], **spec}}, "test")


@pytest.fixture
def store(tmp_path):
    return SQLiteStore(str(tmp_path / "s.db"))


def test_every_service_gets_its_own_addresses_and_keeps_them(store):
    a = allocate(store, svc("a", type="LoadBalancer"))
    b = allocate(store, svc("b", type="LoadBalancer"))
    assert a["spec"]["clusterIP"] != b["spec"]["clusterIP"]
    assert a["spec"]["ports"][0]["nodePort"] != b["spec"]["ports"][0]["nodePort"]
    assert a["status"]["loadBalancer"]["ingress"] != b["status"]["loadBalancer"]["ingress"]
    again = allocate(store, svc("a", type="LoadBalancer"), previous=copy.deepcopy(a))
    assert again["spec"] == a["spec"] and again["status"] == a["status"]


def test_a_taken_cluster_ip_is_refused_and_nothing_is_held(store):
    a = allocate(store, svc("a"))
    with pytest.raises(ValidationError, match="already allocated"):
        allocate(store, svc("b", clusterIP=a["spec"]["clusterIP"], type="NodePort"))
    held = [kv.value for kv in store.list("/podnet/allocations/")[0]]
    assert held == ["default/a"]


def test_what_an_update_drops_is_released(store):
    a = allocate(store, svc("a", type="NodePort"))
    allocate(store, svc("a"), previous=a)  # NodePort -> ClusterIP: the node port goes
    kinds = sorted(kv.key.split("/")[3] for kv in store.list("/podnet/allocations/")[0])
    assert kinds == ["clusterips"]
    release_all(store, "default/a")
    assert store.list("/podnet/allocations/")[0] == []
