"""A lab's network as plain data, in the spirit of mininet's Topo: L2 segments, the router that
joins them, the nodes (each attached to one segment), and the side services (etcd, the upstream
resolver, the load balancer route). Pure: building it is `podnet.lab.build`'s job.

    pn-<lab>-u     the underlay: one bridge per segment (br0, br1, ...); br0 holds 172.31.0.1,
                   where etcd and the upstream resolver listen, and stands for "outside"
    pn-<lab>-r     with more than one segment: the router, 172.31.<i>.254 on segment i
    pn-<lab>-<n>   a node: eth0 on its segment, 172.31.<segment>.<10 + number>

One segment (the default) is a flat L2 underlay: every node is a neighbour of every other, and
the underlay itself is each node's gateway. With several, nodes on different segments reach
each other only through the router, so routes that point at a peer node directly (host-gw)
cannot work there, and overlays (vxlan) must.
"""

from __future__ import annotations

from dataclasses import dataclass

BASE = "172.31"
SERVICES_IP = f"{BASE}.0.1"          # on segment 0: etcd, the upstream resolver
ROUTER_HOST = 254                    # the router's address on every segment
MAX_SEGMENTS = 99                    # 172.31.100.0/24 is the load balancer pool


@dataclass(frozen=True)
class Segment:
    index: int

    @property
    def name(self) -> str:
        return f"seg{self.index}"

    @property
    def bridge(self) -> str:
        return f"br{self.index}"

    @property
    def cidr(self) -> str:
        return f"{BASE}.{self.index}.0/24"

    def address(self, host: int) -> str:
        return f"{BASE}.{self.index}.{host}"


@dataclass(frozen=True)
class Router:
    """Joins segments: a leg (veth) on each one's bridge, with ROUTER_HOST there; forwards."""
    namespace: str
    segments: tuple[Segment, ...]

    def leg(self, segment: Segment) -> str:
        return f"r{segment.index}"

    def address(self, segment: Segment) -> str:
        return segment.address(ROUTER_HOST)


@dataclass(frozen=True)
class Node:
    name: str
    number: int
    namespace: str
    segment: Segment
    ip: str
    gateway: str

    @property
    def port(self) -> str:
        """Its veth's name on the segment's bridge (in the underlay namespace)."""
        return f"u-{self.name}"[:15]


@dataclass(frozen=True)
class SideService:
    name: str
    segment: Segment
    address: str


@dataclass(frozen=True)
class Topology:
    lab: str
    underlay: str
    segments: tuple[Segment, ...]
    router: Router | None
    services: tuple[SideService, ...]

    def node(self, name: str, number: int) -> Node:
        """Where node NAME (the NUMBER-th) goes: segments take nodes in turn."""
        segment = self.segments[(number - 1) % len(self.segments)]
        gateway = self.router.address(segment) if self.router else SERVICES_IP
        return Node(name, number, f"pn-{self.lab}-{name}", segment, segment.address(10 + number), gateway)

    @property
    def outside(self) -> str:
        """The address the underlay (standing for the world outside the cluster) uses."""
        return SERVICES_IP


def lab_topology(lab: str, subnets: int = 1) -> Topology:
    if not 1 <= subnets <= MAX_SEGMENTS:
        raise ValueError(f"--subnets must be between 1 and {MAX_SEGMENTS}")
    segments = tuple(Segment(i) for i in range(subnets))
    router = Router(f"pn-{lab}-r", segments) if subnets > 1 else None
    services = (SideService("etcd", segments[0], SERVICES_IP), SideService("upstream-dns", segments[0], SERVICES_IP))
    return Topology(lab, f"pn-{lab}-u", segments, router, services)
