"""The node itself, as the agent finds it: its underlay interface and address, and the
forwarding settings every backend needs."""

from __future__ import annotations

from ..kernel import rtnl, sysctl


class HostError(RuntimeError):
    """The node is not set up as the agent needs (a configuration error: it says which)."""


def underlay(nl: rtnl.Netlink, iface: str) -> tuple[rtnl.Link, str]:
    """The underlay link and its IPv4 address (the node's public IP)."""
    link = nl.link(iface)
    if link is None:
        raise HostError(f"underlay interface {iface!r} not found")
    addrs = [a.address for a in nl.addresses(link.index, rtnl.AF_INET)]
    if not addrs:
        raise HostError(f"underlay interface {iface!r} has no IPv4 address")
    return link, addrs[0]


def enable_forwarding() -> None:
    """Routing between pods, and bridged pod-to-pod traffic through the IPv4 forward hook, where
    NetworkPolicy is enforced (br_netfilter: per network namespace, on by default when present)."""
    sysctl.enable_forwarding()
    try:
        if sysctl.read("net/bridge/bridge-nf-call-iptables") != "1":
            sysctl.write("net/bridge/bridge-nf-call-iptables", "1")
    except OSError:
        pass  # no br_netfilter: pods on one node bypass the forward hook (policy holds across nodes only)
