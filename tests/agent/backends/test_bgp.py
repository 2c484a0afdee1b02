"""The bgp backend's pure parts: bird.conf (golden files, and BIRD itself must accept every
one), the VXLAN routes across segments, the world read from a store, `birdc` output parsing.

Regenerate the golden files after an intended change: PODNET_REGEN_GOLDEN=1 pytest tests/agent/backends/test_bgp.py
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import shutil
import subprocess

import pytest

from podnet.agent.backends.bgp import config, tunnels, world
from podnet.agent.backends.bgp.bird import parse_protocols
from podnet.api import keys
from podnet.api.ippool import parse_ippool
from podnet.ipam.blocks import Pool
from podnet.store import open_store

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")
net = ipaddress.IPv4Network


def peer(name, ip, seg="172.31.0.0/24", reflector=False, n=1):
    return world.Peer(name, ip, net(seg), reflector, f"66:00:00:00:00:0{n}", f"10.244.{n}.0")


def pool(name="default-ipv4-ippool", cidr="10.244.0.0/16", vxlan="CrossSubnet", export=True):
    return Pool(name, net(cidr), 26, vxlan_mode=vxlan, export=export)


def four_nodes(**kw) -> world.World:
    """Two segments, two nodes each; node1 owns two blocks and borrowed an address from node3."""
    w = world.World(**kw)
    for p in (peer("node1", "172.31.0.11", n=1), peer("node2", "172.31.1.12", "172.31.1.0/24", n=2),
              peer("node3", "172.31.0.13", n=3), peer("node4", "172.31.1.14", "172.31.1.0/24", n=4)):
        w.peers[p.name] = p
    w.pools = [pool()]
    w.blocks = {"node1": [net("10.244.1.0/26"), net("10.244.1.64/26")], "node2": [net("10.244.2.0/26")],
                "node3": [net("10.244.3.0/26")], "node4": [net("10.244.4.0/26")]}
    w.borrowed = {"10.244.3.7": "node1", "10.244.1.9": "node4"}
    return w


def render(w: world.World, name: str) -> str:
    me = w.peers[name]
    return config.render(w, me, "eth0", w.blocks.get(name, []), [ip for ip, n in w.borrowed.items() if n == name])


def golden(name: str, text: str) -> None:
    path = os.path.join(GOLDEN, name)
    if os.environ.get("PODNET_REGEN_GOLDEN"):
        os.makedirs(GOLDEN, exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    with open(path) as f:
        assert text == f.read(), f"{name} differs from the golden file (PODNET_REGEN_GOLDEN=1 to accept)"
    bird = shutil.which("bird")
    if bird:  # BIRD must accept what we render
        proc = subprocess.run([bird, "-p", "-c", path], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


def test_mesh_golden():
    text = render(four_nodes(), "node1")
    golden("mesh-node1.conf", text)
    # the facts the golden file holds, spelled out
    assert "route 10.244.1.0/26 blackhole;" in text and "route 10.244.1.64/26 blackhole;" in text
    assert "route 10.244.3.7/32 blackhole;" in text          # borrowed: exported to peers
    assert "10.244.1.9" not in text                            # node4 borrowed it from us: node4 exports it
    assert text.count("protocol bgp ") == 3
    assert "Mesh_172_31_0_13" in text and "Mesh_172_31_1_14" in text
    assert "if bgp_next_hop ~ 172.31.0.0/24 then accept;" in text  # CrossSubnet: same segment to the kernel
    assert text.count("passive on") == 3                       # node1 has the lowest address: it waits for all


def test_higher_address_connects():
    text = render(four_nodes(), "node4")
    assert "passive on" not in text  # the highest address connects to everyone


def test_route_reflector_golden():
    w = four_nodes()
    w.peers["node1"] = dataclasses.replace(w.peers["node1"], reflector=True)
    reflector, client = render(w, "node1"), render(w, "node3")
    golden("reflector-node1.conf", reflector)
    golden("client-node3.conf", client)
    assert reflector.count("rr client;") == 3 and "RRClient_172_31_0_13" in reflector
    assert client.count("protocol bgp ") == 1 and "RR_172_31_0_11" in client and "rr client" not in client


def test_two_reflectors_peer_with_each_other_and_not_as_clients():
    w = four_nodes()
    for name in ("node1", "node2"):
        w.peers[name] = dataclasses.replace(w.peers[name], reflector=True)
    kinds = {p.name: kind for kind, p in config.sessions(w, w.peers["node1"])}
    assert kinds == {"node2": config.REFLECTOR, "node3": config.CLIENT, "node4": config.CLIENT}
    assert {p.name for _, p in config.sessions(w, w.peers["node3"])} == {"node1", "node2"}


def test_mesh_off_without_reflectors_means_no_sessions():
    w = four_nodes(mesh=False)
    assert config.sessions(w, w.peers["node1"]) == []
    text = render(w, "node1")
    assert "protocol bgp " not in text.replace("template bgp", "")


def test_pool_modes_and_export_golden():
    w = four_nodes(asn=65010, port=1179, debug=True)
    w.pools = [pool("always", "10.244.0.0/17", "Always"), pool("never", "10.244.128.0/17", "Never", export=False)]
    text = render(w, "node1")
    golden("modes-node1.conf", text)
    assert "if net ~ [ 10.244.0.0/17+ ] then reject;  # pool always" in text
    assert "if net ~ [ 10.244.128.0/17+ ] then accept;  # pool never" in text
    assert "pools with disableBGPExport" in text
    assert "local 172.31.0.11 port 1179 as 65010;" in text and "debug protocols all;" in text


def test_tunnels_cross_segment_only():
    w = four_nodes()
    d = tunnels.render(w, w.peers["node1"])
    # node2 and node4 are on the other segment: VXLAN; node3 is a neighbour: BIRD's route, no tunnel
    assert d.routes == {("10.244.2.0/26", "10.244.2.0", True), ("10.244.4.0/26", "10.244.4.0", True),
                        ("10.244.1.9/32", "10.244.4.0", True)}
    assert d.neighbours == {("10.244.2.0", "66:00:00:00:00:02"), ("10.244.4.0", "66:00:00:00:00:04")}
    assert d.fdb == {("66:00:00:00:00:02", "172.31.1.12"), ("66:00:00:00:00:04", "172.31.1.14")}


def test_tunnels_always_and_never():
    w = four_nodes()
    w.pools = [pool(vxlan="Always")]
    assert {r[0] for r in tunnels.render(w, w.peers["node1"]).routes} == {"10.244.2.0/26", "10.244.3.0/26",
                                                                          "10.244.4.0/26", "10.244.1.9/32"}
    w.pools = [pool(vxlan="Never")]
    d = tunnels.render(w, w.peers["node1"])
    assert not d.routes and not d.neighbours and not d.fdb


def test_world_from_a_store(tmp_path):
    store = open_store(f"sqlite://{tmp_path}/s.db")
    p = parse_ippool({"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": "p"},
                      "spec": {"cidr": "10.244.0.0/16", "vxlanMode": "CrossSubnet"}})
    store.put(f"{keys.IPPOOLS}p", json.dumps(p))
    for name, ip, labels in (("a", "172.31.0.11/24", {"podnet.io/route-reflector": "true"}), ("b", "172.31.1.12/24", {})):
        store.put(f"{keys.NODES}{name}", json.dumps({"metadata": {"name": name, "labels": labels}, "status": {"podnet": {
            "backend": "bgp", "bgp": {"ipv4Address": ip, "vtepMAC": "66:00:00:00:00:01", "vtepIP": "10.244.0.0"}}}}))
    store.put(f"{keys.NODES}c", json.dumps({"metadata": {"name": "c"}, "status": {"podnet": {"backend": "vxlan"}}}))
    store.put(f"{keys.NODES}broken", "{")
    store.put(f"{keys.IPAM_AFFINITIES}a/10.244.0.0-26", "{}")
    store.put(f"{keys.IPAM_BORROWED}10.244.0.70", json.dumps({"node": "b", "block": "10.244.0.64/26"}))
    w = world.read(store)
    assert set(w.peers) == {"a", "b"} and w.peers["a"].reflector and not w.peers["b"].reflector
    assert w.peers["b"].subnet == net("172.31.1.0/24")
    assert w.blocks == {"a": [net("10.244.0.0/26")]} and w.borrowed == {"10.244.0.70": "b"}
    assert w.asn == 64512 and w.mesh and w.skipped == [f"{keys.NODES}broken"]
    before = w.digest()
    store.put(f"{keys.NODES}a", store.get(f"{keys.NODES}a").value.replace("}}}}", "}, \"heartbeat\": 1}}}"))
    assert world.read(store).digest() == before  # a heartbeat changes nothing that is rendered
    store.close()


def test_only_node_changes_that_are_rendered_make_the_routes_sync():
    """Heartbeats come from every node every few seconds: they must not make every agent re-read
    the cluster. A Node put counts when its peer address, VTEP or labels changed."""
    from types import SimpleNamespace

    from podnet.agent.backends.bgp import Bgp
    from podnet.store.base import Event

    ctx = SimpleNamespace(devices={})
    backend = Bgp()

    def node(beat, ip="172.31.0.12/24", labels=None, vtep="66:00:00:00:00:02"):
        return json.dumps({"metadata": {"name": "b", "labels": labels or {"kubernetes.io/hostname": "b"}}, "status": {
            "conditions": [{"type": "Ready", "lastHeartbeatTime": beat}],
            "podnet": {"backend": "bgp", "bgp": {"ipv4Address": ip, "vtepMAC": vtep, "vtepIP": "10.244.2.0"}}}})

    def put(value, key=f"{keys.NODES}b"):
        return backend.relevant(ctx, Event("put", key, value, 1))

    assert put(node("t1"))                       # first sight
    assert not put(node("t2"))                   # a heartbeat
    assert put(node("t3", ip="172.31.1.12/24"))  # moved
    assert not put(node("t4", ip="172.31.1.12/24"))
    assert put(node("t5", ip="172.31.1.12/24", labels={"podnet.io/route-reflector": "true"}))
    assert put(node("t6", ip="172.31.1.12/24", labels={"podnet.io/route-reflector": "true"}, vtep="66:00:00:00:00:09"))
    assert put("{")                              # undecodable: let the sync read and report it
    assert put("{")
    assert backend.relevant(ctx, Event("delete", f"{keys.NODES}b", "", 2))
    assert put(node("t7"))                       # back after a delete: seen afresh
    assert backend.relevant(ctx, Event("put", f"{keys.IPAM_AFFINITIES}b/10.244.2.0-26", "{}", 3))


def test_parse_protocols():
    text = """BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     2026-11-23 16:58:33
kernel1    Kernel     master4    up     2026-11-23 16:58:33
Mesh_172_31_0_12 BGP        ---        up     2026-11-23 16:58:35  Established
RR_172_31_1_13 BGP        ---        start  2026-11-23 16:58:40  Passive       Socket: Connection closed
"""
    rows = parse_protocols(text)
    assert [r["name"] for r in rows] == ["device1", "kernel1", "Mesh_172_31_0_12", "RR_172_31_1_13"]
    assert rows[2]["info"] == "Established" and rows[2]["since"] == "2026-11-23 16:58:35"
    assert rows[3]["state"] == "start" and rows[3]["info"] == "Passive       Socket: Connection closed"


@pytest.mark.skipif(not shutil.which("bird"), reason="needs bird2")
def test_bird_refuses_a_broken_config_and_the_old_one_stays(tmp_path):
    from podnet.agent.backends.bgp.bird import Bird, BirdError

    b = Bird(str(tmp_path))
    good = render(four_nodes(), "node1")
    assert b.apply(good) and not b.apply(good)  # installed once; unchanged: nothing to do
    with pytest.raises(BirdError, match="refuses"):
        b.apply(good + "\nprotocol nonsense {\n")
    assert open(b.conf).read() == good and b.error
