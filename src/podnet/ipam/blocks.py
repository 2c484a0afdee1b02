"""Calico's IPAM on any Store: pools carved into blocks, blocks owned by nodes (affinity),
addresses handed out from a node's own blocks, borrowed from others' when the pool is full.

Store layout (podnet.api.keys):

    /podnet/ipam/blocks/<a.b.c.d>-<len>        {"cidr", "pool", "affinity": "host:<node>" | null,
                                                "allocations": {"<ordinal>": {"handle", "node", "pod"}},
                                                "next": <ordinal>, "emptySince": <epoch> | null}
    /podnet/ipam/affinities/<node>/<block>     index: the blocks a node owns (what it exports)
    /podnet/ipam/handles/<handle>              {"ips", "node", "pod"}: what to release on DEL
    /podnet/ipam/borrowed/<a.b.c.d>            {"node", "block"}: an address taken from another
                                                node's block (that node exports its /32)

Every write is create-if-absent or compare-and-set on the block's revision, so two nodes can
never own one block (claiming *is* creating the block key) and no address is handed out twice
(an allocation is a CAS of the block that holds it). Inside one process a lock serializes a
node's allocations, so only nodes racing each other retry. Addresses are handed out round-
robin inside a block (a released one is reused last, as host-local and Calico do), every
address of a block is usable (pods get /32s: there is no network or broadcast address), and an
empty block is given back to the pool once it has been empty for `grace` seconds.
"""

from __future__ import annotations

import ipaddress
import json
import threading
import time
from dataclasses import dataclass, field

from ..api import keys, selector
from ..store import KV, Store

ATTEMPTS = 20
DEFAULT_GRACE = 300.0


class IPAMError(RuntimeError):
    """No address can be given (a full pool, a requested pool that does not exist, ...)."""


# -- keys -------------------------------------------------------------------------------------------
def block_key(cidr: ipaddress.IPv4Network) -> str:
    return f"{keys.IPAM_BLOCKS}{cidr.network_address}-{cidr.prefixlen}"


def affinity_key(node: str, cidr: ipaddress.IPv4Network) -> str:
    return f"{keys.IPAM_AFFINITIES}{node}/{cidr.network_address}-{cidr.prefixlen}"


def handle_key(handle: str) -> str:
    return f"{keys.IPAM_HANDLES}{handle}"


def borrowed_key(ip: str) -> str:
    return f"{keys.IPAM_BORROWED}{ip}"


def cidr_of_key(key: str) -> ipaddress.IPv4Network | None:
    """The block a block or affinity key names (None for a key that is not one)."""
    try:
        addr, plen = key.rsplit("/", 1)[-1].split("-")
        return ipaddress.IPv4Network(f"{addr}/{plen}")
    except ValueError:
        return None


# -- the data ---------------------------------------------------------------------------------------
@dataclass
class Pool:
    name: str
    cidr: ipaddress.IPv4Network
    block_size: int
    disabled: bool = False
    node_selector: str = "all()"
    manual: bool = False
    uses: tuple[str, ...] = ("Tunnel", "Workload")
    vxlan_mode: str = "Never"
    ipip_mode: str = "Never"
    nat_outgoing: bool = False
    export: bool = True

    @classmethod
    def from_object(cls, obj: dict) -> "Pool":
        s = obj["spec"]
        return cls(obj["metadata"]["name"], ipaddress.IPv4Network(s["cidr"]), int(s["blockSize"]), bool(s.get("disabled")),
                   s.get("nodeSelector", "all()"), s.get("assignmentMode") == "Manual",
                   tuple(s.get("allowedUses") or ("Tunnel", "Workload")), s.get("vxlanMode", "Never"),
                   s.get("ipipMode", "Never"), bool(s.get("natOutgoing")), not s.get("disableBGPExport"))

    def blocks(self):
        return self.cidr.subnets(new_prefix=self.block_size)

    def selects(self, labels: dict[str, str]) -> bool:
        try:
            return selector.matches(self.node_selector, labels)
        except ValueError:
            return False


@dataclass
class Block:
    cidr: ipaddress.IPv4Network
    pool: str
    affinity: str | None            # the owning node's name
    allocations: dict[int, dict] = field(default_factory=dict)
    next: int = 0
    empty_since: float | None = None
    mod_revision: int = 0

    @property
    def key(self) -> str:
        return block_key(self.cidr)

    @property
    def size(self) -> int:
        return self.cidr.num_addresses

    @property
    def free(self) -> int:
        return self.size - len(self.allocations)

    def ip(self, ordinal: int) -> str:
        return str(self.cidr.network_address + ordinal)

    def ordinal(self, ip: str) -> int:
        return int(ipaddress.IPv4Address(ip)) - int(self.cidr.network_address)

    def take(self, handle: str, node: str, pod: str) -> str | None:
        """Allocate the next free address (round-robin from `next`) in this copy; None if full."""
        for step in range(self.size):
            o = (self.next + step) % self.size
            if o not in self.allocations:
                self.allocations[o] = {"handle": handle, "node": node, "pod": pod}
                self.next = (o + 1) % self.size
                self.empty_since = None
                return self.ip(o)
        return None

    def to_json(self) -> str:
        return json.dumps({"cidr": str(self.cidr), "pool": self.pool,
                           "affinity": f"host:{self.affinity}" if self.affinity else None,
                           "allocations": {str(k): v for k, v in sorted(self.allocations.items())},
                           "next": self.next, "emptySince": self.empty_since})

    @classmethod
    def from_kv(cls, kv: KV) -> "Block | None":
        try:
            d = json.loads(kv.value)
            affinity = d.get("affinity") or None
            return cls(ipaddress.IPv4Network(d["cidr"]), str(d.get("pool", "")),
                       affinity[5:] if isinstance(affinity, str) and affinity.startswith("host:") else None,
                       {int(k): dict(v) for k, v in (d.get("allocations") or {}).items()}, int(d.get("next") or 0),
                       d.get("emptySince"), kv.mod_revision)
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


def load_pools(store: Store) -> list[Pool]:
    out = []
    for kv in store.list(keys.IPPOOLS)[0]:
        try:
            out.append(Pool.from_object(json.loads(kv.value)))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return sorted(out, key=lambda p: (p.name != "default-ipv4-ippool", p.name))


def load_blocks(store: Store) -> list[Block]:
    return [b for b in map(Block.from_kv, store.list(keys.IPAM_BLOCKS)[0]) if b is not None]


def get_block(store: Store, cidr: ipaddress.IPv4Network) -> Block | None:
    kv = store.get(block_key(cidr))
    return Block.from_kv(kv) if kv else None


# -- the allocator ----------------------------------------------------------------------------------
class BlockAllocator:
    """One node's view of the pools: assign and release addresses, claim and give back blocks."""

    def __init__(self, store: Store, node: str, grace: float = DEFAULT_GRACE) -> None:
        self.store = store
        self.node = node
        self.grace = grace
        self.lock = threading.Lock()

    # -- which pools ---------------------------------------------------------------------------
    def node_labels(self) -> dict[str, str]:
        kv = self.store.get(f"{keys.NODES}{self.node}")
        try:
            return dict(json.loads(kv.value)["metadata"].get("labels") or {}) if kv else {}
        except (ValueError, KeyError, TypeError, AttributeError):
            return {}

    def pools_for(self, requested: list[str] | None, use: str = "Workload") -> list[Pool]:
        """The pools to take from, in order: the ones asked for by name or CIDR (which must
        exist and be enabled), else every enabled automatic pool whose nodeSelector picks
        this node and that allows `use`."""
        pools = load_pools(self.store)
        if requested:
            out = []
            for want in requested:
                match = [p for p in pools if want in (p.name, str(p.cidr))]
                if not match:
                    raise IPAMError(f"the requested IP pool {want!r} does not exist")
                if match[0].disabled:
                    raise IPAMError(f"the requested IP pool {want!r} is disabled")
                out.append(match[0])
            return out
        labels = self.node_labels()
        out = [p for p in pools if not p.disabled and not p.manual and use in p.uses and p.selects(labels)]
        if not out:
            raise IPAMError(f"no enabled IP pool selects node {self.node} (pools: "
                            f"{', '.join(p.name for p in pools) or 'none'})")
        return out

    # -- assign ---------------------------------------------------------------------------------
    def assign(self, handle: str, pod: str = "", requested: list[str] | None = None, use: str = "Workload") -> str:
        """An address for `handle` (the same one again if it already holds one)."""
        with self.lock:
            held = self.ips_of(handle)
            if held:
                return held[0]
            pools = self.pools_for(requested, use)
            for pool in pools:
                ip = self._from_own_blocks(pool, handle, pod) or self._claim(pool, handle, pod)
                if ip:
                    return self._record(handle, ip, pod)
            for pool in pools:
                ip = self._borrow(pool, handle, pod)
                if ip:
                    return self._record(handle, ip, pod)
            raise IPAMError(f"no free address left in IP pool{'s' if len(pools) > 1 else ''} "
                            f"{', '.join(f'{p.name} ({p.cidr})' for p in pools)}")

    def _record(self, handle: str, ip: str, pod: str) -> str:
        self.store.put(handle_key(handle), json.dumps({"ips": [ip], "node": self.node, "pod": pod}))
        return ip

    def own_blocks(self) -> list[ipaddress.IPv4Network]:
        out = []
        for kv in self.store.list(f"{keys.IPAM_AFFINITIES}{self.node}/")[0]:
            cidr = cidr_of_key(kv.key)
            if cidr is not None:
                out.append(cidr)
        return sorted(out)

    def _from_own_blocks(self, pool: Pool, handle: str, pod: str) -> str | None:
        for cidr in self.own_blocks():
            if not cidr.subnet_of(pool.cidr):
                continue
            for _ in range(ATTEMPTS):
                block = get_block(self.store, cidr)
                if block is None or block.affinity != self.node:
                    self.store.delete(affinity_key(self.node, cidr))  # a stale index entry
                    break
                ip = block.take(handle, self.node, pod)
                if ip is None:
                    break
                if self.store.cas(block.key, block.to_json(), block.mod_revision):
                    return ip
        return None

    def _claim(self, pool: Pool, handle: str, pod: str) -> str | None:
        """Take a free block of the pool (creating its key is the claim) with the address in it."""
        for _ in range(ATTEMPTS):
            blocks = [b.cidr for b in load_blocks(self.store)]
            taken = set(blocks)
            # blocks of another size (left by a pool deleted and made again with a new blockSize,
            # during their grace period) must not be overlapped either
            odd = [c for c in blocks if c.prefixlen != pool.block_size and c.overlaps(pool.cidr)]
            free = next((c for c in pool.blocks() if c not in taken and not any(c.overlaps(o) for o in odd)), None)
            if free is None:
                return None
            block = Block(free, pool.name, self.node)
            ip = block.take(handle, self.node, pod)
            if self.store.create(block.key, block.to_json()):
                self.store.put(affinity_key(self.node, free), json.dumps({"node": self.node, "cidr": str(free)}))
                return ip
        return None

    def _borrow(self, pool: Pool, handle: str, pod: str) -> str | None:
        """An address from another node's block (the pool has no free block left)."""
        for _ in range(ATTEMPTS):
            candidates = [b for b in load_blocks(self.store) if b.cidr.subnet_of(pool.cidr) and b.free > 0]
            if not candidates:
                return None
            block = max(candidates, key=lambda b: (b.free, -int(b.cidr.network_address)))
            ip = block.take(handle, self.node, pod)
            if ip and self.store.cas(block.key, block.to_json(), block.mod_revision):
                if block.affinity != self.node:
                    self.store.put(borrowed_key(ip), json.dumps({"node": self.node, "block": str(block.cidr)}))
                return ip
        return None

    # -- release --------------------------------------------------------------------------------
    def ips_of(self, handle: str) -> list[str]:
        kv = self.store.get(handle_key(handle))
        if kv is None:
            return []
        try:
            return [str(ipaddress.IPv4Address(ip)) for ip in json.loads(kv.value)["ips"]]
        except (ValueError, KeyError, TypeError):
            return []

    def release(self, handle: str) -> list[str]:
        """Give back what `handle` holds (idempotent); the addresses released."""
        with self.lock:
            ips = self.ips_of(handle)
            if not ips:  # no handle record (lost in a crash): look for the handle in the blocks
                ips = [b.ip(o) for b in load_blocks(self.store) for o, a in b.allocations.items() if a.get("handle") == handle]
            for ip in ips:
                self._release_ip(ip, handle)
            self.store.delete(handle_key(handle))
            return ips

    def _release_ip(self, ip: str, handle: str) -> None:
        addr = ipaddress.IPv4Address(ip)
        for pool in load_pools(self.store) or []:
            if addr in pool.cidr:
                cidr = ipaddress.IPv4Network(f"{addr}/{pool.block_size}", strict=False)
                break
        else:
            cidr = None
        candidates = [cidr] if cidr is not None else [b.cidr for b in load_blocks(self.store) if addr in b.cidr]
        for c in candidates:
            for _ in range(ATTEMPTS):
                block = get_block(self.store, c)
                if block is None:
                    break
                o = block.ordinal(ip)
                if block.allocations.get(o, {}).get("handle") != handle:
                    break
                del block.allocations[o]
                if not block.allocations:
                    if block.affinity is None:  # nobody owns it any more: back to the pool now
                        if self.store.delete(block.key, block.mod_revision):
                            break
                        continue
                    block.empty_since = time.time()
                if self.store.cas(block.key, block.to_json(), block.mod_revision):
                    break
        self.store.delete(borrowed_key(ip))

    def repair_index(self) -> list[str]:
        """Put back affinity index entries for blocks this node owns but that the index lacks (an
        agent that died between creating a block and indexing it); the blocks re-indexed."""
        with self.lock:
            indexed = set(self.own_blocks())
            missing = [b.cidr for b in load_blocks(self.store) if b.affinity == self.node and b.cidr not in indexed]
            for cidr in missing:
                self.store.put(affinity_key(self.node, cidr), json.dumps({"node": self.node, "cidr": str(cidr)}))
            return [str(c) for c in missing]

    def release_empty_blocks(self, now: float | None = None) -> list[str]:
        """Give back this node's blocks that have been empty for longer than the grace period."""
        now = time.time() if now is None else now
        released = []
        with self.lock:
            for cidr in self.own_blocks():
                block = get_block(self.store, cidr)
                if block is None or block.affinity != self.node:
                    self.store.delete(affinity_key(self.node, cidr))
                    continue
                if block.allocations or block.empty_since is None or now - block.empty_since < self.grace:
                    continue
                self.store.delete(affinity_key(self.node, cidr))
                if self.store.delete(block.key, block.mod_revision):
                    released.append(str(cidr))
                else:  # allocated from meanwhile (a borrower): keep owning it
                    self.store.put(affinity_key(self.node, cidr), json.dumps({"node": self.node, "cidr": str(cidr)}))
        return released


def release_node(store: Store, node: str) -> list[str]:
    """A node leaves the cluster (as calico-kube-controllers does when a Node is deleted): its
    handles and addresses are released, its empty blocks go back to the pool, blocks still
    holding others' borrowed addresses lose their owner. The blocks it owned."""
    owned = []
    for kv in store.list(keys.IPAM_HANDLES)[0]:
        try:
            if json.loads(kv.value).get("node") == node:
                BlockAllocator(store, node).release(kv.key[len(keys.IPAM_HANDLES):])
        except (ValueError, AttributeError):
            continue
    for block in load_blocks(store):
        mine = [o for o, a in block.allocations.items() if a.get("node") == node]
        if block.affinity != node and not mine:
            continue
        for _ in range(ATTEMPTS):
            for o in mine:
                block.allocations.pop(o, None)
                store.delete(borrowed_key(block.ip(o)))
            if block.affinity == node:
                owned.append(str(block.cidr))
                block.affinity = None
            elif not block.allocations:  # another node's block, empty now: it starts its grace period
                block.empty_since = time.time()
            done = (store.delete(block.key, block.mod_revision) if not block.allocations and block.affinity is None
                    else store.cas(block.key, block.to_json(), block.mod_revision))
            if done:
                break
            fresh = get_block(store, block.cidr)
            if fresh is None:
                break
            block = fresh
            mine = [o for o, a in block.allocations.items() if a.get("node") == node]
    for kv in store.list(f"{keys.IPAM_AFFINITIES}{node}/")[0]:
        store.delete(kv.key)
    return sorted(set(owned))


@dataclass
class Usage:
    """What `podnet ipam show` prints: per pool and per block, the addresses in use."""
    pools: list[tuple[Pool, int, int]]           # pool, addresses in its blocks in use, addresses in use by tunnels
    blocks: list[tuple[Block, Pool | None]]
    borrowed: list[tuple[str, str, Block]]       # address, borrowing node, the block it is from


def usage(store: Store) -> Usage:
    pools, all_blocks = load_pools(store), load_blocks(store)
    out = Usage([], [], [])
    for pool in pools:
        mine = [b for b in all_blocks if b.cidr.subnet_of(pool.cidr)]
        used = sum(len(b.allocations) for b in mine)
        tunnels = sum(1 for b in mine for a in b.allocations.values() if str(a.get("handle", "")).startswith("vxlan-tunnel"))
        out.pools.append((pool, used, tunnels))
    for block in sorted(all_blocks, key=lambda b: b.cidr):
        out.blocks.append((block, next((p for p in pools if block.cidr.subnet_of(p.cidr)), None)))
        for o, a in sorted(block.allocations.items()):
            if a.get("node") and a.get("node") != block.affinity:
                out.borrowed.append((block.ip(o), a["node"], block))
    return out
