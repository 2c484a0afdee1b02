"""NetworkPolicy for the node's pods: table ip podnet_policy, rendered from the policy world
and replaced in one transaction when it changes; policy-status.json records the revision it
reflects (`podnet probe` and the tests wait on it)."""

from __future__ import annotations

from ...policy import render as policy_render
from ...policy import world as policy_world
from .. import survive
from ..tables import OwnedTable
from . import Controller


class Policy(Controller):
    name = "policy"
    watches = policy_world.WATCHED  # (node addresses change rarely: the periodic pass picks them up)

    def __init__(self, agent) -> None:
        super().__init__(agent)
        self.table = OwnedTable("ip", policy_render.TABLE, agent.log)
        self.count = 0

    def sync(self, full: bool) -> None:
        a = self.agent
        world, _ = policy_world.load_world(a.store)
        cmds, skipped = survive.policy_commands(world, a.node)
        a.report_skipped("policy", skipped)
        self.count = len(world.policies)
        if self.table.apply(cmds, check_kernel=full):
            local = sum(1 for p in world.pods if p.node == a.node)
            a.log(f"policy: table replaced ({len(world.policies)} policies, {local} local pods, {len(cmds)} commands)")
