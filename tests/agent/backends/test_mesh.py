"""The mesh backend's pure parts: its config, the guard table, the router's command line, and
the CNI delegate against a fake router."""

from __future__ import annotations

import ipaddress
import json

import pytest

from podnet.agent.backends import NodeContext
from podnet.agent.backends import mesh
from podnet.agent.backends.mesh.delegate import MeshDelegate
from podnet.api.errors import ValidationError


def test_defaults_and_fields():
    assert mesh.parse({}, "t") == {"Peers": [], "Seed": [], "Port": 6783, "FastDP": True, "FastDPPort": 6784,
                                   "PasswordFile": ""}
    conf = mesh.parse({"Peers": ["192.168.0.11", "192.168.0.12:7000"], "Seed": ["node1", "node2"]}, "t")
    assert conf["Peers"] == ["192.168.0.11", "192.168.0.12:7000"]


@pytest.mark.parametrize("fields, field", [
    ({"Peer": []}, "Backend.Peer"),
    ({"Peers": "192.168.0.1"}, "Backend.Peers"),
    ({"Peers": ["node1"]}, "Backend.Peers[0]"),
    ({"Peers": ["192.168.0.1", "10.0.0.1:99999"]}, "Backend.Peers[1]"),
    ({"Seed": ["node1", ""]}, "Backend.Seed[1]"),
    ({"Port": 0}, "Backend.Port"),
    ({"Port": True}, "Backend.Port"),
    ({"PasswordFile": 1}, "Backend.PasswordFile"),
    ({"FastDP": "yes"}, "Backend.FastDP"),
    ({"FastDPPort": 6783}, "Backend.FastDPPort"),
])
def test_bad_fields_are_named(fields, field):
    with pytest.raises(ValidationError) as e:
        mesh.parse(fields, "t")
    assert e.value.field == field


def test_guard_keeps_pods_off_every_mesh_port():
    cmds = mesh.guard("10.244.0.0/16", mesh.parse({}, "t"))
    rules = [c["add"]["rule"] for c in cmds if "rule" in c.get("add", {})]
    assert {r["chain"] for r in rules} == {"input", "forward"}
    udp = next(r for r in rules if r["chain"] == "input" and "UDP" in r["comment"])
    assert udp["expr"][0]["match"]["right"] == {"prefix": {"addr": "10.244.0.0", "len": 16}}
    assert udp["expr"][1]["match"]["right"] == {"set": [6783, 6784]}
    tcp = next(r for r in rules if r["chain"] == "forward" and "TCP" in r["comment"])
    assert tcp["expr"][1]["match"]["right"] == 6783
    assert cmds[1] == {"delete": {"table": {"family": "ip", "name": "podnet_overlay"}}}  # replaced as a whole


def context(**conf) -> NodeContext:
    return NodeContext("node2", None, None, "192.168.0.12", ipaddress.ip_network("10.244.0.0/16"),
                       mesh.parse(conf, "t"), "/var/lib/podnet/node2")


def test_router_command_line():
    argv = mesh.router_argv(context(Peers=["192.168.0.11", "192.168.0.12"], Seed=["node1", "node2"],
                                    PasswordFile="/etc/pw"), 1450)
    args = argv[argv.index("router") + 1:]
    pairs = dict(zip(args[::2], args[1::2]))
    assert pairs["--name"] == "node2" and pairs["--address"] == "192.168.0.12"
    assert pairs["--peers"] == "192.168.0.11"  # never itself
    assert pairs["--ipalloc-init"] == "seed=node1,node2" and pairs["--ipalloc-range"] == "10.244.0.0/16"
    assert pairs["--state-dir"] == "/var/lib/podnet/node2/mesh" and pairs["--bridge"] == mesh.BRIDGE
    assert pairs["--mtu"] == "1450" and pairs["--password-file"] == "/etc/pw" and pairs["--fastdp-port"] == "6784"
    assert "0" == dict(zip(*[iter(mesh.router_argv(context(FastDP=False), 1450)[5:])] * 2))["--fastdp-port"]
    assert "--peers" not in mesh.router_argv(context(Peers=["192.168.0.12"]), 1450)


def test_lab_fields():
    assert mesh.Mesh().lab_fields("192.168.0.11", ["node1", "node2"]) == {"Peers": ["192.168.0.11"],
                                                                           "Seed": ["node1", "node2"]}


class FakeRouter:
    def __init__(self, fail: Exception | None = None):
        self.held: dict[str, str] = {}
        self.fail = fail
        self.next = 10

    def allocate(self, handle, timeout):
        if self.fail:
            raise self.fail
        if handle not in self.held:
            self.held[handle] = f"10.244.0.{self.next}"
            self.next += 1
        return self.held[handle]

    def lookup(self, handle):
        if self.fail:
            raise self.fail
        return self.held.get(handle)

    def release(self, handle):
        return self.held.pop(handle, None) is not None

    def allocations(self):
        return dict(self.held)


ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0", "CNI_NETNS": "/nonexistent/netns",
       "CNI_PATH": "/nonexistent"}
CONF = json.dumps({"cniVersion": "1.0.0", "name": "podnet", "type": "podnet"}).encode()


def test_add_without_a_router_says_try_again_later():
    d = MeshDelegate(FakeRouter(fail=ConnectionRefusedError("no router")), mesh.BRIDGE, 16, 1450, lambda: "10.244.0.1")
    code, out = d.run(ENV, CONF)
    assert code == 1 and json.loads(out)["code"] == 11 and "no router" in json.loads(out)["details"]


def test_a_failed_add_gives_the_address_back_and_the_rendered_config_is_the_bridge_plugins():
    router = FakeRouter()
    d = MeshDelegate(router, mesh.BRIDGE, 16, 1450, lambda: "10.244.0.1")
    code, out = d.run(ENV, CONF)  # the netns does not exist: the bridge plugin fails
    assert code == 1 and json.loads(out)["code"] != 11
    assert router.held == {}
    conf = d.conf_for({"cniVersion": "1.0.0", "prevResult": {"x": 1}}, "10.244.0.10", "10.244.0.1")
    assert conf["type"] == "bridge" and conf["bridge"] == mesh.BRIDGE and conf["mtu"] == 1450
    assert conf["ipam"] == {"type": "static", "addresses": [{"address": "10.244.0.10/16", "gateway": "10.244.0.1"}]}
    assert conf["prevResult"] == {"x": 1} and conf["isDefaultGateway"]


def test_gc_releases_only_podnet_handles_that_are_not_valid():
    router = FakeRouter()
    router.held = {"podnet.c1.eth0": "10.244.0.10", "podnet.c2.eth0": "10.244.0.11", "node:node2": "10.244.0.1"}
    d = MeshDelegate(router, mesh.BRIDGE, 16, 1450, lambda: "10.244.0.1")
    conf = json.dumps({"cniVersion": "1.1.0", "name": "podnet", "type": "podnet",
                       "cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}]}).encode()
    assert d.run({**ENV, "CNI_COMMAND": "GC"}, conf) == (0, "")
    assert set(router.held) == {"podnet.c1.eth0", "node:node2"}
