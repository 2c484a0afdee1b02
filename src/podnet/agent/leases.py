"""Subnet leases with flannel's semantics, on any Store.

A lease is /podnet/subnets/<a.b.c.d>-<len> holding {"node", "PublicIP", "BackendType",
"BackendData"}, attached to a store lease with a TTL that the agent keeps alive. An agent
takes, in order: the lease its node already holds (renewing it), the subnet it had before
(from subnet.env, after a restart that outlived the TTL), or the first free subnet. Every
write is create-if-absent or compare-and-set, retried when another node wins a race.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field

from ..api import keys
from ..api.cluster import ClusterConfig
from ..store import KV, Store

PREFIX = keys.SUBNETS


class LeaseError(RuntimeError):
    pass


@dataclass(frozen=True)
class Lease:
    subnet: ipaddress.IPv4Network
    node: str
    public_ip: str
    backend_type: str
    backend_data: dict = field(default_factory=dict, compare=False, hash=False)
    mod_revision: int = 0
    lease_id: int = 0

    @property
    def key(self) -> str:
        return subnet_key(self.subnet)

    @property
    def vtep_mac(self) -> str:
        return self.backend_data.get("VtepMAC", "")


def subnet_key(subnet: ipaddress.IPv4Network) -> str:
    return f"{PREFIX}{subnet.network_address}-{subnet.prefixlen}"


def parse(kv: KV) -> Lease | None:
    """A lease from its KV, or None for a key that is not one (never crash on foreign data)."""
    try:
        addr, plen = kv.key[len(PREFIX):].split("-")
        subnet = ipaddress.ip_network(f"{addr}/{plen}")
        doc = json.loads(kv.value)
        return Lease(subnet, doc["node"], doc["PublicIP"], doc.get("BackendType", ""), doc.get("BackendData") or {},
                     kv.mod_revision, kv.lease)
    except (ValueError, KeyError, TypeError):
        return None


def value(node: str, public_ip: str, backend_type: str, backend_data: dict) -> str:
    return json.dumps({"node": node, "PublicIP": public_ip, "BackendType": backend_type, "BackendData": backend_data})


def all_leases(store: Store) -> tuple[list[Lease], int]:
    kvs, rev = store.list(PREFIX)
    return [lease for lease in map(parse, kvs) if lease is not None], rev


def acquire(store: Store, cfg: ClusterConfig, node: str, public_ip: str, backend_data: dict, ttl: int,
            previous: ipaddress.IPv4Network | None = None, attempts: int = 10) -> Lease:
    for _ in range(attempts):
        leases, _ = all_leases(store)
        data = value(node, public_ip, cfg.backend, backend_data)
        mine = [l for l in leases if l.node == node]
        lease_id = store.grant(ttl)
        if mine:
            current = mine[0]
            if store.cas(current.key, data, current.mod_revision, lease=lease_id):
                return _reread(store, current.key)
            continue  # someone changed it meanwhile: look again
        taken = {l.subnet for l in leases}
        allowed = set(cfg.subnets()) if previous is not None else None
        candidates = []
        if previous is not None and previous not in taken and previous in allowed:
            candidates.append(previous)
        candidates += [s for s in cfg.subnets() if s not in taken and s != previous]
        if not candidates:
            store.revoke(lease_id)
            raise LeaseError(f"no free subnet left in {cfg.subnet_min}-{cfg.subnet_max} (/{cfg.subnet_len}): "
                             f"{len(taken)} leased")
        for subnet in candidates[:3]:
            if store.create(subnet_key(subnet), data, lease=lease_id):
                return _reread(store, subnet_key(subnet))
        store.revoke(lease_id)
    raise LeaseError(f"could not acquire a subnet lease for {node} after {attempts} attempts (too many races)")


def _reread(store: Store, key: str) -> Lease:
    kv = store.get(key)
    lease = parse(kv) if kv else None
    if lease is None:
        raise LeaseError(f"lease {key} vanished right after it was written")
    return lease
