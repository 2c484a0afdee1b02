"""vxlan: flannel's VXLAN backend. Each node has a VTEP `podnet.<VNI>` (UDP 8472 by default)
holding its subnet's x.y.z.0/32; for every other node it programs a permanent neighbour (the
peer's VTEP address -> its VTEP MAC), an FDB entry (that MAC -> the peer's underlay address)
and an onlink route to the peer's subnet via its VTEP address, in that order. Works across
routed underlays. Its guard table accepts VXLAN only from peer nodes."""

from __future__ import annotations

import ipaddress

from ...api.errors import ValidationError
from ...kernel import rtnl
from ..leases import Lease
from ..render import Desired, overlay_guard
from . import Backend, NodeContext, register

OVERHEAD = 50  # outer IPv4 + UDP + VXLAN headers
FIELDS = ("VNI", "Port")


def parse_vni_port(fields: dict, source: str, owner: str, vni: int, port: int) -> dict:
    """The VNI and Port of a Backend section (defaults given), or ValidationError naming the field."""
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise ValidationError(f"Backend.{unknown[0]}", f"unknown field for backend {owner}", source)
    vni, port = fields.get("VNI", vni), fields.get("Port", port)
    if not isinstance(vni, int) or isinstance(vni, bool) or not 0 < vni < 1 << 24:
        raise ValidationError("Backend.VNI", f"must be an integer from 1 to 16777215, not {vni!r}", source)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ValidationError("Backend.Port", f"must be a UDP port number, not {port!r}", source)
    return {"VNI": vni, "Port": port}


def device_name(vni: int) -> str:
    return f"podnet.{vni}"


def vtep_ip(subnet: ipaddress.IPv4Network) -> str:
    """The VXLAN device's address: the subnet's network address, as flannel does (x.y.z.0/32)."""
    return str(subnet.network_address)


class Vxlan(Backend):
    name = "vxlan"
    overhead = OVERHEAD
    summary = "VXLAN overlay: a VTEP per node, neighbour + FDB + route per peer (any underlay)"

    def parse(self, fields: dict, source: str) -> dict:
        return parse_vni_port(fields, source, "vxlan (expected VNI, Port)", 1, 8472)

    def setup(self, ctx: NodeContext) -> dict:
        ctx.devices["vtep"] = ensure_vtep(ctx, None)
        return {"VtepMAC": ctx.devices["vtep"].mac, "VNI": ctx.conf["VNI"]}

    def leased(self, ctx: NodeContext, lease: Lease) -> None:
        ctx.devices["vtep"] = ensure_vtep(ctx, lease.subnet)

    def render(self, ctx: NodeContext, me: Lease, leases: list[Lease]) -> Desired:
        return render(me, leases)

    def guard(self, ctx: NodeContext, leases: list[Lease]) -> list[dict]:
        peers = [l.public_ip for l in leases if l.node != ctx.node and l.backend_type == self.name]
        return overlay_guard(str(ctx.network), ctx.conf["Port"], peers)

    def teardown(self, nl: rtnl.Netlink, state_dir: str = "") -> None:
        for link in nl.links():
            if link.kind == "vxlan" and link.name.startswith("podnet."):
                nl.delete_link(link.index)


def render(me: Lease, leases: list[Lease]) -> Desired:
    d = Desired()
    for lease in sorted(leases, key=lambda l: l.subnet):
        if lease.node == me.node or lease.subnet == me.subnet:
            continue
        if lease.backend_type == "vxlan" and lease.vtep_mac:
            # neighbour, then FDB, then route: the route manager adds them in this order
            d.neighbours.add((vtep_ip(lease.subnet), lease.vtep_mac))
            d.fdb.add((lease.vtep_mac, lease.public_ip))
            d.routes.add((str(lease.subnet), vtep_ip(lease.subnet), True))
    return d


def ensure_vxlan_device(ctx: NodeContext, name: str) -> rtnl.Link:
    """A VXLAN device with the cluster's VNI and port on the node's underlay address, up:
    created once and kept across agent restarts (so its MAC stays the same), remade only when
    its VNI, port or local address no longer match."""
    nl, vni, port = ctx.nl, ctx.conf["VNI"], ctx.conf["Port"]
    want = {"vni": vni, "local": ctx.public_ip, "port": port}
    link = nl.link(name)
    if link is not None and (link.kind != "vxlan" or nl.vxlan_info(link.index) != want):
        nl.delete_link(link.index)
        link = None
    if link is None:
        nl.add_vxlan(name, vni, ctx.public_ip, port, ctx.underlay.index, mtu=ctx.underlay.mtu - OVERHEAD)
        link = nl.link(name)
    if not link.up:
        nl.set_link(link.index, up=True)
    return nl.link(name)


def only_address(nl: rtnl.Netlink, index: int, cidr: str) -> bool:
    """Make `cidr` the link's one IPv4 address (a VTEP's: others left by an earlier subnet or
    block go, and nothing changes when it is already so); True if anything changed."""
    have = {a.cidr for a in nl.addresses(index, rtnl.AF_INET)}
    for stale in have - {cidr}:
        nl.delete_address(index, stale)
    if cidr not in have:
        nl.add_address(index, cidr)
    return have != {cidr}


def ensure_vtep(ctx: NodeContext, subnet: ipaddress.IPv4Network | None) -> rtnl.Link:
    """The node's VTEP; its address (the subnet's x.y.z.0/32) is set once the subnet is known."""
    nl, name = ctx.nl, device_name(ctx.conf["VNI"])
    link = ensure_vxlan_device(ctx, name)
    if subnet is not None:
        only_address(nl, link.index, f"{vtep_ip(subnet)}/32")
    return nl.link(name)


register(Vxlan())
