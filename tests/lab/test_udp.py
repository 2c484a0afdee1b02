"""flannel's UDP backend in a 3-node lab: every pod reaches every pod with its own IP through
the TUN devices and forwarders; on the underlay the traffic is UDP to port 8285 carrying the
raw inner IPv4 packet; a node that leaves and one that joins change every forwarder's table
without restarting anything; an address of the cluster network that no lease covers is net
unreachable."""

from __future__ import annotations

import errno
import socket
import struct
import threading
import time

import pytest

from podnet.agent.backends import udp
from podnet.agent.backends.udp import native
from podnet.kernel import netns as kns
from podnet.lab import probe, topology
from tests.conftest import ip_json
from tests.lab.conftest import module_lab, wait_for
from tests.lab.test_cluster import assert_every_pair_reaches_with_its_own_ip, pod_netns

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    try:
        native.binary()
    except native.BuildError as e:
        pytest.skip(str(e))
    with module_lab(tmp_path_factory, "u", 3, backend="udp") as lab:
        yield lab


netns = pod_netns


def test_every_pod_reaches_every_pod_with_its_own_ip_through_the_tun_devices(lab, six):
    for node in lab.state.nodes:
        link = next(l for l in ip_json(node.netns, "-d", "link") if l["ifname"] == udp.DEVICE)
        assert link["linkinfo"]["info_kind"] == "tun" and link["mtu"] == 1500 - 28
    assert_every_pair_reaches_with_its_own_ip(six)


def test_the_underlay_carries_the_inner_packet_as_the_whole_udp_payload(lab, six):
    one = next(p for p in six if p["spec"]["nodeName"] == "node1")
    two = next(p for p in six if p["spec"]["nodeName"] == "node2")
    with kns.entered(f"/var/run/netns/{lab.state.underlay}"):  # ETH_P_ALL: taps for one protocol miss bridged frames
        raw = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0003))
    raw.settimeout(3)
    seen: list[bytes] = []

    def sniff():
        try:
            while len(seen) < 200:
                data, (_, proto, *_) = raw.recvfrom(65535)
                if proto == 0x0800:
                    seen.append(data)
        except OSError:
            pass

    t = threading.Thread(target=sniff)
    t.start()
    assert probe.ping(netns(one), two["status"]["podIP"])
    t.join()
    raw.close()
    inner = []
    for pkt in seen:
        ihl = (pkt[0] & 0xF) * 4
        if pkt[9] == socket.IPPROTO_UDP and struct.unpack("!H", pkt[ihl + 2:ihl + 4])[0] == 8285:
            inner.append(pkt[ihl + 8:])
    pods = {(one["status"]["podIP"], two["status"]["podIP"]), (two["status"]["podIP"], one["status"]["podIP"])}
    found = [i for i in inner if (socket.inet_ntoa(i[12:16]), socket.inet_ntoa(i[16:20])) in pods]
    assert found, f"no datagram to port 8285 carried the pods' packets ({len(inner)} to 8285, {len(seen)} seen)"
    for i in found:
        assert i[0] == 0x45 and i[9] == socket.IPPROTO_ICMP and len(i) == struct.unpack("!H", i[2:4])[0]


def unreachable(src_netns: str, ip: str) -> bool:
    """A datagram from the pod to `ip` comes back as ICMP net unreachable."""
    with kns.entered(f"/var/run/netns/{src_netns}"):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with s:
        s.settimeout(2)
        s.setsockopt(socket.IPPROTO_IP, 11, 1)  # IP_RECVERR: net unreachable is a soft error for UDP
        s.connect((ip, 9))
        s.send(b"anyone?")
        try:
            s.recv(100)
        except OSError as e:
            return e.errno == errno.ENETUNREACH
    return False


def agent_pids(lab) -> dict:
    return {n.name: n.agent_pid for n in lab.state.nodes}


def test_nodes_leaving_and_joining_change_the_tables_without_restarts(lab, six):
    """Last in this module: node3 goes, node4 comes."""
    one = next(p for p in six if p["spec"]["nodeName"] == "node1")
    three = next(p for p in six if p["spec"]["nodeName"] == "node3")
    pids = {n: pid for n, pid in agent_pids(lab).items() if n != "node3"}
    assert unreachable(netns(one), "10.244.200.9")  # in the cluster network, nobody's lease
    topology.add_node(lab.state, "node4")  # (first: a node added after node3 went would take its address)
    topology.wait_ready(lab.state, ["node4"])
    four = lab.apply_pod("4a-pod", "node4")
    time.sleep(0.5)
    assert wait_for(lambda: probe.tcp_source(netns(one), four["status"]["podIP"], 8080) == one["status"]["podIP"], 10)
    topology.remove_node(lab.state, "node3")
    assert wait_for(lambda: unreachable(netns(one), three["status"]["podIP"]), 10), "node3's subnet is still routed"
    assert {n: pid for n, pid in agent_pids(lab).items() if n in pids} == pids
    for node in ("node1", "node2"):
        with open(f"{lab.state.node_dir(node)}/udp-forwarder.log") as f:
            assert f.read().count("forwarding ") == 1, f"{node}'s forwarder was restarted"
