"""bgp: the routed pod network the Calico way. No bridge and no subnet lease: a pod gets a /32
from an IP pool block its node owns (podnet.ipam.blocks, via podnet.agent.routed_cni and the
`routed` plugin), and the node routes it to the pod's veth. Nodes tell each other which blocks
they own over BGP: a real BIRD 2 per node (full mesh, or route reflectors), whose learned
routes land in the kernel as `proto bird`. Traffic to peers on another underlay segment goes
through VXLAN when the pool says so (vxlanMode CrossSubnet, the default pool's; or Always).

    module      job
    world       the routed state of the cluster, from the store
    config      bird.conf from the world (pure)
    tunnels     the VXLAN neighbours, FDB entries and routes from the world (pure)
    bird        the BIRD process: check, install, configure, supervise

Backend section of the cluster config: {"Type": "bgp", "VNI": 4096, "Port": 4789} (Calico's
VXLAN defaults). The AS number, mesh and route reflectors come from the BGPConfiguration;
pools from IPPools (a default one is created from the cluster network when there is none).
"""

from __future__ import annotations

import ipaddress
import json

from ....api import keys
from ....api.ippool import default_pool
from ....ipam.blocks import IPAMError, load_pools
from ....kernel import features, rtnl
from ...render import overlay_guard
from .. import Backend, NodeContext, register, routes
from ..vxlan import ensure_vxlan_device, only_address, parse_vni_port
from . import config, tunnels, world
from .bird import Bird, BirdError, binaries

VTEP = "vxlan.podnet"
OVERHEAD = 50


def tunnel_handle(node: str) -> str:
    return f"vxlan-tunnel-addr-{node}"


class Bgp(Backend):
    name = "bgp"
    routed = True
    leased = False
    overhead = OVERHEAD
    summary = "Calico-style: BIRD on every node, a /32 route per pod, IP pools and blocks, VXLAN across segments"
    watches = (keys.NODES, keys.IPPOOLS, keys.IPAM_AFFINITIES, keys.IPAM_BORROWED, keys.BGP_CONFIGURATIONS)

    def parse(self, fields: dict, source: str) -> dict:
        return parse_vni_port(fields, source, "bgp (expected VNI, Port; the AS number and peers come from the "
                                              "BGPConfiguration)", 4096, 4789)

    def relevant(self, ctx: NodeContext, event) -> bool:
        """A Node put matters only when what the world takes from it changed (its peer address,
        VTEP, labels): peers' heartbeats, every few seconds from every node, then cost one JSON
        decode instead of a read of the whole cluster."""
        if not event.key.startswith(keys.NODES):
            return True
        seen = ctx.devices.setdefault("node_views", {})
        name = event.key[len(keys.NODES):]
        if event.type != "put":
            seen.pop(name, None)
            return True
        view = world.node_view(event.value)
        if view is not None and seen.get(name) == view:
            return False
        seen[name] = view
        return True

    # -- setup ----------------------------------------------------------------------------------
    def setup(self, ctx: NodeContext) -> dict:
        from ...host import HostError

        try:
            binaries()
        except BirdError as e:
            raise HostError(str(e)) from None
        store = ctx.store
        if not store.list(keys.IPPOOLS)[0]:  # as calico-node does on a fresh cluster
            pool = default_pool(str(ctx.network))
            if store.create(f"{keys.IPPOOLS}{pool['metadata']['name']}", json.dumps(pool)):
                ctx.log(f"bgp: created IPPool {pool['metadata']['name']} ({pool['spec']['cidr']}, blockSize "
                        f"{pool['spec']['blockSize']}, vxlanMode {pool['spec']['vxlanMode']})")
        pools = load_pools(store)
        ctx.devices["mtu"] = ctx.underlay.mtu - (OVERHEAD if any(p.vxlan_mode != "Never" or p.ipip_mode != "Never"
                                                                 for p in pools) else 0)
        ipip = [p.name for p in pools if p.ipip_mode != "Never"]
        if ipip:
            problem = features.link_kind_problem("ipip")
            if problem:
                ctx.log(f"bgp: IPPool {', '.join(ipip)} asks for ipipMode, but this kernel cannot create an ipip device "
                        f"({problem}): their routes across segments are not programmed; use vxlanMode instead")
        ctx.devices["bird"] = Bird(ctx.state_dir, ctx.log)
        ctx.devices["vtep"] = ensure_vxlan_device(ctx, VTEP)
        ctx.devices["vtep_ip"] = ""
        self.ensure_tunnel_address(ctx)
        return {}

    def mtu(self, ctx: NodeContext) -> int:
        return ctx.devices.get("mtu", ctx.underlay.mtu - OVERHEAD)

    def ensure_tunnel_address(self, ctx: NodeContext) -> None:
        """The VTEP's address, from one of the node's blocks (as Calico's tunnel address)."""
        if ctx.devices.get("vtep_ip"):
            return
        try:
            ip = ctx.allocator.assign(tunnel_handle(ctx.node), f"node/{ctx.node}", use="Tunnel")
        except IPAMError as e:
            ctx.log(f"bgp: no VXLAN tunnel address yet: {e}")
            return
        only_address(ctx.nl, ctx.devices["vtep"].index, f"{ip}/32")
        ctx.devices["vtep_ip"] = ip

    def node_status(self, ctx: NodeContext) -> dict:
        vtep = ctx.devices.get("vtep")
        bird: Bird = ctx.devices["bird"]
        status = {"ipv4Address": ctx.public_cidr, "vtepMAC": vtep.mac if vtep else "",
                  "vtepIP": ctx.devices.get("vtep_ip", ""), "controlSocket": bird.ctl, "birdRestarts": bird.restarts}
        if bird.error:
            status["configError"] = bird.error  # BIRD refused the latest render: it runs the previous one
        return {"bgp": status}

    # -- the loop -------------------------------------------------------------------------------
    def me(self, ctx: NodeContext, w: world.World) -> world.Peer:
        found = w.peers.get(ctx.node)
        iface = ipaddress.IPv4Interface(ctx.public_cidr)
        return world.Peer(ctx.node, str(iface.ip), iface.network, found.reflector if found else False,
                          ctx.devices["vtep"].mac, ctx.devices.get("vtep_ip", ""))

    def move_tunnel_address(self, ctx: NodeContext, w: world.World) -> None:
        """The tunnel address leaves a pool that was disabled (or deleted), as Calico's does, once
        another pool can give one: otherwise the old pool could never be emptied and deleted."""
        ip = ctx.devices.get("vtep_ip")
        if not ip:
            return
        addr = ipaddress.IPv4Address(ip)
        pool = next((p for p in w.pools if addr in p.cidr), None)
        if pool is not None and not pool.disabled and "Tunnel" in pool.uses:
            return
        try:
            ctx.allocator.pools_for(None, "Tunnel")
        except IPAMError:
            return  # nowhere to go: keep it
        ctx.allocator.release(tunnel_handle(ctx.node))
        ctx.devices["vtep_ip"] = ""
        self.ensure_tunnel_address(ctx)
        ctx.log(f"bgp: VXLAN tunnel address moved from {ip} (pool {pool.name if pool else 'gone'}) "
                f"to {ctx.devices['vtep_ip'] or 'none yet'}")

    def reconcile(self, ctx: NodeContext, full: bool) -> dict:
        self.ensure_tunnel_address(ctx)
        w = world.read(ctx.store)
        self.move_tunnel_address(ctx, w)
        me = self.me(ctx, w)
        w.peers[ctx.node] = me
        ctx.devices["world"] = w
        digest = w.digest() + me.vtep_ip
        if not full and digest == ctx.devices.get("digest"):
            return {}
        blocks = [b for b in w.blocks.get(ctx.node, [])]
        borrowed = [ip for ip, node in w.borrowed.items() if node == ctx.node]
        bird: Bird = ctx.devices["bird"]
        reconfigured = bird.apply(config.render(w, me, ctx.underlay.name, blocks, borrowed))
        changed = routes.apply(ctx.nl, tunnels.render(w, me), ctx.underlay, ctx.devices["vtep"])
        changed["bird_reconfigured"] = int(reconfigured)
        if full:
            indexed = ctx.allocator.repair_index()
            if indexed:
                ctx.log(f"bgp: blocks {', '.join(indexed)} were ours but not indexed: announcing them")
            released = ctx.allocator.release_empty_blocks()
            if released:
                ctx.log(f"bgp: gave back empty blocks {', '.join(released)}")
        ctx.devices["digest"] = digest
        return changed

    def guard(self, ctx: NodeContext, _leases) -> list[dict]:
        w = ctx.devices.get("world")
        peers = [p.ip for p in w.peers.values() if p.name != ctx.node] if w else []
        return overlay_guard(str(ctx.network), ctx.conf["Port"], peers)

    def cni_delegate(self, ctx: NodeContext, mtu: int, cni_path: str):
        from ...routed_cni import RoutedDelegate

        return RoutedDelegate(ctx.allocator, ctx.store, mtu, cni_path)

    def task(self, ctx: NodeContext, stop) -> None:
        ctx.devices["bird"].supervise(stop)

    def teardown(self, nl: rtnl.Netlink, state_dir: str = "") -> None:
        link = nl.link(VTEP)
        if link is not None:
            nl.delete_link(link.index)
        if state_dir:
            Bird(state_dir).stop()




register(Bgp())
