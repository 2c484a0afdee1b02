"""udp: flannel's UDP backend. Each node has a TUN device `podnet0` (flannel's `flannel0`)
holding its lease's network address with the whole cluster prefix (10.244.1.0/16), so the
kernel routes the cluster network into it; its own /24 stays on the pods' bridge (more
specific). A forwarder process (forwarder.c, as flannel's proxy.c) reads each packet from the
TUN device and sends it, whole, as the payload of one UDP datagram (port 8285) to the node whose
subnet holds the destination; the receiving forwarder writes it into its TUN device. MTU =
underlay MTU - 28 (outer IPv4 + UDP). Userspace on every packet: flannel calls it a debugging
backend, and it is the clearest picture of what an overlay does. The forwarder batches with the
kernel's offloads (TSO from the TUN device, UDP GSO and GRO on its socket), so a system call
moves dozens of packets; each datagram on the wire is still exactly one inner packet.

    module      job
    (this)      the Backend: config, TUN device, the forwarder's route table from the leases
    forwarder   the forwarder process: started and fed by the agent (its task loop restarts it)
    native      building forwarder.c with the system's C compiler

The forwarder lives and dies with the agent (its table comes on its stdin), as flannel's proxy
lives in flanneld: while the agent is down, this backend carries nothing. The TUN device is
persistent, so its address and route stay and a new forwarder takes it over.

Backend section of the cluster config: {"Type": "udp", "Port": 8285}.
"""

from __future__ import annotations

import fcntl
import ipaddress
import struct
import threading

from ....api.errors import ValidationError
from ....kernel import rtnl
from ...leases import Lease
from ...render import Desired, overlay_guard
from .. import Backend, NodeContext, register
from .forwarder import Forwarder

DEVICE = "podnet0"
OVERHEAD = 28  # outer IPv4 + UDP headers
TUNSETIFF, TUNSETPERSIST = 0x400454CA, 0x400454CB
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
TXQLEN = 5000  # packets the kernel queues for the forwarder: TUN's default 500 overflows in bursts


def parse(fields: dict, source: str) -> dict:
    unknown = sorted(set(fields) - {"Port"})
    if unknown:
        raise ValidationError(f"Backend.{unknown[0]}", "unknown field for backend udp (expected Port)", source)
    port = fields.get("Port", 8285)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ValidationError("Backend.Port", f"must be a UDP port number, not {port!r}", source)
    return {"Port": port}


def render(me: Lease, leases: list[Lease]) -> Desired:
    """The forwarder's table as Desired routes (subnet, the node's underlay address, False):
    every other node's subnet goes to that node. Not kernel routes: the kernel sends the whole
    cluster network into the TUN device, and the forwarder picks the node."""
    d = Desired()
    for lease in leases:
        if lease.node != me.node and lease.subnet != me.subnet:
            d.routes.add((str(lease.subnet), lease.public_ip, False))
    return d


def table(desired: Desired) -> dict[str, str]:
    return {dst: via for dst, via, _ in desired.routes}


def ensure_tun(nl: rtnl.Netlink, name: str, mtu: int) -> rtnl.Link:
    """A persistent TUN device `name` (made here when missing), with `mtu`, up. Persistent:
    it outlives the forwarder that has it open, so a restarted forwarder finds it as it was."""
    link = nl.link(name)
    if link is not None and link.kind != "tun":
        nl.delete_link(link.index)
        link = None
    if link is None:
        try:
            fd = open("/dev/net/tun", "r+b", buffering=0)
        except OSError as e:
            raise OSError(e.errno, f"the udp backend needs TUN devices (/dev/net/tun: {e.strerror})") from None
        with fd:
            fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
            fcntl.ioctl(fd, TUNSETPERSIST, 1)
        link = nl.link(name)
    if link.mtu != mtu:
        nl.set_link(link.index, mtu=mtu)
    if not link.up:
        nl.set_link(link.index, up=True, txqlen=TXQLEN)
    return nl.link(name)


def tun_address(subnet: ipaddress.IPv4Network, network: ipaddress.IPv4Network) -> str:
    """The TUN device's address: the lease's network address with the cluster's prefix."""
    return f"{subnet.network_address}/{network.prefixlen}"


class Udp(Backend):
    name = "udp"
    overhead = OVERHEAD
    summary = "flannel's UDP backend: a TUN device and a userspace forwarder, UDP 8285 (any underlay)"

    def parse(self, fields: dict, source: str) -> dict:
        return parse(fields, source)

    def setup(self, ctx: NodeContext) -> dict:
        ctx.devices["tun"] = ensure_tun(ctx.nl, DEVICE, self.mtu(ctx))
        ctx.devices.setdefault("forwarder", Forwarder(ctx.state_dir, ctx.log))
        return {}

    def leased(self, ctx: NodeContext, lease: Lease) -> None:
        from ..vxlan import only_address

        only_address(ctx.nl, ctx.devices["tun"].index, tun_address(lease.subnet, ctx.network))
        ctx.devices["tun_ip"] = str(lease.subnet.network_address)

    def render(self, ctx: NodeContext, me: Lease, leases: list[Lease]) -> Desired:
        return render(me, leases)

    def apply(self, ctx: NodeContext, desired: Desired) -> dict:
        """The forwarder's table: what changed is sent to it (a lease added or gone: one line)."""
        added, removed = ctx.devices["forwarder"].set_table(table(desired))
        return {"forwarder_routes_added": added, "forwarder_routes_removed": removed}

    def guard(self, ctx: NodeContext, leases: list[Lease]) -> list[dict]:
        peers = [l.public_ip for l in leases if l.node != ctx.node and l.backend_type == self.name]
        return overlay_guard(str(ctx.network), ctx.conf["Port"], peers)

    def node_status(self, ctx: NodeContext) -> dict:
        fwd: Forwarder | None = ctx.devices.get("forwarder")
        return {"udp": {"device": DEVICE, "port": ctx.conf["Port"],
                        "forwarderRestarts": fwd.restarts if fwd else 0, "routes": len(fwd.want) if fwd else 0}}

    def task(self, ctx: NodeContext, stop: threading.Event) -> None:
        fwd: Forwarder = ctx.devices["forwarder"]
        while not ctx.devices.get("tun_ip") and not stop.is_set():  # the lease comes first
            stop.wait(0.1)
        if stop.is_set():
            return
        fwd.run([DEVICE, ctx.public_ip, str(ctx.conf["Port"]), str(ctx.network)], stop)

    def teardown(self, nl: rtnl.Netlink, state_dir: str = "") -> None:
        link = nl.link(DEVICE)
        if link is not None and link.kind == "tun":
            nl.delete_link(link.index)


register(Udp())
