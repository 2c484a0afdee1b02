"""The routed plugin (Calico's wiring) and the static IPAM plugin, as executables in a node namespace."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import ip_json, ns_path, run_plugin

pytestmark = pytest.mark.root


def conf(addresses=("10.244.1.5/32",), **kw):
    return {"cniVersion": "1.0.0", "name": "routed-net", "type": "routed", "mtu": 1450,
            "ipam": {"type": "static", "addresses": [{"address": a} for a in addresses]}, **kw}


@pytest.fixture
def node(netns):
    n = netns.new("node")
    # a default route, as a real node has: proxy ARP answers for 169.254.1.1 because the node routes it
    subprocess.run(["ip", "-n", n, "link", "add", "up0", "type", "veth", "peer", "name", "up1"], check=True)
    subprocess.run(["ip", "-n", n, "link", "set", "up0", "up"], check=True)
    subprocess.run(["ip", "-n", n, "addr", "add", "192.0.2.1/24", "dev", "up0"], check=True)
    subprocess.run(["ip", "-n", n, "route", "add", "default", "via", "192.0.2.254"], check=True)
    return n


ARGS = "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-1"


def test_add_wires_the_pod_like_calico_and_del_removes_it(ours, node, netns):
    pod = netns.new("pod")
    r = run_plugin(ours, "routed", "ADD", conf(), host_ns=node, netns=ns_path(pod), cni_args=ARGS)
    assert r.rc == 0, r
    host = r.json["interfaces"][0]
    assert host["name"].startswith("pnw") and len(host["name"]) == 14 and host["mac"] == "ee:ee:ee:ee:ee:ee"
    assert r.json["ips"] == [{"address": "10.244.1.5/32", "interface": 1}]
    # the pod
    addrs = ip_json(pod, "-4", "addr", "show", "dev", "eth0")[0]["addr_info"]
    assert [(a["local"], a["prefixlen"]) for a in addrs] == [("10.244.1.5", 32)]
    routes = {(r.get("dst"), r.get("gateway"), r.get("scope")) for r in ip_json(pod, "route")}
    assert routes == {("169.254.1.1", None, "link"), ("default", "169.254.1.1", None)}
    # the node: no address on the veth, proxy ARP without delay, a /32 scope link route
    link = ip_json(node, "addr", "show", "dev", host["name"])[0]
    assert link["address"] == "ee:ee:ee:ee:ee:ee" and not [a for a in link["addr_info"] if a["family"] == "inet"]
    sysctl = lambda k: subprocess.run(["ip", "netns", "exec", node, "sysctl", "-n", k], capture_output=True,
                                      text=True).stdout.strip()
    assert sysctl(f"net.ipv4.conf.{host['name']}.proxy_arp") == "1"
    assert sysctl(f"net.ipv4.neigh.{host['name']}.proxy_delay") == "0"
    assert {"dst": "10.244.1.5", "dev": host["name"], "scope": "link", "flags": []} in ip_json(node, "route")
    assert not ip_json(node, "link", "show", "type", "bridge")
    # the pod reaches the node (ARP for 169.254.1.1 answered by proxy ARP), and back
    assert subprocess.run(["ip", "netns", "exec", pod, "busybox", "ping", "-c1", "-W2", "192.0.2.1"],
                          capture_output=True).returncode == 0
    neigh = ip_json(pod, "neigh", "show", "169.254.1.1")
    assert neigh and neigh[0]["lladdr"] == "ee:ee:ee:ee:ee:ee"
    # CHECK passes, DEL removes everything, DEL again is fine
    check = run_plugin(ours, "routed", "CHECK", {**conf(), "prevResult": r.json}, host_ns=node, netns=ns_path(pod),
                       cni_args=ARGS)
    assert check.rc == 0, check
    assert run_plugin(ours, "routed", "DEL", conf(), host_ns=node, netns=ns_path(pod), cni_args=ARGS).rc == 0
    assert all(l["ifname"] != host["name"] for l in ip_json(node, "link"))
    assert all(r.get("dst") != "10.244.1.5" for r in ip_json(node, "route"))
    assert run_plugin(ours, "routed", "DEL", conf(), host_ns=node, netns=ns_path(pod), cni_args=ARGS).rc == 0


def test_two_pods_on_one_node_reach_each_other(ours, node, netns):
    a, b = netns.new("pa"), netns.new("pb")
    for pod, ip, name in ((a, "10.244.1.5", "a"), (b, "10.244.1.6", "b")):
        r = run_plugin(ours, "routed", "ADD", conf((f"{ip}/32",)), host_ns=node, netns=ns_path(pod),
                       cni_args=f"K8S_POD_NAMESPACE=default;K8S_POD_NAME={name}")
        assert r.rc == 0, r
    assert subprocess.run(["ip", "netns", "exec", a, "busybox", "ping", "-c1", "-W2", "10.244.1.6"],
                          capture_output=True).returncode == 0


def test_a_late_del_of_an_earlier_sandbox_leaves_the_new_one_wired(ours, node, netns):
    """Both sandboxes of a pod get the same host veth name: the new ADD replaces the old veth,
    and the old sandbox's DEL, arriving later, must not take the new one's away."""
    old, new = netns.new("old"), netns.new("new")
    assert run_plugin(ours, "routed", "ADD", conf(), host_ns=node, netns=ns_path(old), container_id="sandbox-a",
                      cni_args=ARGS).rc == 0
    r = run_plugin(ours, "routed", "ADD", conf(("10.244.1.6/32",)), host_ns=node, netns=ns_path(new),
                   container_id="sandbox-b", cni_args=ARGS)
    assert r.rc == 0, r
    name = r.json["interfaces"][0]["name"]
    assert ip_json(node, "link", "show", "dev", name)[0]["ifalias"] == "sandbox-b"
    assert run_plugin(ours, "routed", "DEL", conf(), host_ns=node, netns=ns_path(old), container_id="sandbox-a",
                      cni_args=ARGS).rc == 0
    assert {"dst": "10.244.1.6", "dev": name, "scope": "link", "flags": []} in ip_json(node, "route")
    assert subprocess.run(["ip", "netns", "exec", new, "busybox", "ping", "-c1", "-W2", "192.0.2.1"],
                          capture_output=True).returncode == 0
    assert run_plugin(ours, "routed", "DEL", conf(("10.244.1.6/32",)), host_ns=node, netns=ns_path(new),
                      container_id="sandbox-b", cni_args=ARGS).rc == 0
    assert all(link["ifname"] != name for link in ip_json(node, "link"))


def test_failed_add_leaves_nothing(ours, node, netns):
    pod = netns.new("pod")
    r = run_plugin(ours, "routed", "ADD", conf(("fd00::5/128",)), host_ns=node, netns=ns_path(pod), cni_args=ARGS)
    assert r.rc == 1 and r.code == 7 and "only IPv4" in r.json["msg"]
    assert [l["ifname"] for l in ip_json(node, "link")] == ["lo", "up1", "up0"]
    assert [l["ifname"] for l in ip_json(pod, "link")] == ["lo"]


@pytest.mark.parametrize("bad,code,words", [
    ({"mtu": "big"}, 6, "mtu"),
    ({"mtu": 100}, 7, "at least 576"),
    ({"hostVethPrefix": "cali-x"}, 7, "hostVethPrefix"),
    ({"ipam": {}}, 7, "'ipam' section"),
])
def test_bad_config_names_the_field(ours, node, netns, bad, code, words):
    pod = netns.new("pod")
    r = run_plugin(ours, "routed", "ADD", {**conf(), **bad}, host_ns=node, netns=ns_path(pod), cni_args=ARGS)
    assert r.rc == 1 and r.code == code and words in r.json["msg"], r
    assert [l["ifname"] for l in ip_json(node, "link")] == ["lo", "up1", "up0"]


def test_static_ipam_sources_and_errors(ours):
    base = {"cniVersion": "1.0.0", "name": "n", "type": "static"}

    r = run_plugin(ours, "static", "ADD", netns="/var/run/netns/x", conf={**base, "ipam": {"type": "static", "routes": [{"dst": "0.0.0.0/0"}],
                                                            "dns": {"nameservers": ["10.0.0.10"]}},
                                           "runtimeConfig": {"ips": ["10.0.0.7/24"]}},
                   cni_args="IP=10.0.0.5/24")
    assert r.rc == 0, r
    assert [ip["address"] for ip in r.json["ips"]] == ["10.0.0.5/24", "10.0.0.7/24"]
    assert r.json["routes"] == [{"dst": "0.0.0.0/0"}] and r.json["dns"] == {"nameservers": ["10.0.0.10"]}
    r = run_plugin(ours, "static", "ADD", netns="/var/run/netns/x", conf={**base, "ipam": {"type": "static", "addresses": [{"address": "10.0.0.5"}]}})
    assert r.rc == 1 and r.code == 7 and "ipam.addresses[0]" in r.json["msg"]
    r = run_plugin(ours, "static", "ADD", base, netns="/var/run/netns/x")
    assert r.rc == 1 and r.code == 7 and "no addresses given" in r.json["msg"]
    assert run_plugin(ours, "static", "DEL", base, netns="/var/run/netns/x").rc == 0
