"""Routes to the other nodes' subnets, as the configured backend renders them from the leases,
and the backend's guard table. A lease that vanished (ours) is acquired again."""

from __future__ import annotations

from ...api import keys
from .. import leases
from ..tables import OwnedTable
from . import Controller


class Routes(Controller):
    name = "routes"
    watches = (keys.SUBNETS,)

    def __init__(self, agent) -> None:
        super().__init__(agent)
        self.guard = OwnedTable("ip", "podnet_overlay", agent.log)

    def sync(self, full: bool) -> None:
        a = self.agent
        all_leases, _ = leases.all_leases(a.store)
        if not any(lease.node == a.node for lease in all_leases):
            a.log("our lease is gone (expired or deleted): acquiring again")
            a.setup_backend()
            all_leases, _ = leases.all_leases(a.store)
        desired = a.backend.render(a.ctx, a.lease, all_leases)
        changed = a.backend.apply(a.ctx, desired)
        if any(changed.values()):
            a.log(f"reconciled: {changed}")
        self.guard.apply(a.backend.guard(a.ctx, all_leases), check_kernel=full)
