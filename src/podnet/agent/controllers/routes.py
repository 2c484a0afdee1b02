"""Routes to the other nodes' pods, and the backend's guard table. Lease backends render them
from the subnet leases (a lease that vanished, ours, is acquired again); backends without a
lease reconcile their own world (bgp: blocks, pools and peers in the store; mesh: its router)."""

from __future__ import annotations

from ...api import keys
from .. import leases
from ..tables import OwnedTable
from . import Controller


class Routes(Controller):
    name = "routes"

    @property
    def watches(self) -> tuple[str, ...]:  # type: ignore[override]
        backend = getattr(self.agent, "backend", None)
        return backend.watches if backend is not None else (keys.SUBNETS,)

    def __init__(self, agent) -> None:
        super().__init__(agent)
        self.guard = OwnedTable("ip", "podnet_overlay", agent.log)

    def concerns(self, event) -> bool:
        a = self.agent
        return super().concerns(event) and (getattr(a, "ctx", None) is None or a.backend.relevant(a.ctx, event))

    def sync(self, full: bool) -> None:
        a = self.agent
        if not a.backend.leased:
            changed = a.backend.reconcile(a.ctx, full)
            if any(changed.values()):
                a.log(f"reconciled: {changed}")
            self.guard.apply(a.backend.guard(a.ctx, []), check_kernel=full)
            return
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
