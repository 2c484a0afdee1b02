"""The lab's topology as data (podnet.lab.topo), and what one builder makes of it: with several
underlay segments joined by a router, vxlan gives every pod every other pod; host-gw, whose
routes need neighbours, is refused with the reason."""

from __future__ import annotations

import pytest

from podnet.lab import probe
from podnet.lab.state import LabError
from podnet.lab.topo import lab_topology


def test_one_segment_is_a_flat_underlay():
    topo = lab_topology("x")
    assert topo.router is None and [s.cidr for s in topo.segments] == ["172.31.0.0/24"]
    n = topo.node("node3", 3)
    assert (n.namespace, n.ip, n.gateway, n.segment.bridge, n.port) == ("pn-x-node3", "172.31.0.13", "172.31.0.1", "br0",
                                                                          "u-node3")


def test_nodes_take_segments_in_turn_and_route_through_the_router():
    topo = lab_topology("x", 3)
    assert topo.router is not None and topo.router.namespace == "pn-x-r"
    placed = [(n.segment.index, n.ip, n.gateway) for n in (topo.node(f"node{i}", i) for i in range(1, 5))]
    assert placed == [(0, "172.31.0.11", "172.31.0.254"), (1, "172.31.1.12", "172.31.1.254"),
                      (2, "172.31.2.13", "172.31.2.254"), (0, "172.31.0.14", "172.31.0.254")]
    assert [s.name for s in topo.services] == ["etcd", "upstream-dns"] and topo.outside == "172.31.0.1"
    with pytest.raises(ValueError):
        lab_topology("x", 0)


@pytest.mark.root
@pytest.mark.slow
def test_two_segments_host_gw_refused_vxlan_reaches_everything(make_lab):
    with pytest.raises(LabError, match="one L2 segment"):
        make_lab(2, "host-gw", subnets=2)
    lab = make_lab(4, "vxlan", subnets=2)
    segments = {n.name: n.ip.split(".")[2] for n in lab.state.nodes}
    assert segments == {"node1": "0", "node2": "1", "node3": "0", "node4": "1"}
    pods = [lab.apply_pod(f"p{i}", f"node{i}") for i in range(1, 5)]
    import time

    time.sleep(0.5)  # the echo servers bind

    def check(a, b):
        src = a["metadata"]["annotations"]["podnet.io/netns"]
        return probe.ping(src, b["status"]["podIP"]), probe.tcp_source(src, b["status"]["podIP"], 8080)

    results = probe.matrix(pods, check)
    ip_of = {p["metadata"]["name"]: p["status"]["podIP"] for p in pods}
    bad = {pair: r for pair, r in results.items() if not r[0] or r[1] != ip_of[pair[0]]}
    assert not bad, "\n" + probe.grid(sorted(ip_of), results, ok=lambda r: r[0] and r[1])
    # the outside reaches a node on the other segment through the router
    node2 = lab.state.node("node2")
    assert probe.ping(lab.state.underlay, node2.ip)


def test_a_bad_backend_field_is_named_and_nothing_is_built(tmp_path):
    from podnet.lab import topology
    from podnet.lab.netns_util import list_netns

    directory = str(tmp_path / "lab")
    with pytest.raises(LabError, match=r"Backend\.Bogus: unknown field for backend mesh"):
        topology.up("pnbadf", directory, 2, "mesh", "sqlite", backend_fields={"Bogus": 1})
    with pytest.raises(LabError, match=r"Backend\.FastDPPort: must differ from Port"):
        topology.up("pnbadf", directory, 2, "mesh", "sqlite", backend_fields={"FastDPPort": 6783})
    assert not [ns for ns in list_netns() if ns.startswith("pn-pnbadf-")]
    assert not (tmp_path / "lab").exists()
