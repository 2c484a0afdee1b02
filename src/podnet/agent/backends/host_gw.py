"""host-gw: a route to every other node's pod subnet via that node's underlay address. No
encapsulation, so every node must be on one L2 segment (the next hop must be a neighbour)."""

from __future__ import annotations

from ..leases import Lease
from ..render import Desired
from . import Backend, NodeContext, register


class HostGw(Backend):
    name = "host-gw"
    one_segment = True
    summary = "a route per remote subnet via the remote node (one L2 segment)"

    def render(self, ctx: NodeContext, me: Lease, leases: list[Lease]) -> Desired:
        return render(me, leases)


def render(me: Lease, leases: list[Lease]) -> Desired:
    d = Desired()
    for lease in sorted(leases, key=lambda l: l.subnet):
        if lease.node != me.node and lease.subnet != me.subnet:
            d.routes.add((str(lease.subnet), lease.public_ip, False))
    return d


register(HostGw())
