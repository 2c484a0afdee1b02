"""Services in a 3-node lab: ClusterIP, NodePort from every node, LoadBalancer, spreading,
affinity, traffic policies, endpoints following a deployment's scale, hairpin, reject."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import time

import pytest

from podnet.api.deployment import parse_deployment
from podnet.api.pod import parse_pod
from podnet.api.service import parse_service
from podnet.apiserver import objects
from podnet.lab import pods as pods_mod
from podnet.lab import probe, topology, workloads
from tests.lab.conftest import wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow]
ECHO = [sys.executable, "-m", "podnet.lab.echo", "--port", "8080"]


def service(name, selector, **spec):
    doc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
           "spec": {"selector": selector, "ports": [{"name": "http", "port": 80, "targetPort": "http"}], **spec}}
    return parse_service(doc, "test")


def deployment(name, replicas):
    return parse_deployment({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
                             "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                                      "template": {"metadata": {"labels": {"app": name}},
                                                   "spec": {"containers": [{"name": "echo", "command": ECHO,
                                                                            "ports": [{"name": "http", "containerPort": 8080}]}]}}}},
                            "test")


class Cluster:
    def __init__(self, lab):
        self.lab, self.state = lab, lab.state

    def __enter__(self):
        self.ctx = topology.store_context(self.state)
        self.ctx.__enter__()
        self.store = self.lab.store()
        return self

    def __exit__(self, *exc):
        self.store.close()
        self.ctx.__exit__(*exc)

    def svc(self, s):
        workloads.apply_service(self.store, s)
        return json.loads(self.store.get(f"/podnet/services/default/{s['metadata']['name']}").value)

    def pod(self, name, node, labels):
        doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
               "spec": {"nodeName": node, "containers": [{"name": "echo", "command": ECHO,
                                                         "ports": [{"name": "http", "containerPort": 8080}]}]}}
        return pods_mod.create_pod(self.state, self.store, parse_pod(doc, "test"))

    def endpoints(self, name):
        kv = self.store.get(f"/podnet/endpointslices/default/{name}")
        if kv is None:
            return []
        return sorted(a for sl in json.loads(kv.value)["items"] for ep in sl["endpoints"] for a in ep["addresses"])


def backends(netns, ip, port, n=30):
    return collections.Counter(probe.tcp_exchange(netns, ip, port)[0].split(" ")[-1] for _ in range(n))


FILLERS = 10000


@pytest.fixture(scope="module", params=["vxlan", "bgp", f"vxlan+{FILLERS}"])
def cluster(tmp_path_factory, request):
    """Services behave the same whatever wires the pods: a bridge per node (vxlan) or routed /32s
    (bgp), and with 10,000 other services (each with an endpoint) already in every node's table."""
    from tests.lab.conftest import module_lab

    backend, _, fillers = request.param.partition("+")
    with module_lab(tmp_path_factory, "s", 3, backend=backend) as lab, Cluster(lab) as c:
        if fillers:
            filler = c.pod("filler", "node2", {"app": "filler"})
            last = None
            for i in range(int(fillers)):
                last = service(f"f{i}", {"app": "filler"}, clusterIP=f"10.96.{100 + i // 250}.{i % 250 + 1}")
                objects.apply(c.store, last)
            assert wait_for(lambda: c.endpoints(last["metadata"]["name"]) == [filler["status"]["podIP"]], 60)
            assert wait_for(lambda: probe.tcp_exchange(c.state.node("node1").netns, last["spec"]["clusterIP"], 80,
                                                       timeout=0.5)[0].endswith("filler"), 60)
        workloads.apply_deployment(c.state, c.store, deployment("web", 3))
        c.client = c.pod("client", "node1", {"role": "client"})
        c.web = c.svc(service("web", {"app": "web"}, type="LoadBalancer"))
        assert wait_for(lambda: len(c.endpoints("web")) == 3, 5)
        time.sleep(0.5)
        yield c


def client_ns(c):
    return c.client["metadata"]["annotations"]["podnet.io/netns"]


def test_cluster_ip_spreads_over_every_endpoint_and_keeps_the_source(cluster):
    c = cluster
    seen = backends(client_ns(c), c.web["spec"]["clusterIP"], 80)
    web_pods = {p["metadata"]["name"] for p in workloads.owned_pods(c.state, c.store, deployment("web", 3))}
    assert set(seen) == web_pods, seen
    first, err, _ = probe.tcp_exchange(client_ns(c), c.web["spec"]["clusterIP"], 80)
    assert first.split()[0] == c.client["status"]["podIP"]  # pod to service: no source NAT


def test_node_port_from_every_node_and_load_balancer_from_outside(cluster):
    c = cluster
    node_port = c.web["spec"]["ports"][0]["nodePort"]
    for node in c.state.nodes:
        got = backends(c.state.underlay, node.ip, node_port, n=30)  # 3 backends: 12 samples missed one 2% of the time
        assert len(got) == 3 and "" not in got, (node.name, got)
    lb = c.web["status"]["loadBalancer"]["ingress"][0]["ip"]
    got = backends(c.state.underlay, lb, 80, n=30)
    assert len(got) == 3 and "" not in got, got


def test_session_affinity_pins_a_client(cluster):
    c = cluster
    sticky = c.svc(service("sticky", {"app": "web"}, sessionAffinity="ClientIP",
                           sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}))
    assert wait_for(lambda: len(c.endpoints("sticky")) == 3, 5)
    time.sleep(0.3)
    seen = backends(client_ns(c), sticky["spec"]["clusterIP"], 80, n=20)
    assert len(seen) == 1 and "" not in seen, seen


def test_service_without_endpoints_is_refused_at_once(cluster):
    c = cluster
    empty = c.svc(service("empty", {"app": "nothing"}, type="NodePort"))
    time.sleep(1.5)
    _, err, took = probe.tcp_exchange(client_ns(c), empty["spec"]["clusterIP"], 80)
    assert err == "ConnectionRefusedError" and took < 0.5, (err, took)
    _, err, took = probe.tcp_exchange(c.state.underlay, c.state.nodes[1].ip, empty["spec"]["ports"][0]["nodePort"])
    assert err == "ConnectionRefusedError" and took < 0.5, (err, took)


def test_a_pod_reaches_itself_through_its_service(cluster):
    c = cluster
    me = c.pod("selfish", "node2", {"app": "selfish"})
    svc = c.svc(service("selfish", {"app": "selfish"}))
    assert wait_for(lambda: c.endpoints("selfish") == [me["status"]["podIP"]], 5)
    time.sleep(0.5)
    first, err, _ = probe.tcp_exchange(me["metadata"]["annotations"]["podnet.io/netns"], svc["spec"]["clusterIP"], 80)
    assert first.endswith("selfish"), (first, err)


def test_traffic_policy_local(cluster):
    c = cluster
    only = c.pod("local-only", "node3", {"app": "local-only"})
    svc = c.svc(service("local-only", {"app": "local-only"}, type="NodePort", externalTrafficPolicy="Local"))
    internal = c.svc(service("local-int", {"app": "local-only"}, internalTrafficPolicy="Local"))
    assert wait_for(lambda: c.endpoints("local-only") == [only["status"]["podIP"]], 5)
    time.sleep(1.5)
    port = svc["spec"]["ports"][0]["nodePort"]
    first, err, _ = probe.tcp_exchange(c.state.underlay, c.state.node("node3").ip, port)
    assert first.split() == ["172.31.0.1", "local-only"], (first, err)  # the client's own address: no SNAT
    _, err, _ = probe.tcp_exchange(c.state.underlay, c.state.node("node1").ip, port, timeout=1)
    assert err in ("TimeoutError", "timeout"), err  # node1 has no local endpoint: dropped
    _, err, _ = probe.tcp_exchange(client_ns(c), internal["spec"]["clusterIP"], 80, timeout=1)
    assert err == "ConnectionRefusedError"  # the client is on node1: no local endpoint there


def test_scaling_updates_endpoints_within_two_seconds(cluster):
    c = cluster
    dep = deployment("scaled", 2)
    workloads.apply_deployment(c.state, c.store, dep)
    svc = c.svc(service("scaled", {"app": "scaled"}))
    assert wait_for(lambda: len(c.endpoints("scaled")) == 2, 3)
    for replicas in (5, 1, 3):
        workloads.scale(c.state, c.store, "default", "scaled", replicas)
        start = time.monotonic()
        assert wait_for(lambda n=replicas: len(c.endpoints("scaled")) == n, 2), (replicas, c.endpoints("scaled"))
        took = time.monotonic() - start
        assert took < 2
    time.sleep(1)
    seen = backends(client_ns(c), svc["spec"]["clusterIP"], 80, n=30)
    assert len(seen) == 3 and "" not in seen, seen


def test_the_proxy_reports_its_syncs_and_programming_latency(cluster):
    """kube-proxy's metrics from every agent (on its node's 127.0.0.1:10249), and the last
    sync per node in `get nodes -o wide`."""
    c = cluster
    probe_svc = c.svc(service("metered", {"app": "web"}))
    assert wait_for(lambda: len(c.endpoints("metered")) == 3, 5)
    time.sleep(0.5)
    node = c.state.node("node1").netns
    text = subprocess.run(["ip", "netns", "exec", node, sys.executable, "-c",
                           "import urllib.request as u; print(u.build_opener(u.ProxyHandler({})).open("
                           "'http://127.0.0.1:10249/metrics', timeout=5).read().decode())"], capture_output=True, text=True, timeout=20).stdout
    values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines() if line and not line.startswith("#")}
    assert values["podnet_proxy_services"] >= 2 and values["podnet_proxy_endpoints"] >= 6, values
    assert values["podnet_proxy_network_programming_duration_seconds_count"] >= 1, text
    assert values['podnet_proxy_sync_proxy_rules_duration_seconds_bucket{le="+Inf"}'] >= 1
    assert time.time() - values["podnet_proxy_sync_proxy_rules_last_timestamp_seconds"] < 30
    assert probe_svc["spec"]["clusterIP"]
    from click.testing import CliRunner

    from podnet.cli.main import cli

    def wide() -> str:
        return CliRunner().invoke(cli, ["get", "nodes", "-o", "wide"], env={"PODNET_LAB_DIR": c.state.directory}).output

    assert wait_for(lambda: wide().count(" svc, synced ") == 3, 12), wide()  # published with the next heartbeat
    assert "PROXY" in wide()
