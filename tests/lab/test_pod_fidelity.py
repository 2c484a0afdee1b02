"""Pods as Kubernetes runs them, in a 2-node lab: containers of one pod share localhost,
hostname and /etc/hosts are the pod's own, the subdomain FQDN resolves, a hostNetwork pod has
its node's IP and serves a Service, probes gate endpoints and restart hung containers, and a
deleted pod drains (its open connections finish, new ones go elsewhere) within its grace period."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from podnet.api import kinds
from podnet.api.errors import ValidationError
from podnet.api.pod import parse_pod
from podnet.api.service import parse_service
from podnet.apiserver import objects
from podnet.kernel import netns as kns
from podnet.lab import pods as pods_mod
from podnet.lab import probe, topology, workloads
from tests.lab.conftest import module_lab, wait_for

pytestmark = pytest.mark.root
ECHO = [sys.executable, "-m", "podnet.lab.echo", "--port"]
PODNET = [sys.executable, "-m", "podnet.cli.main"]


class Cluster:
    def __init__(self, lab):
        self.lab, self.state = lab, lab.state

    def pod(self, name, node, containers, labels=None, wait=True, **spec):
        doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
               "spec": {"nodeName": node, "containers": containers, **spec}}
        return pods_mod.create_pod(self.state, self.store, parse_pod(doc, "test"), wait=wait)

    def get(self, name):
        return pods_mod.get_pod(self.store, "default", name)

    def svc(self, name, selector, port, **spec):
        doc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
               "spec": {"selector": selector, "ports": [{"port": 80, "targetPort": port}], **spec}}
        workloads.apply_service(self.store, parse_service(doc, "test"))
        return json.loads(self.store.get(f"/podnet/services/default/{name}").value)

    def cli(self, *args, timeout=20):
        env = dict(os.environ, PODNET_LAB_DIR=self.state.directory)
        return subprocess.run([*PODNET, *args], capture_output=True, text=True, env=env, timeout=timeout)

    def netns(self, name):
        return self.get(name)["metadata"]["annotations"]["podnet.io/netns"]

    def answers(self, ip, port, n=12):
        """Which pods answer n fresh connections from the client (the echo server's greeting)."""
        return {probe.tcp_exchange(self.netns("client"), ip, port, timeout=1)[0].split(" ")[-1] for _ in range(n)}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with module_lab(tmp_path_factory, "f", 2) as lab:
        with topology.store_context(lab.state):
            c = Cluster(lab)
            c.store = lab.store()
            try:
                c.pod("client", "node1", [{"name": "c", "command": ECHO + ["8080"]}])
                yield c
            finally:
                c.store.close()


def test_containers_of_a_pod_share_localhost_and_the_sidecar_is_its_own_container(cluster, tmp_path):
    out = tmp_path / "sidecar.out"
    server = "import http.server\nclass H(http.server.BaseHTTPRequestHandler):\n def do_GET(s):\n" \
             "  s.send_response(200);s.end_headers();s.wfile.write(b'from-server')\n" \
             "http.server.HTTPServer(('127.0.0.1',9090),H).serve_forever()"
    sidecar = f"sleep 1; while true; do timeout 3 busybox wget -qO- http://127.0.0.1:9090/ > {out}.tmp && mv {out}.tmp {out}; sleep 0.5; done"
    cluster.pod("duo", "node1", [{"name": "server", "command": [sys.executable, "-c", server]},
                                 {"name": "sidecar", "command": ["sh", "-c", sidecar]}])
    assert wait_for(lambda: out.exists() and out.read_text() == "from-server", 20)
    pod = cluster.get("duo")
    assert [s["name"] for s in pod["status"]["containerStatuses"]] == ["server", "sidecar"]
    assert wait_for(lambda: kinds.pod_ready_text(cluster.get("duo")) == "2/2", 10)
    # 127.0.0.1:9090 is the pod's own: the client pod, on the same node, finds nothing there
    r = cluster.cli("exec", "client", "--", "timeout", "3", "busybox", "wget", "-qO-", "http://127.0.0.1:9090/")
    assert r.returncode != 0
    # exec and logs take -c, default to the first container and say so, as kubectl does
    r = cluster.cli("exec", "duo", "--", "true")
    assert r.returncode == 0 and 'Defaulted container "server" out of: server, sidecar' in r.stderr
    assert cluster.cli("exec", "duo", "-c", "sidecar", "--", "true").returncode == 0
    r = cluster.cli("exec", "duo", "-c", "nope", "--", "true")
    assert r.returncode != 0 and "container nope is not valid for pod duo" in r.stderr
    assert '"GET / HTTP/1.1" 200' in cluster.cli("logs", "duo", "-c", "server").stdout  # http.server logs each request
    assert cluster.cli("logs", "duo", "-c", "sidecar").stdout == ""


def test_hostname_fqdn_and_hosts_file_are_the_pods_own(cluster):
    aliases = [{"ip": "10.123.0.7", "hostnames": ["db.aliased.test", "db"]}]
    cluster.svc("crew", {"app": "crew"}, 8080, clusterIP="None")
    cluster.pod("named", "node2", [{"name": "c", "command": ECHO + ["8080"]}], {"app": "crew"},
                hostname="alice", subdomain="crew", hostAliases=aliases)
    pod = cluster.get("named")
    ip = pod["status"]["podIP"]
    fqdn = "alice.crew.default.svc.cluster.local"
    assert cluster.cli("exec", "named", "--", "hostname").stdout.strip() == "alice"
    assert cluster.cli("exec", "named", "--", "hostname", "-f").stdout.strip() == fqdn
    assert cluster.cli("exec", "client", "--", "hostname").stdout.strip() == "client"  # the pod name
    # the FQDN resolves in cluster DNS, from another pod
    assert wait_for(lambda: cluster.cli("exec", "client", "--", "getent", "hosts", fqdn).stdout.split()[:1] == [ip], 10)
    # /etc/hosts: the alias is seen by the pod and not by its neighbour
    assert cluster.cli("exec", "named", "--", "getent", "hosts", "db.aliased.test").stdout.split()[:1] == ["10.123.0.7"]
    assert cluster.cli("exec", "client", "--", "getent", "hosts", "db.aliased.test").returncode != 0
    hosts = cluster.cli("exec", "named", "--", "cat", "/etc/hosts").stdout
    assert f"{ip}\t{fqdn}\talice" in hosts.splitlines()


def test_dns_policy_none_takes_the_pods_dns_config(cluster):
    cluster.pod("custom", "node1", [{"name": "c", "command": ["sleep", "600"]}], dnsPolicy="None",
                dnsConfig={"nameservers": ["10.96.0.10"], "searches": ["example.test"],
                           "options": [{"name": "ndots", "value": "1"}]})
    assert cluster.cli("exec", "custom", "--", "cat", "/etc/resolv.conf").stdout.splitlines() == [
        "nameserver 10.96.0.10", "search example.test", "options ndots:1"]


def test_a_host_network_pod_has_its_nodes_ip_and_serves_a_service(cluster):
    node2 = cluster.state.node("node2")
    pod = cluster.pod("hostpod", "node2", [{"name": "h", "command": ECHO + ["18080"],
                                            "ports": [{"containerPort": 18080}]}], {"app": "hostnet"}, hostNetwork=True)
    assert pod["status"]["podIP"] == node2.ip
    assert cluster.cli("exec", "hostpod", "--", "hostname").stdout.strip() == "node2"
    links = cluster.cli("exec", "hostpod", "--", "ip", "-o", "addr", "show").stdout
    assert node2.ip in links  # the node's own network, not a namespace of its own
    svc = cluster.svc("hostnet", {"app": "hostnet"}, 18080)
    assert wait_for(lambda: cluster.answers(svc["spec"]["clusterIP"], 80, 3) == {"hostpod"}, 15)
    # a second hostNetwork pod wanting the same port on that node is refused, naming it
    with pytest.raises(ValidationError) as err:
        cluster.pod("hostpod2", "node2", [{"name": "h", "command": ECHO + ["18080"], "ports": [{"containerPort": 18080}]}],
                    hostNetwork=True)
    assert "18080" in str(err.value) and "hostpod" in str(err.value)
    # its deletion never touches the node: the node's namespace and its agent stay
    assert pods_mod.delete_pod(cluster.state, cluster.store, "default", "hostpod", timeout=30)
    assert node2.netns in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert wait_for(lambda: probe.tcp_exchange(cluster.netns("client"), node2.ip, 18080, timeout=1)[1] != "", 5)


def test_readiness_gates_service_traffic_both_ways(cluster, tmp_path):
    flag = tmp_path / "ready-now"
    cluster.pod("gated-slow", "node2", [{"name": "s", "command": ECHO + ["8080"],
                                         "readinessProbe": {"exec": {"command": ["test", "-f", str(flag)]}, "periodSeconds": 1}}],
                {"app": "gated"})
    cluster.pod("gated-fast", "node1", [{"name": "f", "command": ECHO + ["8080"],
                                         "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}], {"app": "gated"})
    svc = cluster.svc("gated", {"app": "gated"}, 8080)
    vip = svc["spec"]["clusterIP"]
    assert wait_for(lambda: cluster.answers(vip, 80) == {"gated-fast"}, 15)
    time.sleep(1.5)
    assert cluster.answers(vip, 80, 16) == {"gated-fast"}  # still out: not ready
    assert kinds.pod_ready_text(cluster.get("gated-slow")) == "0/1" and cluster.get("gated-slow")["status"]["phase"] == "Running"
    flag.touch()
    assert wait_for(lambda: cluster.answers(vip, 80, 16) == {"gated-fast", "gated-slow"}, 15)
    flag.unlink()
    assert wait_for(lambda: cluster.answers(vip, 80, 16) == {"gated-fast"}, 15)


def test_liveness_restarts_a_hung_container_in_the_same_sandbox(cluster, tmp_path):
    alive = tmp_path / "alive"
    alive.touch()
    pod = cluster.pod("hangs", "node1", [{"name": "h", "command": ECHO + ["8080"],
                                          "livenessProbe": {"exec": {"command": ["test", "-f", str(alive)]},
                                                            "periodSeconds": 1, "failureThreshold": 2}}])
    ip, netns = pod["status"]["podIP"], pod["metadata"]["annotations"]["podnet.io/netns"]
    time.sleep(2.5)
    assert kinds.pod_restarts(cluster.get("hangs")) == "0"
    alive.unlink()  # from now on the process "hangs": its liveness probe fails
    assert wait_for(lambda: kinds.pod_restarts(cluster.get("hangs")) != "0", 20)
    alive.touch()
    again = cluster.get("hangs")
    last = again["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert "failed liveness probe" in last["message"]
    assert again["status"]["podIP"] == ip and again["metadata"]["annotations"]["podnet.io/netns"] == netns
    assert wait_for(lambda: probe.tcp_exchange(cluster.netns("client"), ip, 8080, timeout=1)[0].endswith("hangs"), 15)
    row = cluster.cli("get", "pods", "hangs").stdout.splitlines()[-1].split()
    assert row[0] == "hangs" and row[3] != "0"  # NAME READY STATUS RESTARTS


def test_a_deleted_pod_drains_within_its_grace_period(cluster):
    drain = {"name": "e", "command": ECHO + ["8080"], "lifecycle": {"preStop": {"exec": {"command": ["sleep", "3"]}}}}
    cluster.pod("leaving", "node2", [drain], {"app": "drain"}, terminationGracePeriodSeconds=5)
    cluster.pod("staying", "node1", [{"name": "e", "command": ECHO + ["8080"]}], {"app": "drain"})
    vip = cluster.svc("drain", {"app": "drain"}, 8080)["spec"]["clusterIP"]
    assert wait_for(lambda: cluster.answers(vip, 80) == {"leaving", "staying"}, 15)
    # an open connection to the pod that is about to go
    conn = None
    with kns.entered(f"/var/run/netns/{cluster.netns('client')}"):
        for _ in range(40):
            s = socket.create_connection((vip, 80), timeout=2)
            if s.makefile().readline().strip().endswith("leaving"):
                conn = s
                break
            s.close()
    assert conn is not None
    t0 = time.monotonic()
    assert objects.delete_pod(cluster.store, "default", "leaving")
    assert wait_for(lambda: cluster.get("leaving") is None or
                    kinds.pod_status_text(cluster.get("leaving")) == "Terminating", 5)
    time.sleep(0.8)
    assert cluster.get("leaving") is not None  # still draining (preStop, then the grace period)
    assert cluster.answers(vip, 80, 16) == {"staying"}  # no new connections for it
    conn.sendall(b"still there?\n")  # the in-flight one is served to the end
    assert conn.makefile().readline().strip() == "still there?"
    conn.close()
    assert wait_for(lambda: cluster.get("leaving") is None, 15)
    assert 2.5 <= time.monotonic() - t0 < 12  # preStop ran first, the grace period bounded it
