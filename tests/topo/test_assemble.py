"""`collect.assemble` on canned `ip -j` output and stored objects (no root): veth peers from
the kernel's nsid and ifindex, bridge ports, VXLAN FDB -> remote node, endpoints, selections."""

from __future__ import annotations

import subprocess

from podnet.topo import collect
from podnet.topo.collect import NodeRef, Objects, Reading


def link(ifindex, name, kind=None, addrs=(), **extra):
    out = {"ifindex": ifindex, "ifname": name, "flags": ["BROADCAST", "UP"], "mtu": 1450, "address": f"02:00:00:00:00:{ifindex:02x}",
           "link_type": "ether", "addr_info": [{"family": "inet", "local": a.split("/")[0], "prefixlen": int(a.split("/")[1]),
                                               "scope": "global"} for a in addrs]
           + [{"family": "inet6", "local": "fe80::1", "prefixlen": 64, "scope": "link"}]}
    if kind:
        out["linkinfo"] = {"info_kind": kind, **({"info_data": extra.pop("data")} if "data" in extra else {})}
    out.update(extra)
    return out


LO = {"ifindex": 1, "ifname": "lo", "link_type": "loopback", "flags": ["LOOPBACK", "UP"]}


def node_reading(n, peer_ip, pods):
    """A node: eth0 to the underlay, a VTEP, cni0, and one veth per pod (nsid i+1 -> pod i's namespace)."""
    links = [LO, link(2, "eth0", "veth", [f"172.31.0.1{n}/24"], link_index=3, link_netnsid=0),
             link(3, "podnet.1", "vxlan", [f"10.244.{n}.0/32"], data={"id": 1, "port": 8472, "local": f"172.31.0.1{n}"}),
             link(4, "cni0", "bridge", [f"10.244.{n}.1/24"])]
    links += [link(5 + i, f"veth{n}{i}", "veth", link_index=2, link_netnsid=i + 1, master="cni0") for i in range(len(pods))]
    fdb = [{"mac": "0a:00:00:00:00:01", "ifname": "podnet.1", "dst": peer_ip, "state": "permanent"},
           {"mac": "00:00:00:00:00:00", "ifname": "podnet.1", "dst": peer_ip, "state": "permanent"},
           {"mac": "33:33:00:00:00:01", "ifname": "eth0", "state": "permanent"}]
    routes = [{"dst": "default", "gateway": "172.31.0.1", "dev": "eth0", "flags": []},
              {"dst": f"10.244.{3 - n}.0/24", "gateway": f"10.244.{3 - n}.0", "dev": "podnet.1", "protocol": "158", "flags": ["onlink"]}]
    return Reading(links=links, routes=routes, fdb=fdb, nsids={0: "pn-t-u", **{i + 1: p for i, p in enumerate(pods)}})


def pod_reading(ip, peer_ifindex):
    return Reading(links=[LO, link(2, "eth0", "veth", [f"{ip}/24"], link_index=peer_ifindex, link_netnsid=0)],
                   routes=[{"dst": "default", "gateway": ip.rsplit(".", 1)[0] + ".1", "dev": "eth0", "flags": []}])


def pod(name, node, ip, netns, labels, ready=True):
    return {"metadata": {"name": name, "namespace": "default", "labels": labels, "annotations": {"podnet.io/netns": netns}},
            "spec": {"nodeName": node}, "status": {"podIP": ip, "phase": "Running",
                                                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def node(name, ip, cidr):
    return {"metadata": {"name": name}, "spec": {"podCIDR": cidr},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}], "conditions": [{"type": "Ready", "status": "True"}]}}


def world():
    refs = [NodeRef("node1", "pn-t-node1", "172.31.0.11"), NodeRef("node2", "pn-t-node2", "172.31.0.12")]
    objects = Objects(
        nodes=[node("node1", "172.31.0.11", "10.244.1.0/24"), node("node2", "172.31.0.12", "10.244.2.0/24")],
        pods=[pod("a", "node1", "10.244.1.3", "/var/run/netns/pn-t-p1", {"app": "a"}),
              pod("b", "node2", "10.244.2.2", "pn-t-p2", {"app": "b"}),
              pod("c", "node2", "10.244.2.3", "pn-t-p3", {"app": "b", "tier": "x"}, ready=False)],
        services=[{"metadata": {"name": "web", "namespace": "default"},
                   "spec": {"type": "NodePort", "clusterIP": "10.96.0.20",
                            "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP", "targetPort": 8080}]}}],
        slices={"default/web": [{"endpoints": [
            {"addresses": ["10.244.2.2"], "conditions": {"ready": True}, "targetRef": {"kind": "Pod", "name": "b", "namespace": "default"}},
            {"addresses": ["10.244.2.3"], "conditions": {"ready": False}},
            {"addresses": ["10.9.9.9"], "conditions": {"ready": True}}]}]},
        policies=[{"metadata": {"name": "deny-b", "namespace": "default"},
                   "spec": {"podSelector": {"matchLabels": {"app": "b"}}, "policyTypes": ["Ingress"]}},
                  {"metadata": {"name": "other-ns", "namespace": "other"},
                   "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}])
    readings = {"pn-t-node1": node_reading(1, "172.31.0.12", ["pn-t-p1"]),
                "pn-t-node2": node_reading(2, "172.31.0.11", ["pn-t-p2", "pn-t-p3"]),
                "pn-t-p1": pod_reading("10.244.1.3", 5), "pn-t-p2": pod_reading("10.244.2.2", 5),
                "pn-t-p3": Reading(error="Cannot open network namespace \"pn-t-p3\": No such file or directory")}
    return collect.assemble(refs, objects, readings, {"name": "t"})


def links(model, kind):
    return {(lk.frm, lk.to) for lk in model.links if lk.kind == kind}


def test_nodes_and_pods():
    m = world()
    assert [(n.name, n.ip, n.netns, n.pod_cidr, n.ready) for n in m.nodes] == [
        ("node1", "172.31.0.11", "pn-t-node1", "10.244.1.0/24", True), ("node2", "172.31.0.12", "pn-t-node2", "10.244.2.0/24", True)]
    assert [(p.id, p.ip, p.node, p.netns, p.ready) for p in m.pods] == [
        ("pod/default/a", "10.244.1.3", "node1", "pn-t-p1", True), ("pod/default/b", "10.244.2.2", "node2", "pn-t-p2", True),
        ("pod/default/c", "10.244.2.3", "node2", "pn-t-p3", False)]


def test_devices_leave_out_loopback_and_link_local_addresses():
    m = world()
    eth0 = next(d for d in m.devices if d.id == "dev/pod/default/a/eth0")
    assert eth0.addresses == ["10.244.1.3/24"] and eth0.kind == "veth" and eth0.netns == "pn-t-p1"
    assert not [d for d in m.devices if d.name == "lo"]


def test_veth_peers_come_from_nsid_and_ifindex():
    m = world()
    assert links(m, "veth") == {("dev/pod/default/a/eth0", "dev/node/node1/veth10"),
                                ("dev/pod/default/b/eth0", "dev/node/node2/veth20")}
    by_id = {d.id: d for d in m.devices}
    assert by_id["dev/node/node1/veth10"].peer == "dev/pod/default/a/eth0"
    assert by_id["dev/node/node2/veth21"].peer == ""           # its pod's namespace could not be read
    assert by_id["dev/node/node1/eth0"].peer == ""             # the underlay is not part of the picture


def test_bridge_ports():
    assert links(world(), "bridge-port") == {("dev/node/node1/veth10", "dev/node/node1/cni0"),
                                             ("dev/node/node2/veth20", "dev/node/node2/cni0"),
                                             ("dev/node/node2/veth21", "dev/node/node2/cni0")}


def test_vxlan_fdb_points_at_the_remote_node():
    m = world()
    vtep = next(d for d in m.devices if d.id == "dev/node/node1/podnet.1")
    assert (vtep.vni, vtep.port, vtep.local) == (1, 8472, "172.31.0.11")
    assert [(e.mac, e.dst, e.node) for e in vtep.fdb] == [("0a:00:00:00:00:01", "172.31.0.12", "node/node2"),
                                                          ("00:00:00:00:00:00", "172.31.0.12", "node/node2")]
    tunnels = [lk for lk in m.links if lk.kind == "vxlan"]
    assert {(lk.frm, lk.to, lk.label) for lk in tunnels} == {
        ("dev/node/node1/podnet.1", "dev/node/node2/podnet.1", "VNI 1 -> 172.31.0.12"),
        ("dev/node/node2/podnet.1", "dev/node/node1/podnet.1", "VNI 1 -> 172.31.0.11")}


def test_service_endpoints_and_policy_selection():
    m = world()
    (svc,) = m.services
    assert (svc.id, svc.type, svc.cluster_ip, svc.ports) == ("svc/default/web", "NodePort", "10.96.0.20", ["80:30080/TCP->8080"])
    assert [(e.ip, e.ready, e.pod) for e in svc.endpoints] == [
        ("10.244.2.2", True, "pod/default/b"), ("10.244.2.3", False, "pod/default/c"), ("10.9.9.9", True, "")]
    assert links(m, "endpoint") == {("svc/default/web", "pod/default/b"), ("svc/default/web", "pod/default/c")}
    assert [(p.id, p.selects) for p in m.policies] == [("netpol/default/deny-b", ["pod/default/b", "pod/default/c"]),
                                                      ("netpol/other/other-ns", [])]
    assert links(m, "selects") == {("netpol/default/deny-b", "pod/default/b"), ("netpol/default/deny-b", "pod/default/c")}


def test_namespaces_carry_routes_and_read_errors():
    m = world()
    ns = {n.name: n for n in m.namespaces}
    assert "10.244.2.0/24 via 10.244.2.0 dev podnet.1 proto 158 onlink" in ns["pn-t-node1"].routes
    assert ns["pn-t-p3"].error.startswith("Cannot open network namespace")


def test_every_link_end_is_in_the_model():
    m = world()
    ids = m.ids()
    assert all(lk.frm in ids and lk.to in ids for lk in m.links)


def test_read_netns_reports_a_vanished_namespace():
    def run(argv):
        raise subprocess.CalledProcessError(1, argv, "", 'Cannot open network namespace "pn-gone": No such file or directory\n')

    reading = collect.read_netns("pn-gone", node=True, run=run)
    assert reading.error == 'Cannot open network namespace "pn-gone": No such file or directory'
    assert reading.links == []


def test_read_netns_commands_only_read():
    seen = []

    def run(argv):
        seen.append(argv)
        return "[]"

    collect.read_netns("pn-x", node=True, run=run)
    assert seen == [["ip", "-n", "pn-x", "-j", "-d", "addr", "show"], ["ip", "-n", "pn-x", "-j", "route", "show"],
                    ["bridge", "-n", "pn-x", "-j", "fdb", "show"], ["ip", "-n", "pn-x", "-j", "netns", "list-id"]]
