"""The Kubernetes network model in a 3-node lab: every pod reaches every pod by its own IP,
without NAT, for both backends and both stores; agents restart without harm; nodes leave cleanly."""

from __future__ import annotations

import json
import socket
import subprocess
import time

import pytest

from podnet.agent import leases
from podnet.kernel import netns as kns
from podnet.lab import probe, topology
from tests.conftest import ip_json
from tests.lab.conftest import wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow]


def six_pods(lab) -> list[dict]:
    for node in ("node1", "node2", "node3"):
        for suffix in "ab":
            lab.apply_pod(f"{node[-1]}{suffix}-pod", node)
    pods = lab.pods()
    assert len(pods) == 6 and len({p["status"]["podIP"] for p in pods}) == 6
    return pods


def pod_netns(pod: dict) -> str:
    return pod["metadata"]["annotations"]["podnet.io/netns"]


def assert_every_pair_reaches_with_its_own_ip(pods: list[dict]) -> None:
    """Ping and a TCP connection for every ordered pair; the server must see the client's own IP."""
    results = full_matrix(pods)
    ip_of = {p["metadata"]["name"]: p["status"]["podIP"] for p in pods}
    bad = {pair: r for pair, r in results.items() if not r[0] or r[1] != ip_of[pair[0]]}
    assert not bad, "\n" + probe.grid(sorted(ip_of), results, ok=lambda r: r[0] and r[1]) + f"\n{bad}"


def full_matrix(pods):
    def check(a, b):
        src = a["metadata"]["annotations"]["podnet.io/netns"]
        dst_ip = b["status"]["podIP"]
        return (probe.ping(src, dst_ip), probe.tcp_source(src, dst_ip, 8080))

    return probe.matrix(pods, check)


@pytest.mark.parametrize("backend,store", [("vxlan", "sqlite"), ("host-gw", "sqlite"), ("vxlan", "etcd"), ("host-gw", "etcd")])
def test_every_pod_reaches_every_pod_with_its_own_ip(make_lab, backend, store):
    lab = make_lab(3, backend, store)
    pods = six_pods(lab)
    time.sleep(0.5)  # the echo servers start listening
    results = full_matrix(pods)
    ip_of = {p["metadata"]["name"]: p["status"]["podIP"] for p in pods}
    bad = {pair: r for pair, r in results.items() if not r[0] or r[1] != ip_of[pair[0]]}
    names = sorted(ip_of)
    assert not bad, "\n" + probe.grid(names, results, ok=lambda r: r[0] and r[1]) + f"\n{bad}"


def test_agent_sigkill_and_restart_keeps_addresses_and_connections(make_lab):
    lab = make_lab(3, "vxlan", "sqlite")
    a = lab.apply_pod("server", "node1")
    b = lab.apply_pod("client", "node2")
    time.sleep(0.5)
    before = {p["metadata"]["name"]: p["status"]["podIP"] for p in lab.pods()}
    with kns.entered(f"/var/run/netns/{b['metadata']['annotations']['podnet.io/netns']}"):
        conn = socket.create_connection((a["status"]["podIP"], 8080), timeout=5)
    try:
        f = conn.makefile("rwb")
        assert f.readline().decode().split()[0] == b["status"]["podIP"]  # seen with its own source IP
        f.write(b"before\n")
        f.flush()
        assert f.readline() == b"before\n"
        st = lab.state
        with topology.store_context(st):
            store = lab.store()
            lease_before = {l.node: str(l.subnet) for l in leases.all_leases(store)[0]}
        for node in ("node1", "node2"):
            topology.stop_agent(st.node(node), hard=True)
        f.write(b"agents-down\n")  # traffic keeps flowing while the agents are dead
        f.flush()
        assert f.readline() == b"agents-down\n"
        for node in ("node1", "node2"):
            topology.start_agent(st, st.node(node))
        topology.wait_ready(st, ["node1", "node2"])
        f.write(b"after\n")
        f.flush()
        assert f.readline() == b"after\n"  # the same TCP connection, never dropped
    finally:
        conn.close()
    with topology.store_context(st):
        assert {l.node: str(l.subnet) for l in leases.all_leases(store)[0]} == lease_before
        store.close()
    assert {p["metadata"]["name"]: p["status"]["podIP"] for p in lab.pods()} == before
    # and a pod created after the restart still gets wired through the restarted agent
    c = lab.apply_pod("late", "node1")
    assert probe.tcp_source(c["metadata"]["annotations"]["podnet.io/netns"], b["status"]["podIP"], 8080) == c["status"]["podIP"]


def _kernel_peers(ns: str) -> dict:
    routes = sorted(r["dst"] for r in ip_json(ns, "route") if r.get("protocol") in ("158", 158))
    neigh = sorted(n["dst"] for n in ip_json(ns, "neigh", "show", "dev", "podnet.1"))
    fdb = json.loads(subprocess.run(["bridge", "-n", ns, "-j", "fdb", "show", "dev", "podnet.1"],
                                    capture_output=True, text=True).stdout or "[]")
    return {"routes": routes, "neigh": neigh, "fdb": sorted(x["dst"] for x in fdb if x.get("dst"))}


def test_removed_node_disappears_from_every_other_node(make_lab):
    lab = make_lab(3, "vxlan", "sqlite")
    st = lab.state
    n1 = st.node("node1").netns
    assert wait_for(lambda: _kernel_peers(n1)["fdb"] == ["172.31.0.12", "172.31.0.13"])
    topology.remove_node(st, "node3")
    after = wait_for(lambda: (lambda k: k if k["fdb"] == ["172.31.0.12"] else None)(_kernel_peers(n1)), timeout=5)
    assert after == {"routes": ["10.244.2.0/24"], "neigh": ["10.244.2.0"], "fdb": ["172.31.0.12"]}


def test_switching_backend_updates_every_node_and_pods_keep_talking(make_lab):
    lab = make_lab(3, "vxlan", "sqlite")
    p1, p3 = lab.apply_pod("one", "node1"), lab.apply_pod("three", "node3")
    time.sleep(0.5)
    src = p1["metadata"]["annotations"]["podnet.io/netns"]
    assert probe.tcp_source(src, p3["status"]["podIP"], 8080) == p1["status"]["podIP"]
    with topology.store_context(lab.state):
        store = lab.store()
        store.put("/podnet/config", topology.cluster_config("host-gw"))
        store.close()

    def switched():
        for node in lab.state.nodes:
            routes = {r["dst"]: r.get("gateway") for r in ip_json(node.netns, "route") if r.get("protocol") in ("158", 158)}
            links = [l["ifname"] for l in ip_json(node.netns, "link")]
            others = {f"10.244.{m.name[-1]}.0/24": m.ip for m in lab.state.nodes if m is not node}
            if routes != others or "podnet.1" in links:
                return False
        return True

    assert wait_for(switched, timeout=10), "not every node switched to host-gw within 10 s"
    assert probe.tcp_source(src, p3["status"]["podIP"], 8080) == p1["status"]["podIP"]


def test_egress_leaving_the_cluster_is_masqueraded(make_lab):
    """A server outside the cluster network (on the underlay) sees the node's IP, not the pod's;
    it has no route to pod CIDRs, so without masquerade there would be no reply at all."""
    import sys

    lab = make_lab(2, "vxlan", "sqlite")
    p = lab.apply_pod("egress", "node2")
    outside = subprocess.Popen(["ip", "netns", "exec", lab.state.underlay, sys.executable, "-m", "podnet.lab.echo",
                                "--port", "9090"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        seen = wait_for(lambda: probe.tcp_source(p["metadata"]["annotations"]["podnet.io/netns"], "172.31.0.1", 9090), 5)
    finally:
        outside.kill()
        outside.wait()
    assert seen == lab.state.node("node2").ip
