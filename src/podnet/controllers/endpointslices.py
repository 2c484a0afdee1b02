"""The EndpointSlice controller: for every Service with a selector, the slices of its Ready
pods (named target ports resolved per pod), written only when they differ; slices of Services
that are gone are deleted. Exactly one writer (the leader), so agents and DNS only read them."""

from __future__ import annotations

from ..api import keys, stored
from ..proxy import endpoints as ep_mod
from ..store import Store


def sync(store: Store, log=lambda _msg: None) -> int:
    """Bring every slice in line; the number of slices written or deleted."""
    services, _ = stored.decode_all(store.list(keys.SERVICES)[0])
    pods, _ = stored.decode_all(store.list(keys.PODS)[0])
    slices, skipped = ep_mod.compute_all(services, pods)
    if skipped:
        log(f"endpointslices: skipping malformed objects: {', '.join(sorted(set(skipped))[:10])}")
    current = {kv.key: kv for kv in store.list(keys.ENDPOINT_SLICES)[0]}
    changed = 0
    for (ns, name), computed in slices.items():
        key = ep_mod.key(ns, name)
        text = ep_mod.dumps(computed)
        kv = current.pop(key, None)
        if kv is None or kv.value != text:
            store.cas(key, text, kv.mod_revision if kv else 0)
            changed += 1
    for key, kv in current.items():  # services without a selector, or gone
        store.delete(key, kv.mod_revision)
        changed += 1
    return changed
