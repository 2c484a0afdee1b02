"""The stdlib rtnetlink client, cross-checked against iproute2 (`ip -j`) in a private namespace."""

from __future__ import annotations

import errno
import json

import pytest

from podnet.kernel import netns as kns
from podnet.kernel import rtnl
from tests.conftest import ip_json, ns_path

pytestmark = pytest.mark.root


def test_links_addresses_routes_agree_with_iproute2(netns):
    ns, peer_ns = netns.new("rtnl"), netns.new("peer")
    peer_fd = kns.open_netns(ns_path(peer_ns))
    with kns.entered(ns_path(ns)):
        nl = rtnl.Netlink()
    try:
        nl.add_bridge("pnb0", mtu=1450)
        br = nl.link("pnb0")
        nl.add_veth("pnv0", "pnv1", mtu=1450, peer_netns_fd=peer_fd)
        v = nl.link("pnv0")
        nl.set_link(v.index, master=br.index, up=True)
        nl.set_link(br.index, up=True)
        nl.set_bridge_port(v.index, hairpin=True)
        nl.add_address(br.index, "10.85.0.1/24")
        nl.add_address(br.index, "fd00:85::1/64")
        nl.add_route("10.86.0.0/16", "10.85.0.9", br.index, priority=50, mtu=1300)
        nl.add_route("10.87.0.0/16", "", br.index)
        with pytest.raises(OSError) as e:
            nl.add_bridge("pnb0")
        assert e.value.errno == errno.EEXIST

        ip_links = {l["ifname"]: l for l in ip_json(ns, "-d", "link")}
        assert ip_links["pnb0"]["mtu"] == nl.link("pnb0").mtu == 1450
        assert ip_links["pnv0"]["master"] == "pnb0" and nl.link("pnv0").master == br.index
        assert ip_links["pnv0"]["address"] == nl.link("pnv0").mac
        assert ip_links["pnv0"]["linkinfo"]["info_slave_data"]["hairpin"] is True and nl.link("pnv0").hairpin is True
        assert nl.link("pnb0").kind == "bridge" and nl.link("pnv0").kind == "veth"
        assert [l["ifname"] for l in ip_json(peer_ns, "link") if l["ifname"] != "lo"] == ["pnv1"]

        ours = sorted(a.cidr for a in nl.addresses(br.index) if a.scope == 0)
        theirs = sorted(f"{a['local']}/{a['prefixlen']}" for a in ip_json(ns, "addr", "show", "pnb0")[0]["addr_info"]
                        if a["scope"] == "global")
        assert ours == theirs == ["10.85.0.1/24", "fd00:85::1/64"]

        r = {x.dst: x for x in nl.routes(rtnl.AF_INET)}
        assert r["10.86.0.0/16"].gateway == "10.85.0.9" and r["10.86.0.0/16"].priority == 50
        assert r["10.86.0.0/16"].metrics.get(rtnl.RTAX_MTU) == 1300
        theirs = {x["dst"]: x for x in ip_json(ns, "route")}
        assert theirs["10.86.0.0/16"]["gateway"] == "10.85.0.9" and theirs["10.86.0.0/16"]["metric"] == 50
        assert theirs["10.87.0.0/16"]["scope"] == "link" and r["10.87.0.0/16"].scope == rtnl.RT_SCOPE_LINK

        nl.delete_route("10.86.0.0/16", "10.85.0.9", br.index)
        assert "10.86.0.0/16" not in {x["dst"] for x in ip_json(ns, "route")}
        nl.delete_link(v.index)
        assert nl.link("pnv0") is None and "pnv0" not in {l["ifname"] for l in ip_json(ns, "link")}
    finally:
        nl.close()
        import os

        os.close(peer_fd)


def test_missing_netns_is_reported(tmp_path):
    with pytest.raises(kns.NetnsNotFound):
        kns.open_netns(str(tmp_path / "nope"))


def test_vxlan_neighbours_fdb_and_onlink_routes(netns):
    ns = netns.new("vx")
    import subprocess

    subprocess.run(["ip", "-n", ns, "link", "add", "und0", "type", "veth", "peer", "name", "und1"], check=True)
    subprocess.run(["ip", "-n", ns, "addr", "add", "172.30.0.1/24", "dev", "und0"], check=True)
    subprocess.run(["ip", "-n", ns, "link", "set", "und0", "up"], check=True)
    with kns.entered(ns_path(ns)):
        with rtnl.Netlink() as nl:
            und = nl.link("und0")
            nl.add_vxlan("pnvx", 7, "172.30.0.1", 8472, und.index, mtu=1450)
            vx = nl.link("pnvx")
            nl.set_link(vx.index, up=True)
            assert nl.vxlan_info(vx.index) == {"vni": 7, "local": "172.30.0.1", "port": 8472}
            nl.set_neighbour(vx.index, "10.244.2.0", "aa:bb:cc:00:00:02")
            nl.set_fdb(vx.index, "aa:bb:cc:00:00:02", "172.30.0.2")
            nl.add_route("10.244.2.0/24", "10.244.2.0", vx.index, onlink=True, protocol=rtnl.RTPROT_PODNET)
            assert ("10.244.2.0", "aa:bb:cc:00:00:02", rtnl.NUD_PERMANENT) in nl.neighbours(vx.index, rtnl.AF_INET)
            assert ("172.30.0.2", "aa:bb:cc:00:00:02") in [(d, m) for d, m, _ in nl.neighbours(vx.index, rtnl.AF_BRIDGE)]
            ours = [r for r in nl.routes(rtnl.AF_INET) if r.protocol == rtnl.RTPROT_PODNET]
            assert [(r.dst, r.gateway) for r in ours] == [("10.244.2.0/24", "10.244.2.0")]
    d = ip_json(ns, "-d", "link", "show", "pnvx")[0]["linkinfo"]["info_data"]
    assert (d["id"], d["port"], d["local"], d.get("learning")) == (7, 8472, "172.30.0.1", False)
    neigh = ip_json(ns, "neigh", "show", "dev", "pnvx")
    assert neigh[0]["dst"] == "10.244.2.0" and "PERMANENT" in neigh[0]["state"]
    fdb = json.loads(subprocess.run(["bridge", "-n", ns, "-j", "fdb", "show", "dev", "pnvx"],
                                    capture_output=True, text=True).stdout)
    assert any(f.get("dst") == "172.30.0.2" and f["mac"] == "aa:bb:cc:00:00:02" for f in fdb)
    route = [r for r in ip_json(ns, "route") if r["dst"] == "10.244.2.0/24"][0]
    assert "onlink" in route.get("flags", []) and route["gateway"] == "10.244.2.0"
    with kns.entered(ns_path(ns)):
        with rtnl.Netlink() as nl:
            vx = nl.link("pnvx")
            nl.delete_fdb(vx.index, "aa:bb:cc:00:00:02", "172.30.0.2")
            nl.delete_neighbour(vx.index, "10.244.2.0")
            assert nl.neighbours(vx.index, rtnl.AF_INET) == []


def test_a_bridge_keeps_its_mac_as_ports_come_and_go(netns):
    """A bridge left to choose takes its lowest port MAC: a pod with a low MAC joining, or the
    one whose MAC it took leaving, would change the gateway's MAC under every pod's ARP entry."""
    ns, peer_ns = netns.new("brmac"), netns.new("brpeer")
    peer_fd = kns.open_netns(ns_path(peer_ns))
    with kns.entered(ns_path(ns)):
        nl = rtnl.Netlink()
    try:
        nl.add_bridge("pnb0")
        br = nl.link("pnb0")
        mac = br.mac
        assert int(mac.split(":")[0], 16) & 0x03 == 0x02  # unicast, locally administered
        for i, port_mac in enumerate(("02:00:00:00:00:01", "00:00:00:00:00:02")):  # lower than any random one
            nl.add_veth(f"pnv{i}", f"pnp{i}", peer_netns_fd=peer_fd, mac=port_mac)
            nl.set_link(nl.link(f"pnv{i}").index, master=br.index, up=True)
        nl.set_link(br.index, up=True)
        assert nl.link("pnb0").mac == mac
        nl.delete_link(nl.link("pnv1").index)
        assert nl.link("pnb0").mac == mac
        nl.add_bridge("pnb1", mac="02:11:22:33:44:55")
        assert nl.link("pnb1").mac == "02:11:22:33:44:55"
    finally:
        nl.close()
        import os
        os.close(peer_fd)
