"""bird.conf for one node, rendered from the routed world (pure: the same world, the same text).

In the spirit of Calico's confd templates (bird.cfg.template, bird_ipam.cfg.template), for
upstream BIRD 2:

  - router id: the node's underlay address; AS 64512 unless the BGPConfiguration says otherwise
  - static `podnet_blocks`: a blackhole per block this node owns (exported to peers, and to
    the kernel, so an unallocated address of the block is dropped here instead of looping);
    static `podnet_borrowed`: a /32 per address this node borrowed from another's block
    (exported to peers only: the kernel has the pod's own /32 dev route)
  - peers: a full mesh (one session per pair, the lower address passive), or, once some
    nodes are route reflectors, reflectors peer with everyone (the others as `rr client`) and
    the others only with the reflectors
  - to peers: this node's blocks and borrowed /32s, never a pod's /32 inside an owned block;
    reflectors also pass on what they learn
  - to the kernel (protocol `bird`): the blackholes, and learned routes the pool routes
    directly: every route of a `Never` pool, and of a `CrossSubnet` pool the ones whose next
    hop is on this node's segment. The rest (other segments, `Always`) the agent sends through
    its VXLAN device (podnet.agent.backends.bgp.tunnels), as Calico's felix does.
  - from the kernel: the node's own routes outside the pools (its default route), so a next
    hop on another segment resolves through it
"""

from __future__ import annotations

import ipaddress

from .world import Peer, World

MESH, REFLECTOR, CLIENT = "Mesh", "RR", "RRClient"  # protocol name prefixes (`podnet node status` reads them)
PEER_TYPES = {MESH: "node-to-node mesh", REFLECTOR: "route reflector", CLIENT: "route reflector client"}
GR_WAIT = 10  # seconds a restarted BIRD waits for its peers before it syncs the kernel


def protocol_name(kind: str, ip: str) -> str:
    return f"{kind}_{ip.replace('.', '_')}"


def sessions(world: World, me: Peer) -> list[tuple[str, Peer]]:
    """(kind, peer) for every BGP session this node has."""
    others = sorted((p for p in world.peers.values() if p.name != me.name), key=lambda p: p.key)
    reflectors = [p for p in world.peers.values() if p.reflector]
    if reflectors:
        if me.reflector:
            return [(REFLECTOR if p.reflector else CLIENT, p) for p in others]
        return [(REFLECTOR, p) for p in others if p.reflector]
    return [(MESH, p) for p in others] if world.mesh else []


def _prefixes(nets) -> str:
    items = sorted({ipaddress.ip_network(n) for n in nets})
    return "[ " + ", ".join(f"{n}+" for n in items) + " ]" if items else "[ ]"


def render(world: World, me: Peer, underlay: str, blocks: list[ipaddress.IPv4Network], borrowed: list[str]) -> str:
    pools = world.pools
    lines = [
        f"# BIRD 2 configuration of node {me.name}, rendered by the podnet agent from the datastore.",
        "# Edits are overwritten: change IPPools, the BGPConfiguration or node labels instead.",
        "",
        "log stderr all;",
        f"router id {me.ip};",
        f"graceful restart wait {GR_WAIT};",
        "timeformat protocol iso long;",
    ]
    if world.debug:
        lines.append("debug protocols all;")
    lines += ["", f"define PODNET_POOLS = {_prefixes(p.cidr for p in pools)};", ""]

    # -- what goes to the kernel -------------------------------------------------------------
    lines += ["filter podnet_kernel_import {", "  if net ~ PODNET_POOLS then reject;  # pods' own /32s, the agent's tunnel routes",
              "  accept;                              # the node's routes: next hops resolve through them", "}", "",
              "filter podnet_kernel_export {", '  if proto = "podnet_blocks" then accept;  # blackholes for the blocks this node owns',
              "  if source != RTS_BGP then reject;"]
    for p in pools:
        encap = p.vxlan_mode if p.vxlan_mode != "Never" else p.ipip_mode
        tunnel = "VXLAN" if p.vxlan_mode != "Never" else "IPIP"
        if encap == "Never":
            lines.append(f"  if net ~ [ {p.cidr}+ ] then accept;  # pool {p.name}: routed as learned")
        elif encap == "CrossSubnet":
            lines.append(f"  if net ~ [ {p.cidr}+ ] then {{  # pool {p.name}: {tunnel} across segments only")
            lines.append(f"    if bgp_next_hop ~ {me.subnet} then accept;")
            lines.append(f"    reject;  # another segment: the agent's {tunnel} route")
            lines.append("  }")
        else:
            lines.append(f"  if net ~ [ {p.cidr}+ ] then reject;  # pool {p.name}: {tunnel} always (the agent's routes)")
    lines += ["  reject;", "}", ""]

    # -- what goes to peers ------------------------------------------------------------------
    no_export = [p.cidr for p in pools if not p.export]
    lines += ["filter podnet_bgp_export {"]
    if no_export:
        lines.append(f"  if net ~ {_prefixes(no_export)} then reject;  # pools with disableBGPExport")
    lines += ['  if proto = "podnet_blocks" || proto = "podnet_borrowed" then accept;',
              "  if source = RTS_BGP && net ~ PODNET_POOLS then accept;  # a reflector passes on what it learns",
              "  reject;", "}", ""]

    # -- protocols ------------------------------------------------------------------------------
    lines += ["protocol device {", "  scan time 2;", "}", "",
              "protocol direct {", "  ipv4;", f'  interface "{underlay}";', "}", "",
              "protocol kernel {", "  learn;", "  scan time 10;", "  graceful restart;",
              "  ipv4 { import filter podnet_kernel_import; export filter podnet_kernel_export; };", "}", "",
              "protocol static podnet_blocks {", "  ipv4;"]
    lines += [f"  route {b} blackhole;" for b in sorted(blocks)]
    lines += ["}", "", "protocol static podnet_borrowed {", "  ipv4 { import all; };"]
    lines += [f"  route {ip}/32 blackhole;" for ip in sorted(borrowed, key=ipaddress.IPv4Address)]
    lines += ["}", ""]
    port = f" port {world.port}" if world.port != 179 else ""
    lines += ["template bgp podnet_peer {", f"  local {me.ip}{port} as {world.asn};",
              "  connect delay time 1;", "  connect retry time 3;", "  error wait time 3, 30;", "  graceful restart;",
              "  ipv4 { import all; export filter podnet_bgp_export; };", "}", ""]
    for kind, peer in sessions(world, me):
        lines.append(f"protocol bgp {protocol_name(kind, peer.ip)} from podnet_peer {{  # {peer.name}, {PEER_TYPES[kind]}")
        lines.append(f"  neighbor {peer.ip}{port} as {world.asn};")
        if me.key < peer.key:
            lines.append("  passive on;  # one session per pair: the peer with the higher address connects")
        if kind == CLIENT:
            lines.append("  rr client;")
            lines.append(f"  rr cluster id {me.ip};")
        lines += ["}", ""]
    return "\n".join(lines)
