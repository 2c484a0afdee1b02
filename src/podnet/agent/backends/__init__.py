"""Backends: how a node reaches the other nodes' pod subnets. One module per backend, in the
spirit of flannel's pkg/backend: each registers itself here by name, parses its own part of
the cluster config (errors name the field), sets up its devices, says its MTU overhead,
renders the routes, neighbours and FDB entries it wants from everyone's leases (pure), applies
them, tears down, and may own a long-running task (a BGP speaker, a forwarder).

Built in: host-gw and vxlan (flannel's designs: a subnet lease per node, pods on a bridge), and
bgp (Calico's: no lease, a /32 route per pod from IP pool blocks, BIRD spreading the blocks;
such a backend says `routed = True` and reconciles from the store itself). More come from modules named in $PODNET_BACKENDS (comma-
separated, imported at start: each calls `register`), so a backend can live outside podnet.
"""

from __future__ import annotations

import importlib
import ipaddress
import os
import threading
from dataclasses import dataclass, field

from ...api import keys
from ...api.errors import ValidationError
from ...kernel import rtnl
from ..leases import Lease
from ..render import Desired, no_overlay_guard
from . import routes


@dataclass
class NodeContext:
    """What a backend works with on its node."""
    node: str
    nl: rtnl.Netlink
    underlay: rtnl.Link
    public_ip: str
    network: ipaddress.IPv4Network
    conf: dict                      # this backend's own fields of the cluster config, as its parse() returned them
    state_dir: str
    devices: dict = field(default_factory=dict)  # what setup() made, for the other methods
    store: object = None       # the cluster's Store (routed backends read their world from it)
    allocator: object = None   # podnet.ipam.blocks.BlockAllocator for this node (routed backends)
    public_cidr: str = ""      # the underlay address with its prefix length (which segment the node is on)
    log: object = print


class Backend:
    """The base: a backend overrides what it needs. `render` is pure (leases in, Desired out)."""

    name = ""
    overhead = 0            # bytes of encapsulation per packet: pod MTU = underlay MTU - overhead
    one_segment = False     # True: every node must be on one L2 segment (routes point at peers directly)
    summary = ""            # one line for --help
    routed = False          # True: no subnet lease; pods get /32s from IP pools (podnet.ipam.blocks)
    leased = True           # False: no subnet lease; the backend gives pods their addresses (cni_delegate) and
                            # keeps its own state (reconcile): routed backends, and the mesh (its own ring IPAM)
    watches: tuple[str, ...] = (keys.SUBNETS,)  # store prefixes whose changes make the routes controller sync

    def parse(self, fields: dict, source: str) -> dict:
        """This backend's fields of the Backend section, normalized; ValidationError names a bad one."""
        if fields:
            raise ValidationError(f"Backend.{sorted(fields)[0]}", f"unknown field for backend {self.name}", source)
        return {}

    def setup(self, ctx: NodeContext) -> dict:
        """Make devices before the lease is taken; the BackendData that peers see in the lease."""
        return {}

    def leased(self, ctx: NodeContext, lease: Lease) -> None:
        """The node's subnet is known (a device may need an address in it)."""

    def render(self, ctx: NodeContext, me: Lease, leases: list[Lease]) -> Desired:
        raise NotImplementedError

    def mtu(self, ctx: NodeContext) -> int:
        """Pods' MTU on this node."""
        return ctx.underlay.mtu - self.overhead

    def node_status(self, ctx: NodeContext) -> dict:
        """What peers need to know of this node, published in its Node object (status.podnet)."""
        return {}

    def relevant(self, ctx: NodeContext, event) -> bool:
        """Whether a store event under `watches` can change what this node renders (False lets
        the routes controller skip it, e.g. a peer's heartbeat)."""
        return True

    def reconcile(self, ctx: NodeContext, full: bool) -> dict:
        """Backends without a lease: make the kernel (and any daemon) match their world; counts of changes."""
        raise NotImplementedError

    def cni_delegate(self, ctx: NodeContext, mtu: int, cni_path: str):
        """Backends without a lease: what runs the pods' CNI requests (an object with
        `run(env, stdin) -> (code, stdout)` and `bridge_name`, '' when pods are routed)."""
        raise NotImplementedError

    def apply(self, ctx: NodeContext, desired: Desired) -> dict:
        """Make the kernel match `desired` (only what podnet owns); counts of what changed."""
        return routes.apply(ctx.nl, desired, ctx.underlay, ctx.devices.get("vtep"))

    def guard(self, ctx: NodeContext, leases: list[Lease]) -> list[dict]:
        """nft commands for the backend's guard table (e.g. who may send to its overlay port)."""
        return no_overlay_guard()

    def teardown(self, nl: rtnl.Netlink, state_dir: str = "") -> None:
        """Remove this backend's devices (another backend takes over, or it is left over)."""

    def lab_fields(self, first_node_ip: str, nodes: list[str]) -> dict:
        """The Backend fields `podnet lab up` sets for a lab of `nodes` (e.g. a mesh's first peer)."""
        return {}

    def task(self, ctx: NodeContext, stop: threading.Event) -> None:
        """A long-running task, run by the agent in its own thread until `stop` is set (and
        restarted if it raises). Backends without one leave this alone."""

    @property
    def runs_task(self) -> bool:
        return type(self).task is not Backend.task


_REGISTRY: dict[str, Backend] = {}


def register(backend: Backend) -> Backend:
    if not backend.name:
        raise ValueError("a backend needs a name")
    _REGISTRY[backend.name] = backend
    return backend


def get(name: str) -> Backend:
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValidationError("Backend.Type", f"{name!r} is not one of {', '.join(names())}") from None


def names() -> list[str]:
    _load()
    return sorted(_REGISTRY)


def parsers() -> dict:
    """Backend name -> its parser, for podnet.api.cluster.parse."""
    _load()
    return {name: b.parse for name, b in _REGISTRY.items()}


_loaded = False


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    from . import bgp, host_gw, mesh, udp, vxlan  # noqa: F401 - they register themselves

    for module in filter(None, (m.strip() for m in os.environ.get("PODNET_BACKENDS", "").split(","))):
        importlib.import_module(module)
