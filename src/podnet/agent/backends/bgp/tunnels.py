"""The routes the agent itself programs in routed mode: VXLAN to peers' blocks where the pool
says so (`Always`: every peer; `CrossSubnet`: peers on another underlay segment), as Calico's
felix programs them for VXLAN pools. Per peer: a permanent neighbour (its VTEP address -> its
VTEP MAC), an FDB entry (that MAC -> its underlay address) and an onlink route per block it
owns and per address it borrowed, via its VTEP address. Pure: the world in, Desired out.
"""

from __future__ import annotations

import ipaddress

from ...render import Desired
from .world import Peer, World


def encapsulated(world: World, me: Peer, peer: Peer, net: ipaddress.IPv4Network) -> bool:
    pool = world.pool_of(net)
    if pool is None or pool.vxlan_mode == "Never":
        return False
    return pool.vxlan_mode == "Always" or ipaddress.IPv4Address(peer.ip) not in me.subnet


def render(world: World, me: Peer) -> Desired:
    d = Desired()
    for peer in sorted(world.peers.values(), key=lambda p: p.key):
        if peer.name == me.name or not (peer.vtep_mac and peer.vtep_ip):
            continue
        nets = list(world.blocks.get(peer.name, []))
        nets += [ipaddress.IPv4Network(f"{ip}/32") for ip, node in world.borrowed.items() if node == peer.name]
        wanted = [n for n in nets if encapsulated(world, me, peer, n)]
        if not wanted:
            continue
        d.neighbours.add((peer.vtep_ip, peer.vtep_mac))
        d.fdb.add((peer.vtep_mac, peer.ip))
        for net in wanted:
            d.routes.add((str(net), peer.vtep_ip, True))
    return d
