"""The Weave-style mesh in 3-node labs: every pod reaches every pod with its own IP over one flat
subnet; the routers know each other by gossip (status); with the underlay between two nodes cut,
their pods still talk through the third peer; a router killed and started again rejoins with
its ranges and allocations; rmpeer gives a dead node's space to a live one."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import time

import pytest

from podnet.agent.backends import mesh as mesh_backend
from podnet.lab import probe, topology
from tests.lab.conftest import module_lab, wait_for
from tests.lab.test_cluster import assert_every_pair_reaches_with_its_own_ip, pod_netns

pytestmark = [pytest.mark.root, pytest.mark.slow]


def client(lab, node: str):
    from podnet.mesh.client import MeshClient

    return MeshClient(mesh_backend.control_socket(lab.state.node_dir(node)))


def status(lab, node: str) -> dict:
    return client(lab, node).status()


def established(st: dict) -> set[str]:
    """Names of the peers this router has an established connection with."""
    return {c["peer"] for c in st["connections"] if c["state"] == "established" and c.get("peer")}


def owned(st: dict, peer: str) -> list[tuple[int, int]]:
    return sorted((int(ipaddress.IPv4Address(r["start"])), int(ipaddress.IPv4Address(r["end"])))
                  for r in st["ipam"]["ranges"] if r["peer"] == peer)


def in_ranges(ip: str, ranges: list[tuple[int, int]]) -> bool:
    n = int(ipaddress.IPv4Address(ip))
    return any(a <= n < b for a, b in ranges)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with module_lab(tmp_path_factory, "m", 3, backend="mesh") as lab:
        assert wait_for(lambda: all(len(established(status(lab, n))) == 2 for n in ("node1", "node2", "node3")), 30)
        yield lab


netns = pod_netns


def test_every_pod_reaches_every_pod_with_its_own_ip_on_one_subnet(lab, six):
    assert_every_pair_reaches_with_its_own_ip(six)
    # one flat subnet: each pod's eth0 has the cluster prefix, and its address is from its node's ranges
    st = status(lab, "node1")
    for p in six:
        node = p["spec"]["nodeName"]
        assert in_ranges(p["status"]["podIP"], owned(st, node)), f"{p['metadata']['name']} not in {node}'s ranges"
        out = subprocess.run(["ip", "-n", netns(p), "-o", "-4", "addr", "show", "dev", "eth0"], capture_output=True,
                             text=True).stdout
        assert f"{p['status']['podIP']}/16" in out


def test_status_shows_full_membership_and_the_whole_range_owned(lab):
    for node in ("node1", "node2", "node3"):
        st = status(lab, node)
        assert established(st) == {"node1", "node2", "node3"} - {node}
        assert {c["encapsulation"] for c in st["connections"] if c["state"] == "established"} == {"fastdp"}
        total = sum(b - a for peer in ("node1", "node2", "node3") for a, b in owned(st, peer))
        assert total == 1 << 16  # 10.244.0.0/16, every address owned by exactly one of them
    text = subprocess.run([".venv/bin/podnet", "mesh", "status", "node2"], capture_output=True, text=True,
                          env={**os.environ, "PODNET_LAB_DIR": lab.state.directory}).stdout
    assert text.count("established") >= 2 and "node1" in text and "node3" in text


def block(lab, a: str, b: str, on: bool) -> None:
    """Drop all underlay traffic between nodes a and b (both ways), in the underlay's bridge."""
    ns, ips = lab.state.underlay, (lab.state.node(a).ip, lab.state.node(b).ip)
    if not on:
        subprocess.run(["ip", "netns", "exec", ns, "nft", "delete", "table", "bridge", "pn_cut"], capture_output=True)
        return
    rules = (f"table bridge pn_cut {{\n chain forward {{\n  type filter hook forward priority 0; policy accept;\n"
             f"  ip saddr {ips[0]} ip daddr {ips[1]} drop\n  ip saddr {ips[1]} ip daddr {ips[0]} drop\n }}\n}}\n")
    subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=rules, text=True, check=True)


def test_with_node1_and_node3_cut_apart_their_pods_talk_through_node2(lab, six):
    one = next(p for p in six if p["spec"]["nodeName"] == "node1")
    three = next(p for p in six if p["spec"]["nodeName"] == "node3")
    block(lab, "node1", "node3", True)
    try:
        assert wait_for(lambda: "node3" not in established(status(lab, "node1")), 40), \
            "node1 still has an established connection to node3 with the underlay between them cut"
        ok = wait_for(lambda: probe.tcp_source(netns(one), three["status"]["podIP"], 8080) == one["status"]["podIP"], 30)
        assert ok, "node1's pod cannot reach node3's pod through node2"
        assert probe.ping(netns(three), one["status"]["podIP"])
        st = status(lab, "node1")
        relayed = {p["name"]: p for p in st["peers"]}["node3"]
        assert relayed.get("via") == "node2", st["peers"]
        assert status(lab, "node2")["sleeve"]["relayed"] > 0  # through node2's router: the sleeve, not fastdp
    finally:
        block(lab, "node1", "node3", False)
    assert wait_for(lambda: "node3" in established(status(lab, "node1")), 60)


def router_pid(lab, node: str) -> int | None:
    """The router process itself (not its supervisor); None while there is none."""
    pids = subprocess.run(["ip", "netns", "pids", lab.state.node(node).netns], capture_output=True, text=True).stdout.split()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"router" in argv and b"mesh" in argv and b"podnet.runtime.supervisor" not in argv:
            return int(pid)
    return None


def test_a_killed_router_comes_back_with_its_ranges_and_allocations(lab, six):
    before = status(lab, "node2")
    allocations = dict(before["ipam"]["allocations"])
    pid = router_pid(lab, "node2")
    assert pid, "no mesh router runs on node2"
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: router_pid(lab, "node2") not in (None, pid), 20)

    def back():
        try:
            st = status(lab, "node2")
        except OSError:
            return None
        return st if st["uid"] != before["uid"] and len(established(st)) == 2 else None

    after = wait_for(back, 40)
    assert after, "the restarted router did not rejoin both peers"
    assert owned(after, "node2") == owned(before, "node2")
    assert after["ipam"]["allocations"] == allocations
    two = next(p for p in six if p["spec"]["nodeName"] == "node2")
    one = next(p for p in six if p["spec"]["nodeName"] == "node1")
    assert wait_for(lambda: probe.tcp_source(netns(one), two["status"]["podIP"], 8080) == one["status"]["podIP"], 20)


def test_rmpeer_gives_a_dead_nodes_space_to_a_live_one(lab, six):
    """Last in this module: node3 goes."""
    st = status(lab, "node1")
    space = owned(st, "node3")
    free_before = st["ipam"]["free"]
    assert space
    topology.remove_node(lab.state, "node3")
    assert wait_for(lambda: "node3" not in established(status(lab, "node1")), 20)
    env = {**os.environ, "PODNET_LAB_DIR": lab.state.directory}
    r = subprocess.run([".venv/bin/podnet", "mesh", "rmpeer", "node3", "--node", "node1"], capture_output=True, text=True,
                       env=env)
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: not owned(status(lab, "node2"), "node3"), 20)
    mine = owned(status(lab, "node1"), "node1")
    assert all(any(a <= s and e <= b for a, b in mine) for s, e in space), (space, mine)
    assert owned(status(lab, "node2"), "node1") == mine  # the change reached node2 by gossip
    broadcast = int(ipaddress.IPv4Address("10.244.255.255"))
    gained = sum(e - s for s, e in space) - sum(1 for s, e in space if s <= broadcast < e)
    assert status(lab, "node1")["ipam"]["free"] == free_before + gained  # all of it allocatable by node1



@pytest.fixture(scope="module")
def secret_lab(tmp_path_factory):
    password = tmp_path_factory.mktemp("mesh-secret") / "password"
    password.write_text("correct horse battery staple\n")
    os.chmod(password, 0o600)
    with module_lab(tmp_path_factory, "ms", 2, backend="mesh", backend_fields={"PasswordFile": str(password)}) as lab:
        assert wait_for(lambda: all(len(established(status(lab, n))) == 1 for n in ("node1", "node2")), 30)
        yield lab


def capture(ns: str, iface: str, path: str) -> subprocess.Popen:
    """tcpdump writing to `path`, returned once it says it is listening."""
    # --immediate-mode: otherwise packets wait in the kernel's ring for its block timeout, and a
    # capture stopped before that has written none of them
    proc = subprocess.Popen(["ip", "netns", "exec", ns, "tcpdump", "--immediate-mode", "-U", "-n", "-s", "0", "-i", iface,
                             "-w", path],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    said = ""
    while "listening on" not in said:  # "listening on IFACE, link-type ..." (after notes such as the link type)
        line = proc.stderr.readline()
        assert line, f"tcpdump did not start: {said}"
        said += line
    return proc


def test_with_a_password_the_underlay_carries_no_plaintext(secret_lab, tmp_path):
    import shutil

    if shutil.which("tcpdump") is None:
        pytest.skip("needs tcpdump")
    lab = secret_lab
    a, b = lab.apply_pod("sa", "node1"), lab.apply_pod("sb", "node2")
    time.sleep(0.5)
    marker = b"PODNET-MESH-SECRET-0123456789"
    under, inner = str(tmp_path / "underlay.pcap"), str(tmp_path / "sb.pcap")
    caps = [capture(lab.state.underlay, "any", under), capture(netns(b), "eth0", inner)]  # inner: where it arrives
    try:
        line, err, _ = probe.tcp_exchange(netns(a), b["status"]["podIP"], 8080, send=marker + b"\n")
        assert not err and line.split()[0] == a["status"]["podIP"], (line, err)
        time.sleep(0.5)
    finally:
        for c in caps:
            c.send_signal(signal.SIGINT)
            c.wait(5)
    with open(inner, "rb") as f:
        assert marker in f.read(), "the payload was never sent (the check would prove nothing)"
    with open(under, "rb") as f:
        seen = f.read()
    assert len(seen) > 1000 and marker not in seen
    for node in ("node1", "node2"):
        st = status(lab, node)
        assert st["encryption"] and st["sleeve"]["frames_in"] > 0
