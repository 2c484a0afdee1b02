"""ip-masq: pod traffic leaving the pod network takes the node's address (table inet
podnet_agent). Lease backends: traffic from the cluster network to anywhere outside it. Routed
backends: as Calico's natOutgoing, traffic from a pool that says natOutgoing to anywhere
outside every pool."""

from __future__ import annotations

from ...api import keys
from ...ipam.blocks import load_pools
from .. import render
from ..tables import OwnedTable
from . import Controller


class Masquerade(Controller):
    name = "masquerade"

    def __init__(self, agent) -> None:
        super().__init__(agent)
        self.table = OwnedTable("inet", "podnet_agent", agent.log)

    @property
    def watches(self) -> tuple[str, ...]:  # type: ignore[override]
        backend = getattr(self.agent, "backend", None)
        return (keys.IPPOOLS,) if backend is not None and backend.routed else ()

    def sync(self, full: bool) -> None:
        a = self.agent
        if not a.masquerade:
            return
        if a.backend.routed:
            pools = load_pools(a.store)
            sources = [str(p.cidr) for p in pools if p.nat_outgoing]
            self.table.apply(render.masquerade_rules(sources, [str(p.cidr) for p in pools]), check_kernel=full)
        else:
            network = str(a.cfg.network)
            self.table.apply(render.masquerade_rules([network], [network]), check_kernel=full)
