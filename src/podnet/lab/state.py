"""Where a lab keeps its state, and how it is named."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

DEFAULT_DIR = "/var/lib/podnet/lab"


def lab_dir() -> str:
    return os.environ.get("PODNET_LAB_DIR", DEFAULT_DIR)


@dataclass
class NodeState:
    name: str
    netns: str
    ip: str
    agent_pid: int = 0
    kubelet_pid: int = 0
    number: int = 0


@dataclass
class LabState:
    name: str
    directory: str
    backend: str
    store_kind: str
    store_url: str
    underlay: str
    nodes: list[NodeState] = field(default_factory=list)
    etcd_pid: int = 0
    manager_pid: int = 0
    subnets: int = 1

    @property
    def topology(self):
        from .topo import lab_topology

        return lab_topology(self.name, self.subnets)

    @property
    def path(self) -> str:
        return os.path.join(self.directory, "lab.json")

    def save(self) -> None:
        os.makedirs(self.directory, exist_ok=True)
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(asdict(self), f, indent=2)
        os.replace(tmp, self.path)

    @classmethod
    def load(cls, directory: str | None = None) -> "LabState":
        directory = directory or lab_dir()
        path = os.path.join(directory, "lab.json")
        try:
            with open(path) as f:
                raw = json.load(f)
        except FileNotFoundError:
            raise LabError(f"no lab is up (nothing at {path}): run `podnet lab up`") from None
        raw["nodes"] = [NodeState(**n) for n in raw.get("nodes", [])]
        return cls(**raw)

    def node(self, name: str) -> NodeState:
        for n in self.nodes:
            if n.name == name:
                return n
        raise LabError(f"no node named {name!r} in lab {self.name!r} (nodes: {', '.join(n.name for n in self.nodes)})")

    def node_dir(self, node: str) -> str:
        return os.path.join(self.directory, "nodes", node)


class LabError(RuntimeError):
    pass


def ns_prefix(lab: str) -> str:
    return f"pn-{lab}-"
