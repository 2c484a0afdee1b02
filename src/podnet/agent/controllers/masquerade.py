"""ip-masq: pod traffic leaving the cluster network takes the node's address (table inet podnet_agent)."""

from __future__ import annotations

from .. import render
from ..tables import OwnedTable
from . import Controller


class Masquerade(Controller):
    name = "masquerade"

    def __init__(self, agent) -> None:
        super().__init__(agent)
        self.table = OwnedTable("inet", "podnet_agent", agent.log)

    def sync(self, full: bool) -> None:
        if self.agent.masquerade:
            self.table.apply(render.masquerade_rules(str(self.agent.cfg.network)), check_kernel=full)
