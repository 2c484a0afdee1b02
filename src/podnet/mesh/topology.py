"""Who is in the mesh and how to reach them, from what every peer says of itself.

Each peer gossips one entry about itself: its name, an incarnation (the time it started: a
restarted peer is a newer incarnation, whose versions start again), a version bumped at every
change, its address, and the peers it has an established connection with. Entries merge by the
higher (incarnation, version). A connection
counts only when both ends report it, as in weaveworks/mesh; routes are shortest paths over
those (ties by name), so two peers that cannot reach each other directly go through a third.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class PeerEntry:
    name: str
    incarnation: int                 # when this run of the peer started (ns): its uid
    version: int
    address: str                     # underlay address (the sleeve's UDP goes there)
    port: int
    connections: list[str] = field(default_factory=list)  # names of peers with an established connection

    def to_dict(self) -> dict:
        return {"name": self.name, "incarnation": self.incarnation, "version": self.version, "address": self.address,
                "port": self.port, "connections": sorted(self.connections)}

    @classmethod
    def from_dict(cls, d: dict) -> "PeerEntry":
        return cls(str(d["name"]), int(d["incarnation"]), int(d["version"]), str(d["address"]), int(d["port"]),
                   [str(c) for c in d.get("connections", [])])


class Topology:
    """Changed only through merge, set_my_connections and remove, which drop the cached routes:
    the sleeve asks for a next hop on every frame, and the BFS runs once per change instead."""

    def __init__(self, me: PeerEntry) -> None:
        self.me = me.name
        self.peers: dict[str, PeerEntry] = {me.name: me}
        self._routes: dict[str, str] | None = None

    def merge(self, entries: list[PeerEntry]) -> bool:
        """Take newer entries of others (never of me: I am the only source of my own); True if
        anything changed."""
        changed = False
        for e in entries:
            if e.name == self.me:
                continue
            have = self.peers.get(e.name)
            if have is None or (e.incarnation, e.version) > (have.incarnation, have.version):
                self.peers[e.name] = e
                changed = True
        if changed:
            self._routes = None
        return changed

    def set_my_connections(self, names: set[str]) -> bool:
        me = self.peers[self.me]
        if set(me.connections) == names:
            return False
        me.connections = sorted(names)
        me.version += 1
        self._routes = None
        return True

    def edges(self) -> dict[str, set[str]]:
        """Connections both ends report."""
        out: dict[str, set[str]] = {n: set() for n in self.peers}
        for name, e in self.peers.items():
            for other in e.connections:
                peer = self.peers.get(other)
                if peer is not None and name in peer.connections:
                    out[name].add(other)
        return out

    def routes(self) -> dict[str, str]:
        """Destination -> next hop from me, for every reachable peer (BFS, ties by name)."""
        if self._routes is None:
            self._routes = self._shortest_paths()
        return self._routes

    def _shortest_paths(self) -> dict[str, str]:
        edges = self.edges()
        first: dict[str, str] = {}
        seen = {self.me}
        queue = deque()
        for n in sorted(edges.get(self.me, ())):
            seen.add(n)
            first[n] = n
            queue.append(n)
        while queue:
            at = queue.popleft()
            for n in sorted(edges.get(at, ())):
                if n not in seen:
                    seen.add(n)
                    first[n] = first[at]
                    queue.append(n)
        return first

    def unreachable(self) -> list[str]:
        routes = self.routes()
        return sorted(n for n in self.peers if n != self.me and n not in routes)

    def remove(self, name: str) -> None:
        if name != self.me:
            self.peers.pop(name, None)
            self._routes = None


def uid(entry: PeerEntry) -> str:
    return f"{entry.incarnation:x}"
