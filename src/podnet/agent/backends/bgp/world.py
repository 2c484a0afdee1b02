"""What the bgp backend renders from: the routed mode's state of the cluster, read from the store.

    peers      every node running the bgp backend: its underlay address and subnet, whether it
               is a route reflector, its VXLAN tunnel endpoint (MAC and address)
    pools      the IP pools (podnet.ipam.blocks.Pool)
    blocks     which node owns which block (the affinity index)
    borrowed   addresses a node took from another node's block
    bgp        the BGPConfiguration named default (AS number, mesh, reflector selector)

`digest` is what a sync compares to skip work when only heartbeats changed.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass, field

from ....api import keys, selector
from ....api.ippool import default_bgp_configuration
from ....ipam.blocks import Pool, cidr_of_key
from ....store import Store

BACKEND = "bgp"


@dataclass(frozen=True)
class Peer:
    name: str
    ip: str
    subnet: ipaddress.IPv4Network     # the underlay segment it sits on
    reflector: bool = False
    vtep_mac: str = ""
    vtep_ip: str = ""

    @property
    def key(self) -> tuple[int, ...]:
        return tuple(int(x) for x in self.ip.split("."))


@dataclass
class World:
    peers: dict[str, Peer] = field(default_factory=dict)
    pools: list[Pool] = field(default_factory=list)
    blocks: dict[str, list[ipaddress.IPv4Network]] = field(default_factory=dict)  # node -> blocks it owns
    borrowed: dict[str, str] = field(default_factory=dict)                          # address -> node holding it
    asn: int = 64512
    mesh: bool = True
    reflector_selector: str = 'podnet.io/route-reflector == "true"'
    port: int = 179
    debug: bool = False
    skipped: list[str] = field(default_factory=list)  # stored objects that did not decode

    def digest(self) -> str:
        text = json.dumps([sorted((p.name, p.ip, str(p.subnet), p.reflector, p.vtep_mac, p.vtep_ip) for p in self.peers.values()),
                           [(p.name, str(p.cidr), p.block_size, p.vxlan_mode, p.ipip_mode, p.export, p.disabled)
                            for p in self.pools],
                           sorted((n, sorted(map(str, b))) for n, b in self.blocks.items()), sorted(self.borrowed.items()),
                           self.asn, self.mesh, self.port, self.debug])
        return hashlib.sha256(text.encode()).hexdigest()

    def pool_of(self, net: ipaddress.IPv4Network) -> Pool | None:
        return next((p for p in self.pools if net.subnet_of(p.cidr)), None)


def peer_of(node: dict) -> Peer | None:
    """The BGP peer a Node object describes (None: it does not run the bgp backend)."""
    status = node.get("status", {}).get("podnet", {})
    bgp = status.get("bgp") or {}
    if status.get("backend") != BACKEND or not bgp.get("ipv4Address"):
        return None
    iface = ipaddress.IPv4Interface(bgp["ipv4Address"])
    return Peer(node["metadata"]["name"], str(iface.ip), iface.network, False, bgp.get("vtepMAC", ""),
                bgp.get("vtepIP", ""))


def node_view(value: str) -> tuple | None:
    """What `read` takes from a stored Node (its peer and labels), to compare; None: undecodable."""
    try:
        node = json.loads(value)
        return peer_of(node), tuple(sorted((node["metadata"].get("labels") or {}).items()))
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None


def read(store: Store) -> World:
    w = World()
    kv = store.get(f"{keys.BGP_CONFIGURATIONS}default")
    spec = default_bgp_configuration()["spec"]
    if kv is not None:
        try:
            spec = {**spec, **json.loads(kv.value)["spec"]}
        except (ValueError, KeyError, TypeError):
            w.skipped.append(kv.key)
    w.asn, w.mesh, w.port = int(spec["asNumber"]), bool(spec["nodeToNodeMeshEnabled"]), int(spec["listenPort"])
    w.reflector_selector = spec["routeReflectorSelector"]
    w.debug = spec.get("logSeverityScreen") == "Debug"
    for kv in store.list(keys.NODES)[0]:
        try:
            node = json.loads(kv.value)
            peer = peer_of(node)
        except (ValueError, KeyError, TypeError, AttributeError):
            w.skipped.append(kv.key)
            continue
        if peer is None:
            continue
        labels = node["metadata"].get("labels") or {}
        try:
            reflector = selector.matches(w.reflector_selector, labels)
        except ValueError:
            reflector = False
        w.peers[peer.name] = Peer(peer.name, peer.ip, peer.subnet, reflector, peer.vtep_mac, peer.vtep_ip)
    for kv in store.list(keys.IPPOOLS)[0]:
        try:
            w.pools.append(Pool.from_object(json.loads(kv.value)))
        except (ValueError, KeyError, TypeError, AttributeError):
            w.skipped.append(kv.key)
    w.pools.sort(key=lambda p: p.name)
    for kv in store.list(keys.IPAM_AFFINITIES)[0]:
        node = kv.key[len(keys.IPAM_AFFINITIES):].split("/", 1)[0]
        cidr = cidr_of_key(kv.key)
        if cidr is None:
            w.skipped.append(kv.key)
            continue
        w.blocks.setdefault(node, []).append(cidr)
    for blocks in w.blocks.values():
        blocks.sort()
    for kv in store.list(keys.IPAM_BORROWED)[0]:
        try:
            ip = str(ipaddress.IPv4Address(kv.key[len(keys.IPAM_BORROWED):]))
            w.borrowed[ip] = json.loads(kv.value)["node"]
        except (ValueError, KeyError, TypeError):
            w.skipped.append(kv.key)
    return w
