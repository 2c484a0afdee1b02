"""A lab per test (or per module): unique name, private directory, always torn down."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
import uuid

import pytest

from podnet.api.pod import parse_pod
from podnet.lab import pods as pods_mod
from podnet.lab import topology
from podnet.lab.state import LabState
from podnet.store import open_store


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05):
    """Poll until `predicate()` is truthy; its last value (falsy when the time ran out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


class Lab:
    def __init__(self, state: LabState) -> None:
        self.state = state

    def store(self):
        return open_store(self.state.store_url)

    def apply_pod(self, name: str, node: str, namespace: str = "default", labels: dict | None = None,
                  annotations: dict | None = None, wait: bool = True) -> dict:
        doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace, "labels": labels or {},
                                                               "annotations": annotations or {}},
               "spec": {"nodeName": node, "containers": [{"name": "echo", "command": [
                   sys.executable, "-m", "podnet.lab.echo", "--port", "8080"]}]}}
        with topology.store_context(self.state):
            store = self.store()
            try:
                return pods_mod.create_pod(self.state, store, parse_pod(doc, "test"), wait=wait)
            finally:
                store.close()

    def pods(self, namespace: str = "default") -> list[dict]:
        """The pods a test made (the lab's own, such as kube-system/podnet-dns, are left out)."""
        with topology.store_context(self.state):
            store = self.store()
            try:
                return pods_mod.list_pods(self.state, store, namespace)
            finally:
                store.close()


def _need_tools():
    if os.geteuid() != 0 or not shutil.which("ip") or not os.path.exists("/bin/busybox"):
        pytest.skip("the lab needs root, iproute2 and busybox-static")


@contextlib.contextmanager
def module_lab(tmp_path_factory, prefix: str, nodes: int, need: tuple[str, ...] = ("nft",), backend: str = "vxlan",
               backend_fields: dict | None = None):
    """A lab shared by a test module; skipped without root or the tools named in `need`."""
    need = need + (("bird",) if backend == "bgp" else ())
    if os.geteuid() != 0 or any(shutil.which(tool) is None for tool in need):
        pytest.skip(f"needs root and {', '.join(need)}")
    name = prefix + uuid.uuid4().hex[:5]
    directory = str(tmp_path_factory.mktemp(prefix) / name)
    lab = Lab(topology.up(name, directory, nodes, backend, "sqlite", backend_fields=backend_fields))
    try:
        yield lab
    finally:
        topology.down(name, directory)


@pytest.fixture
def make_lab(tmp_path):
    made = []

    def make(nodes: int = 3, backend: str = "vxlan", store: str = "sqlite", ttl: int = 24 * 3600, subnets: int = 1,
             route_reflectors: int = 0, pool_cidr: str = "", block_size: int = 0) -> Lab:
        _need_tools()
        if backend == "bgp" and not shutil.which("bird"):
            pytest.skip("the bgp backend needs bird2")
        if store == "etcd" and not shutil.which("etcd"):
            pytest.skip("etcd-server is not installed")
        name = "t" + uuid.uuid4().hex[:5]
        directory = str(tmp_path / name)
        made.append((name, directory))
        return Lab(topology.up(name, directory, nodes, backend, store, ttl=ttl, subnets=subnets,
                               route_reflectors=route_reflectors, pool_cidr=pool_cidr, block_size=block_size))

    yield make
    for name, directory in made:
        topology.down(name, directory)


def pods_a_b_and_web(lab: "Lab", store) -> None:
    """The scene the trace and topo tests look at: pod a on node1 and pod b on node2 (labels
    app=a, app=b), and Service web (80 -> 8080) in front of b."""
    from podnet.api.service import parse_service
    from podnet.lab import workloads

    lab.apply_pod("a", "node1", labels={"app": "a"})
    lab.apply_pod("b", "node2", labels={"app": "b"})
    workloads.apply_service(store, parse_service(
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
         "spec": {"selector": {"app": "b"}, "ports": [{"port": 80, "targetPort": 8080}]}}, "test"))


@pytest.fixture(scope="module")
def six(lab):
    """Six echo pods, two on each node of the requesting module's 3-node `lab`, serving."""
    from tests.lab.test_cluster import six_pods

    pods = six_pods(lab)
    time.sleep(0.5)  # the echo servers start listening
    return pods
