"""What a trace is: the packet, the hops it takes, the evidence each hop was read from, and the
verdict. Plain data with one stable, versioned JSON form (`Trace.to_json()`, version 1):

    {"version": 1, "src": {...}, "dst": {...}, "protocol": "tcp",
     "verdict": "DELIVERED", "reason": "...", "at": 7, "responsible": [{"kind": ..., ...}],
     "hops": [{"index", "node", "netns", "place", "stage", "in", "out", "decision", "highlight",
               "result", "hook", "packet", "outer", "candidates", "evidence": [{"source", "summary", "data"}],
               "probe"}],
     "notes": [...], "probe": {...}}          # "probe" only with --probe

A hop is one decision in one network namespace. `packet` is the packet as it leaves the hop
(after a NAT at that hop), `hook` the netfilter hook a packet of the flow passes in that
namespace at that step: what `--probe` matches the kernel's trace events against, per
namespace, and then records in `probe` ({"status": "confirmed" | "contradicted" |
"unobserved", ...}); a walk alone leaves it null.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

VERSION = 1

DELIVERED = "DELIVERED"          # reached the destination, something listens there (or not asked: no port)
FORWARDED = "FORWARDED"          # left the namespaces podnet knows (e.g. a real uplink): not followed further
REFUSED = "REFUSED"              # delivered, but nothing listens on the port: the kernel refuses (RST / port unreachable)
DROPPED = "DROPPED"              # a policy, a reject or a guard drops it
NO_ROUTE = "NO_ROUTE"            # a route lookup fails or gives unreachable/blackhole/prohibit
NO_NEIGHBOUR = "NO_NEIGHBOUR"    # a neighbour or FDB entry the device needs is missing

EXIT_CODES = {DELIVERED: 0, FORWARDED: 0, REFUSED: 1, DROPPED: 1, NO_ROUTE: 1, NO_NEIGHBOUR: 1}

# stages, in the order they usually come
STAGES = ("route", "dnat", "policy", "masquerade", "neighbour", "bridge", "encapsulate", "decapsulate", "deliver",
          "leave")


@dataclass
class Packet:
    src: str
    dst: str
    proto: str                   # tcp, udp, icmp
    sport: int | None = None
    dport: int | None = None

    def to_json(self) -> dict:
        return {"src": self.src, "dst": self.dst, "proto": self.proto, "sport": self.sport, "dport": self.dport}

    def copy(self, **changes) -> Packet:
        return Packet(**{**self.to_json(), **changes})

    def flow(self) -> str:
        port = f":{self.dport}" if self.dport else ""
        return f"{self.src} -> {self.dst}{port} {self.proto}"


@dataclass
class Evidence:
    source: str                  # where it was read: a command line, or "store: NetworkPolicy ns/name"
    summary: str                 # one line for people
    data: Any = None             # the kernel's (or the store's) object, as read

    def to_json(self) -> dict:
        return {"source": self.source, "summary": self.summary, "data": self.data}


@dataclass
class Hop:
    node: str | None             # the node the namespace belongs to (a pod's node), None outside the nodes
    netns: str
    place: str                   # "pod default/a", "node node1", "underlay", ...
    stage: str
    in_: str | None
    out: str | None
    decision: str
    packet: Packet
    result: str = "pass"         # pass, drop, no-route, no-neighbour, deliver, refused, leave
    highlight: str = ""          # the decisive part of `decision` (shown bold on a terminal)
    hook: str | None = None      # prerouting, input, forward, output, postrouting; None: L2 only
    outer: Packet | None = None  # the outer header, when the packet travels encapsulated
    candidates: list[str] = field(default_factory=list)   # DNAT: every endpoint it may go to
    evidence: list[Evidence] = field(default_factory=list)
    index: int = 0
    probe: dict | None = None    # filled by --probe

    def to_json(self) -> dict:
        return {"index": self.index, "node": self.node, "netns": self.netns, "place": self.place, "stage": self.stage,
                "in": self.in_, "out": self.out, "decision": self.decision, "highlight": self.highlight,
                "result": self.result, "hook": self.hook, "packet": self.packet.to_json(),
                "outer": self.outer.to_json() if self.outer else None, "candidates": list(self.candidates),
                "evidence": [e.to_json() for e in self.evidence], "probe": self.probe}


@dataclass
class Endpoint:
    """One end of a trace as the user named it, resolved."""
    spec: str                    # as given: default/a, svc/default/web:80, node2, 10.0.0.1
    kind: str                    # pod, service, node, ip
    name: str                    # default/a, default/web, node2, the address
    ip: str
    port: int | None = None
    node: str | None = None      # a pod's node, or the node itself
    netns: str | None = None     # where a source starts (pods and nodes)

    def to_json(self) -> dict:
        return {"spec": self.spec, "kind": self.kind, "name": self.name, "ip": self.ip, "port": self.port,
                "node": self.node, "netns": self.netns}


@dataclass
class Trace:
    src: Endpoint
    dst: Endpoint
    protocol: str
    hops: list[Hop] = field(default_factory=list)
    verdict: str = ""
    reason: str = ""
    at: int | None = None        # index of the hop that decided the verdict
    responsible: list[dict] = field(default_factory=list)  # objects behind a drop: NetworkPolicy, Service, ...
    notes: list[str] = field(default_factory=list)
    probe: dict | None = None    # --probe: {"confirmed", "contradicted", "unobserved": counts, "sent": ...}

    def add(self, hop: Hop) -> Hop:
        hop.index = len(self.hops) + 1
        self.hops.append(hop)
        return hop

    def finish(self, verdict: str, reason: str, hop: Hop | None = None, responsible: list[dict] | None = None) -> None:
        self.verdict, self.reason = verdict, reason
        self.at = hop.index if hop is not None else (self.hops[-1].index if self.hops else None)
        self.responsible = responsible or []

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.verdict, 2)

    def to_json(self) -> dict:
        return {"version": VERSION, "src": self.src.to_json(), "dst": self.dst.to_json(), "protocol": self.protocol,
                "verdict": self.verdict, "reason": self.reason, "at": self.at, "responsible": self.responsible,
                "hops": [h.to_json() for h in self.hops], "notes": list(self.notes),
                **({"probe": self.probe} if self.probe is not None else {})}
