"""Anti-spoofing at the pod's port: what the agent records from an ADD's result, the table it
renders, and (in private namespaces) that forged sources, foreign MACs, ARP for another pod's
address and IPv6 are dropped before the bridge, while the pod's own traffic passes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from podnet.agent import antispoof
from podnet.kernel import netns as kns
from podnet.kernel import nft
from tests.raw_packets import SEND_UDP

RESULT = {"cniVersion": "1.1.0",
          "interfaces": [{"name": "cni0", "mac": "aa:aa:aa:aa:aa:01"}, {"name": "veth1234abcd", "mac": "aa:aa:aa:aa:aa:02"},
                         {"name": "eth0", "mac": "0A:58:0A:F4:01:02", "sandbox": "/var/run/netns/p"}],
          "ips": [{"address": "10.244.1.2/24", "gateway": "10.244.1.1", "interface": 2},
                  {"address": "fd00::2/64", "interface": 2}]}


def test_an_attachment_from_a_bridge_result():
    att = antispoof.from_result("c1", "eth0", RESULT, "cni0", "default/web")
    assert att == antispoof.Attachment("c1", "eth0", "veth1234abcd", "0a:58:0a:f4:01:02", ("10.244.1.2",), "default/web")


@pytest.mark.parametrize("broken", [
    {**RESULT, "interfaces": RESULT["interfaces"][:2]},                       # no container interface
    {**RESULT, "interfaces": [RESULT["interfaces"][0], RESULT["interfaces"][2]]},  # no host veth
    {**RESULT, "ips": [{"address": "fd00::2/64", "interface": 2}]},           # no IPv4
    {**RESULT, "interfaces": [*RESULT["interfaces"][:2], {"name": "eth0", "sandbox": "/x"}]},  # no MAC
])
def test_a_result_it_cannot_read_is_an_error(broken):
    with pytest.raises(ValueError):
        antispoof.from_result("c1", "eth0", broken, "cni0")


def test_one_table_whatever_the_number_of_pods():
    atts = [antispoof.Attachment(f"c{i}", "eth0", f"veth{i:08x}", "0a:58:00:00:00:01", (f"10.244.{i // 250}.{i % 250 + 2}",))
            for i in range(500)]
    cmds = antispoof.table(atts)
    assert sum(1 for c in cmds if "rule" in c.get("add", {})) == 5  # rules do not grow with pods
    assert sum(len(c["add"]["element"]["elem"]) for c in cmds if "element" in c.get("add", {})) == 1000
    assert len(antispoof.add_commands(atts[0])) == 2 and len(antispoof.delete_commands(atts[0])) == 2


# -- in the kernel ----------------------------------------------------------------------------
PY = sys.executable


class Node:
    """A node namespace with bridge cni0 (10.99.0.1/24) and pods a (.2) and b (.3) on it."""

    def __init__(self, netns, tmp_path) -> None:
        self.ns = netns.new("node")
        self.pods = {"a": netns.new("pa"), "b": netns.new("pb")}
        self.ip = {"a": "10.99.0.2", "b": "10.99.0.3"}
        sh = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
        sh("ip", "-n", self.ns, "link", "add", "cni0", "type", "bridge")
        sh("ip", "-n", self.ns, "addr", "add", "10.99.0.1/24", "dev", "cni0")
        sh("ip", "-n", self.ns, "link", "set", "cni0", "up")
        self.veth = {}
        for name, pns in self.pods.items():
            host = f"veth{name}0000000"
            sh("ip", "-n", self.ns, "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", pns)
            sh("ip", "-n", self.ns, "link", "set", host, "master", "cni0", "up")
            sh("ip", "-n", pns, "addr", "add", f"{self.ip[name]}/24", "dev", "eth0")
            sh("ip", "-n", pns, "link", "set", "eth0", "up")
            self.veth[name] = host
        self.registry = antispoof.Registry(str(tmp_path / "attachments"))
        for name in self.pods:
            self.registry_admit(name)

    def mac(self, pod: str) -> str:
        out = subprocess.run(["ip", "-n", self.pods[pod], "-j", "link", "show", "eth0"], capture_output=True, text=True).stdout
        return json.loads(out)[0]["address"]

    def registry_admit(self, pod: str) -> None:
        att = antispoof.Attachment(f"c-{pod}", "eth0", self.veth[pod], self.mac(pod), (self.ip[pod],), f"default/{pod}")
        with kns.entered(f"/var/run/netns/{self.ns}"):
            self.registry.admit(att)

    def run(self, pod: str, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.pods[pod], *argv], capture_output=True, text=True, timeout=30)

    def counter(self, name: str) -> int:
        out = subprocess.run(["ip", "netns", "exec", self.ns, "nft", "-j", "list", "counter", "bridge", antispoof.TABLE, name],
                             capture_output=True, text=True, check=True).stdout
        return next(i["counter"]["packets"] for i in json.loads(out)["nftables"] if "counter" in i)


RECV_UDP = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 9999)); s.settimeout(float(sys.argv[1]))
got = []
try:
    while True:
        got.append(s.recvfrom(100)[0].decode())
except socket.timeout:
    pass
print(" ".join(got))
"""

GRATUITOUS_ARP = """
import socket, struct, sys
claim_ip, my_mac = sys.argv[1], bytes.fromhex(sys.argv[2].replace(":", ""))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(("eth0", 0))
arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, my_mac, socket.inet_aton(claim_ip), b"\\xff" * 6,
                  socket.inet_aton(claim_ip))
for _ in range(3):
    s.send(b"\\xff" * 6 + my_mac + b"\\x08\\x06" + arp)
"""


@pytest.fixture
def node(netns, tmp_path):
    return Node(netns, tmp_path)


def _exchange(node, sender: str, src_ip: str, payload: str) -> str:
    receiver = subprocess.Popen(["ip", "netns", "exec", node.pods["b"], PY, "-c", RECV_UDP, "1.0"], stdout=subprocess.PIPE,
                                text=True)
    import time

    time.sleep(0.3)
    node.run(sender, PY, "-c", SEND_UDP, src_ip, node.ip["b"], payload)
    return receiver.communicate(timeout=10)[0].strip()


@pytest.mark.root
def test_own_source_passes_forged_source_is_dropped_and_counted(node):
    assert _exchange(node, "a", node.ip["a"], "own") == "own"
    before = node.counter("spoofed")
    assert _exchange(node, "a", "10.99.0.77", "forged") == ""
    assert node.counter("spoofed") == before + 1
    with kns.entered(f"/var/run/netns/{node.ns}"):
        assert node.registry.drops() == {node.veth["a"]: 1}


@pytest.mark.root
def test_a_changed_mac_is_dropped(node):
    node.run("a", "ip", "link", "set", "eth0", "address", "02:00:00:00:00:99")
    assert _exchange(node, "a", node.ip["a"], "new-mac") == ""


@pytest.mark.root
def test_a_pod_cannot_answer_arp_for_another_pods_address(node):
    mac_a = node.mac("a")
    node.run("a", PY, "-c", GRATUITOUS_ARP, node.ip["b"], mac_a)
    neigh = subprocess.run(["ip", "-n", node.ns, "-j", "neigh", "show", node.ip["b"]], capture_output=True, text=True).stdout
    assert mac_a not in neigh
    # the same frame for its own address is fine
    node.run("a", PY, "-c", GRATUITOUS_ARP, node.ip["a"], mac_a)
    assert node.counter("spoofed") == 3  # the three frames claiming b's address


@pytest.mark.root
def test_ipv6_from_a_pod_is_dropped_separately(node):
    before = node.counter("not-ipv4")
    frame = ("import socket; s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(('eth0', 0)); "
             f"s.send(bytes.fromhex('333300000001' + '{node.mac('a').replace(':', '')}' + '86dd') + bytes(40))")
    r = node.run("a", PY, "-c", frame)
    assert r.returncode == 0, r.stderr
    assert node.counter("not-ipv4") > before
    assert node.counter("spoofed") == 0


@pytest.mark.root
def test_sync_forgets_vanished_pods_and_restores_a_changed_table(node):
    with kns.entered(f"/var/run/netns/{node.ns}"):
        subprocess.run(["nft", "flush", "chain", "bridge", antispoof.TABLE, "prerouting"], check=True)
        assert node.registry.sync(lambda: {node.veth["a"], node.veth["b"], "cni0"}) == 0
        assert len(nft.list_ruleset(["chain", "bridge", antispoof.TABLE, "prerouting"])) > 1
        assert node.registry.sync(lambda: {node.veth["a"], "cni0"}) == 1  # b's veth is gone
        assert [a.container_id for a in node.registry.load()] == ["c-a"]
        assert nft.set_elements(nft.list_ruleset(["table", "bridge", antispoof.TABLE]), "ports") == [node.veth["a"]]
    assert _exchange(node, "a", node.ip["a"], "still") == "still"
