"""The EndpointSlice controller: for every Service with a selector, the slices of its Ready
pods (named target ports resolved per pod), written only when they differ; slices of Services
that are gone are deleted. Exactly one writer (the leader), so agents and DNS only read them.

A full pass lists everything (at start and periodically); in between, a Service event
recomputes that service's slices and a Pod event those of the services in its namespace whose
selector matches its old or new labels, so a change costs the same in a cluster of 10 or
10,000 services."""

from __future__ import annotations

import json
import time

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
        kv = current.pop(key, None)
        text = stamped(computed, kv.value if kv else None)
        if text is not None:
            store.cas(key, text, kv.mod_revision if kv else 0)
            changed += 1
    for key, kv in current.items():  # services without a selector, or gone
        store.delete(key, kv.mod_revision)
        changed += 1
    return changed


class EndpointSlices:
    """The controller with its memory of Services and Pods, per namespace."""

    def __init__(self) -> None:
        self.services: dict[str, dict[str, dict]] = {}   # namespace -> name -> Service
        self.pods: dict[str, dict[str, dict]] = {}       # namespace -> name -> Pod
        self.loaded = False

    def __call__(self, store: Store, log=lambda _msg: None, events: list | None = None) -> int:
        """A full pass (events None, or nothing loaded yet), else only what `events` touch."""
        if events is None or not self.loaded:
            return self.full(store, log)
        affected: set[tuple[str, str]] = set()
        for e in events:
            for prefix, index in ((keys.SERVICES, self.services), (keys.PODS, self.pods)):
                if not e.key.startswith(prefix):
                    continue
                ns, _, name = e.key[len(prefix):].partition("/")
                old = index.get(ns, {}).pop(name, None)
                new = stored.decode(e.value) if e.type == "put" else None
                if new is not None:
                    index.setdefault(ns, {})[name] = new
                if index is self.services:
                    affected.add((ns, name))
                else:
                    affected |= {(ns, s) for s, svc in self.services.get(ns, {}).items()
                                 if any(_selects(svc, pod) for pod in (old, new) if pod is not None)}
        return sum(self.write(store, ns, name, log) for ns, name in sorted(affected))

    def full(self, store: Store, log) -> int:
        self.services, self.pods = {}, {}
        for prefix, index in ((keys.SERVICES, self.services), (keys.PODS, self.pods)):
            for obj in stored.decode_all(store.list(prefix)[0])[0]:
                index.setdefault(obj["metadata"]["namespace"], {})[obj["metadata"]["name"]] = obj
        self.loaded = True
        return sync(store, log)

    def write(self, store: Store, ns: str, name: str, log) -> int:
        """Bring one service's slices in line with the pods of its namespace; 1 if written."""
        svc = self.services.get(ns, {}).get(name)
        computed = None
        if svc is not None:
            slices, skipped = ep_mod.compute_all([svc], list(self.pods.get(ns, {}).values()))
            if skipped:
                log(f"endpointslices: skipping malformed objects: {', '.join(sorted(set(skipped))[:10])}")
            computed = slices.get((ns, name))
        key = ep_mod.key(ns, name)
        kv = store.get(key)
        if computed is None:
            return int(kv is not None and store.delete(key, kv.mod_revision))
        text = stamped(computed, kv.value if kv else None)
        if text is None:
            return 0
        store.cas(key, text, kv.mod_revision if kv else 0)
        return 1


TRIGGER = "endpoints.kubernetes.io/last-change-trigger-time"


def stamped(computed: dict, stored_text: str | None) -> str | None:
    """The slices to write, each stamped with the time this change was seen (kube-proxy's
    network programming latency starts there), or None when they equal what is stored."""
    if stored_text is not None:
        try:
            previous = json.loads(stored_text)
            for item in previous.get("items", []):
                (item.get("metadata") or {}).get("annotations", {}).pop(TRIGGER, None)
                if (item.get("metadata") or {}).get("annotations") == {}:
                    del item["metadata"]["annotations"]
            if ep_mod.dumps(previous) == ep_mod.dumps(computed):
                return None
        except (ValueError, AttributeError, TypeError, KeyError):
            pass
    now = time.time()
    when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
    out = json.loads(ep_mod.dumps(computed))
    for item in out.get("items", []):
        item.setdefault("metadata", {}).setdefault("annotations", {})[TRIGGER] = when
    return ep_mod.dumps(out)


def _selects(svc: dict, pod: dict) -> bool:
    try:
        return ep_mod.selects(svc["spec"].get("selector") or {}, pod["metadata"].get("labels") or {})
    except (KeyError, TypeError, AttributeError):
        return False
