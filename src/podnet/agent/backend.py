"""Apply a rendered Desired state to this node's kernel, touching only what the agent owns:
routes with protocol RTPROT_PODNET, and neighbours/FDB entries on its vxlan device."""

from __future__ import annotations

import errno
import ipaddress

from ..api.cluster import ClusterConfig
from ..kernel import rtnl, sysctl
from .render import Desired, pod_mtu, vtep_ip, vxlan_device


class BackendError(RuntimeError):
    pass


def underlay(nl: rtnl.Netlink, iface: str) -> tuple[rtnl.Link, str]:
    """The underlay link and its IPv4 address (the node's public IP)."""
    link = nl.link(iface)
    if link is None:
        raise BackendError(f"underlay interface {iface!r} not found")
    addrs = [a.address for a in nl.addresses(link.index, rtnl.AF_INET)]
    if not addrs:
        raise BackendError(f"underlay interface {iface!r} has no IPv4 address")
    return link, addrs[0]


def ensure_vxlan(nl: rtnl.Netlink, cfg: ClusterConfig, subnet: ipaddress.IPv4Network | None, under: rtnl.Link,
                 public_ip: str) -> rtnl.Link:
    """The node's VTEP: created once, kept across agent restarts (so its MAC stays the same).
    Its address (the subnet's x.y.z.0/32) is set once the subnet is known."""
    name = vxlan_device(cfg)
    want = {"vni": cfg.vni, "local": public_ip, "port": cfg.port}
    link = nl.link(name)
    if link is not None and (link.kind != "vxlan" or nl.vxlan_info(link.index) != want):
        nl.delete_link(link.index)
        link = None
    if link is None:
        nl.add_vxlan(name, cfg.vni, public_ip, cfg.port, under.index, mtu=pod_mtu(cfg, under.mtu))
        link = nl.link(name)
    if subnet is not None:
        addr = f"{vtep_ip(subnet)}/32"
        have = {a.cidr for a in nl.addresses(link.index, rtnl.AF_INET)}
        for stale in have - {addr}:
            nl.delete_address(link.index, stale)
        if addr not in have:
            nl.add_address(link.index, addr)
    if not link.up:
        nl.set_link(link.index, up=True)
    return nl.link(name)


def remove_vxlan_devices(nl: rtnl.Netlink) -> None:
    for link in nl.links():
        if link.kind == "vxlan" and link.name.startswith("podnet."):
            nl.delete_link(link.index)


def enable_forwarding() -> None:
    """Routing between pods, and bridged pod-to-pod traffic through the IPv4 forward hook, where
    NetworkPolicy is enforced (br_netfilter: per network namespace, on by default when present)."""
    sysctl.enable_forwarding()
    try:
        if sysctl.read("net/bridge/bridge-nf-call-iptables") != "1":
            sysctl.write("net/bridge/bridge-nf-call-iptables", "1")
    except OSError:
        pass  # no br_netfilter: pods on one node bypass the forward hook (policy holds across nodes only)


def apply(nl: rtnl.Netlink, cfg: ClusterConfig, desired: Desired, under: rtnl.Link, vx: rtnl.Link | None) -> dict:
    """Make the kernel match `desired`; return counts of what changed (all zero when in sync)."""
    changed = {"neighbours": 0, "fdb": 0, "routes_added": 0, "routes_removed": 0}
    if vx is not None:
        have_neigh = {(ip, mac) for ip, mac, state in nl.neighbours(vx.index, rtnl.AF_INET) if state & rtnl.NUD_PERMANENT}
        for ip, mac in desired.neighbours - have_neigh:
            nl.set_neighbour(vx.index, ip, mac)
            changed["neighbours"] += 1
        for ip, mac in have_neigh - desired.neighbours:
            _ignore_missing(nl.delete_neighbour, vx.index, ip)
            changed["neighbours"] += 1
        have_fdb = {(mac, dst) for dst, mac, _ in nl.neighbours(vx.index, rtnl.AF_BRIDGE) if dst}
        for mac, dst in desired.fdb - have_fdb:
            nl.set_fdb(vx.index, mac, dst)
            changed["fdb"] += 1
        for mac, dst in have_fdb - desired.fdb:
            _ignore_missing(nl.delete_fdb, vx.index, mac, dst)
            changed["fdb"] += 1
    have_routes = {}
    for r in nl.routes(rtnl.AF_INET):
        if r.protocol == rtnl.RTPROT_PODNET:
            have_routes[(r.dst, r.gateway, bool(vx is not None and r.oif == vx.index))] = r
    for dst, gw, onlink in sorted(desired.routes):
        if (dst, gw, onlink) in have_routes:
            continue
        oif = vx.index if onlink and vx is not None else under.index
        nl.add_route(dst, gw, oif, onlink=onlink, protocol=rtnl.RTPROT_PODNET, replace=True)
        changed["routes_added"] += 1
    for (dst, gw, onlink), r in have_routes.items():
        if (dst, gw, onlink) not in desired.routes:
            _ignore_missing(nl.delete_route, dst, gw, r.oif)
            changed["routes_removed"] += 1
    return changed


def _ignore_missing(fn, *args) -> None:
    try:
        fn(*args)
    except OSError as e:
        if e.errno not in (errno.ENOENT, errno.ESRCH, errno.ENODEV):
            raise
