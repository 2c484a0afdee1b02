"""A hand-built topology: two nodes joined by VXLAN, pods on both (one with a name full of
characters every output format must escape), a Service and a NetworkPolicy."""

from __future__ import annotations

from podnet.topo.model import (
    Device,
    Endpoint,
    FdbEntry,
    Link,
    Netns,
    Node,
    Pod,
    Policy,
    Service,
    Topology,
    device_id,
    node_id,
    pod_id,
)

NASTY = 'x"y\\z<b>&</script><!--'  # quote, backslash, markup, a script end and a comment start


def sample() -> Topology:
    n1, n2 = node_id("node1"), node_id("node2")
    a, b, w = pod_id("default", "a"), pod_id("default", "b"), pod_id("default", NASTY)
    devices = [
        Device(device_id(n1, "cni0"), n1, "pn-t-node1", "cni0", "bridge", 4, addresses=["10.244.1.1/24"]),
        Device(device_id(n1, "podnet.1"), n1, "pn-t-node1", "podnet.1", "vxlan", 3, vni=1, port=8472, local="172.31.0.11",
               fdb=[FdbEntry("82:f8:69:6e:f4:05", "172.31.0.12", n2)]),
        Device(device_id(n1, "veth1"), n1, "pn-t-node1", "veth1", "veth", 5, master=device_id(n1, "cni0"),
               peer=device_id(a, "eth0")),
        Device(device_id(a, "eth0"), a, "pn-t-p1", "eth0", "veth", 2, addresses=["10.244.1.3/24"], peer=device_id(n1, "veth1")),
        Device(device_id(n2, "podnet.1"), n2, "pn-t-node2", "podnet.1", "vxlan", 3, vni=1, port=8472, local="172.31.0.12",
               fdb=[FdbEntry("2a:a8:00:84:9d:ef", "172.31.0.11", n1)]),
        Device(device_id(w, "eth0"), w, "pn-t-p3", "eth0", "veth", 2, addresses=["10.244.2.9/24"]),
    ]
    return Topology(
        nodes=[Node(n1, "node1", "172.31.0.11", "pn-t-node1", "10.244.1.0/24", True),
               Node(n2, "node2", "172.31.0.12", "pn-t-node2", "10.244.2.0/24", True)],
        pods=[Pod(a, "default", "a", "10.244.1.3", "node1", "pn-t-p1", {"app": "a"}, True, "Running"),
              Pod(b, "default", "b", "10.244.2.2", "node2", "pn-t-p2", {"app": "b"}, True, "Running"),
              Pod(w, "default", NASTY, "10.244.2.9", "node2", "pn-t-p3", {"app": NASTY}, False, "Pending"),
              Pod(pod_id("default", "lost"), "default", "lost", "", "", "", {}, False, "Pending")],
        services=[Service("svc/default/web", "default", "web", "ClusterIP", "10.96.0.20", ["80/TCP->8080"],
                          [Endpoint("10.244.2.2", True, b)]),
                  Service(f"svc/default/{NASTY}", "default", NASTY, "NodePort", "10.96.0.21", ["80:30080/TCP->80"],
                          [Endpoint("10.244.2.9", False, w)])],
        policies=[Policy("netpol/default/deny-b", "default", "deny-b", ["Ingress"], [b])],
        devices=devices,
        namespaces=[Netns("ns/pn-t-node1", "pn-t-node1", n1, ["default via 172.31.0.1 dev eth0"])],
        links=[Link(device_id(a, "eth0"), device_id(n1, "veth1"), "veth"),
               Link(device_id(n1, "veth1"), device_id(n1, "cni0"), "bridge-port"),
               Link(device_id(n1, "podnet.1"), device_id(n2, "podnet.1"), "vxlan", "VNI 1 -> 172.31.0.12"),
               Link(device_id(n2, "podnet.1"), device_id(n1, "podnet.1"), "vxlan", "VNI 1 -> 172.31.0.11"),
               Link("svc/default/web", b, "endpoint"),
               Link(f"svc/default/{NASTY}", w, "endpoint", "not ready"),
               Link("netpol/default/deny-b", b, "selects")],
        cluster={"name": "t", "backend": "vxlan"})
