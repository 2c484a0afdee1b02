"""Realising a lab topology (podnet.lab.topo) in the kernel: the one place that turns the data into
namespaces, bridges, veths, addresses and routes, and takes a node's part away again."""

from __future__ import annotations

import subprocess

from ..api.service import LB_POOL
from ..kernel import rtnl
from .netns_util import delete_netns, ip
from .topo import Node, Topology


def underlay(topo: Topology) -> None:
    """The underlay namespace with a bridge per segment (br0 holding the side services'
    address), and the router joining the segments when there are several."""
    u = topo.underlay
    ip("netns", "add", u)
    ip("-n", u, "link", "set", "lo", "up")
    for seg in topo.segments:
        # a MAC of its own: one it took from a node's port would change when that node leaves
        mac = rtnl.mac_str(rtnl.random_mac())
        ip("-n", u, "link", "add", seg.bridge, "address", mac, "type", "bridge")
        ip("-n", u, "link", "set", seg.bridge, "up")
    ip("-n", u, "addr", "add", f"{topo.outside}/24", "dev", topo.segments[0].bridge)
    r = topo.router
    if r is None:
        return
    ip("netns", "add", r.namespace)
    ip("-n", r.namespace, "link", "set", "lo", "up")
    subprocess.run(["ip", "netns", "exec", r.namespace, "sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True,
                   capture_output=True)
    for seg in r.segments:
        port = f"rt-{seg.index}"
        ip("-n", u, "link", "add", port, "type", "veth", "peer", "name", r.leg(seg), "netns", r.namespace)
        ip("-n", u, "link", "set", port, "master", seg.bridge, "up")
        ip("-n", r.namespace, "addr", "add", f"{r.address(seg)}/24", "dev", r.leg(seg))
        ip("-n", r.namespace, "link", "set", r.leg(seg), "up")
    for seg in r.segments[1:]:  # the outside (segment 0) reaches the other segments through the router
        ip("-n", u, "route", "add", seg.cidr, "via", r.address(topo.segments[0]))


def node(topo: Topology, n: Node) -> None:
    """The node's namespace, plugged into its segment, with a default route to its gateway (like a
    real node: traffic to a service without endpoints then reaches the proxy's reject instead of
    failing with "no route")."""
    ip("netns", "add", n.namespace)
    ip("-n", n.namespace, "link", "set", "lo", "up")
    ip("-n", topo.underlay, "link", "add", n.port, "type", "veth", "peer", "name", "eth0", "netns", n.namespace)
    ip("-n", topo.underlay, "link", "set", n.port, "master", n.segment.bridge, "up")
    ip("-n", n.namespace, "addr", "add", f"{n.ip}/24", "dev", "eth0")
    ip("-n", n.namespace, "link", "set", "eth0", "up")
    ip("-n", n.namespace, "route", "add", "default", "via", n.gateway)


def remove_node(topo: Topology, n: Node) -> None:
    delete_netns(n.namespace)
    subprocess.run(["ip", "-n", topo.underlay, "link", "del", n.port], capture_output=True)


def load_balancer_route(topo: Topology, nodes: list[Node]) -> None:
    """The underlay acts as the external load balancer: the LoadBalancer pool is routed to every
    node (ECMP); across segments, by the router, which is next to all of them."""
    if topo.router is None:
        where, hops = topo.underlay, [arg for n in nodes for arg in ("nexthop", "via", n.ip)]
    else:
        where, hops = topo.router.namespace, [arg for n in nodes for arg in ("nexthop", "via", n.ip)]
        if nodes:
            ip("-n", topo.underlay, "route", "replace", LB_POOL, "via", topo.router.address(topo.segments[0]))
    if not hops:
        subprocess.run(["ip", "-n", where, "route", "del", LB_POOL], capture_output=True)
        subprocess.run(["ip", "-n", topo.underlay, "route", "del", LB_POOL], capture_output=True)
        return
    ip("-n", where, "route", "replace", LB_POOL, *hops)
