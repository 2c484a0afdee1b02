"""A backend that lives outside podnet, loaded through $PODNET_BACKENDS: host-gw's routes under
another name, plus a long-running task that proves the agent runs it (it writes a heartbeat
file in the node's state directory)."""

from __future__ import annotations

import os
import threading
import time

from podnet.agent.backends import Backend, NodeContext, register
from podnet.agent.backends.host_gw import render as host_gw_render
from podnet.api.errors import ValidationError


class StaticGw(Backend):
    name = "static-gw"
    one_segment = True
    summary = "a test backend: host-gw's routes, and a task"

    def parse(self, fields: dict, source: str) -> dict:
        every = fields.get("Every", 0.2)
        if not isinstance(every, (int, float)) or isinstance(every, bool) or every <= 0:
            raise ValidationError("Backend.Every", f"must be a positive number of seconds, not {every!r}", source)
        return {"Every": every}

    def render(self, ctx: NodeContext, me, leases):
        return host_gw_render(me, leases)

    def task(self, ctx: NodeContext, stop: threading.Event) -> None:
        path = os.path.join(ctx.state_dir, "static-gw.task")
        while not stop.is_set():
            with open(path, "w") as f:
                f.write(f"{time.time()}\n")
            stop.wait(ctx.conf["Every"])


register(StaticGw())
