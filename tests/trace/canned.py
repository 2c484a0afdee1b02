"""Canned kernel output for the walk's unit tests: a Kernel whose commands are answered from a
recording (command line -> exit status, stdout, stderr) instead of being run, and the recorder
that makes one from a live lab (as root):

    PODNET_LAB_DIR=... python -m tests.trace.canned OUT.json "SRC DST[:PORT] [PROTO] [ep=IP]" ...

Each recording holds the lab's inventory too (pods, services, nodes, policies, namespace
names), so a test replays a walk exactly as it went, and edits the recording to make the
kernel say something else (an FDB entry gone, a route missing)."""

from __future__ import annotations

import copy
import json
import os
import sys

from podnet.trace import Inventory, Kernel
from podnet.trace.kernel import cmdline, run_command

DATA = os.path.join(os.path.dirname(__file__), "data")
ABSENT = (1, "", "Error: No such file or directory")


class Canned:
    """A recording: `inventory` and `commands` ({command line: [rc, stdout, stderr]})."""

    def __init__(self, doc: dict) -> None:
        self.doc = copy.deepcopy(doc)
        self.commands: dict[str, list] = self.doc["commands"]
        self.unknown: list[str] = []

    @classmethod
    def load(cls, name: str) -> Canned:
        with open(os.path.join(DATA, name)) as f:
            return cls(json.load(f))

    def inventory(self) -> Inventory:
        return Inventory.from_json(copy.deepcopy(self.doc["inventory"]))

    def run(self, argv: list[str]) -> tuple[int, str, str]:
        cmd = cmdline(argv)
        if cmd not in self.commands:
            self.unknown.append(cmd)
            return ABSENT
        rc, out, err = self.commands[cmd]
        return rc, out, err

    def kernel(self) -> Kernel:
        return Kernel(self.run)

    # -- edits -------------------------------------------------------------------------------
    def find(self, *parts: str) -> str:
        """The one recorded command line containing every part."""
        hits = [c for c in self.commands if all(p in c for p in parts)]
        assert len(hits) == 1, f"{parts}: {hits}"
        return hits[0]

    def json_of(self, cmd: str):
        return json.loads(self.commands[cmd][1])

    def set_json(self, cmd: str, data) -> None:
        self.commands[cmd] = [0, json.dumps(data), ""]

    def fail(self, cmd: str, message: str, rc: int = 2) -> None:
        self.commands[cmd] = [rc, "", message]


def record(out_path: str, traces: list[str]) -> None:
    from podnet.lab.state import LabState
    from podnet.lab.topology import store_context
    from podnet.store import open_store
    from podnet.trace import Walk

    state = LabState.load()
    with store_context(state):
        store = open_store(state.store_url)
        try:
            inv = Inventory.load(store, {n.name: n.netns for n in state.nodes}, {state.underlay: "underlay"})
        finally:
            store.close()
    commands: dict[str, list] = {}

    def recording(argv):
        rc, out, err = run_command(argv)
        commands[cmdline(argv)] = [rc, out, err]
        return rc, out, err

    for spec in traces:
        words = spec.split()
        endpoint = next((w[3:] for w in words if w.startswith("ep=")), None)
        words = [w for w in words if not w.startswith("ep=")]
        src, dst = inv.resolve(words[0], source=True), inv.resolve(words[1])
        proto = words[2] if len(words) > 2 else "tcp" if dst.port else "icmp"
        t = Walk(Kernel(recording), inv).run(src, dst, proto, endpoint=endpoint)
        print(f"{spec}: {t.verdict} in {len(t.hops)} hops", file=sys.stderr)
    with open(out_path, "w") as f:
        json.dump({"inventory": inv.to_json(), "commands": dict(sorted(commands.items()))}, f, indent=0,
                  sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    record(sys.argv[1], sys.argv[2:])
