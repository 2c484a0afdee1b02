"""The agent's renders, made to survive malformed stored objects.

Pure: stored objects in, what to program out, plus the names of the objects left out. A
render of everything is tried first (the usual case costs nothing extra); only when it fails
are the objects tried one by one to find the ones it chokes on, which are then skipped, so
one bad object never stops every good one from being served. (The service proxy works per
service, podnet.proxy.maps.checked_contribution, and needs no such search.)
"""

from __future__ import annotations

from ..api import stored
from ..policy import render as policy_render
from ..policy import world as policy_world
from ..policy.evaluate import World


def policy_commands(world: World, node: str) -> tuple[list[dict], list[str]]:
    """The node's policy table, and what was skipped (the world's own skips included)."""
    try:
        return policy_render.render(world, node), list(world.skipped)
    except Exception:  # noqa: BLE001 - enforce the others; name the policies it choked on
        good, culprits = stored.partition(
            world.policies, lambda pol: policy_render.render(policy_world.replace_policies(world, [pol]), node))
        cmds = policy_render.render(policy_world.replace_policies(world, good), node)
        return cmds, world.skipped + [f"networkpolicy {stored.ident(p)}" for p in culprits]
