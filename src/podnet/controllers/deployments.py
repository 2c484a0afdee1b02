"""The Deployment controller: every Deployment gets spec.replicas pods made from its template
(owned by it, named <deployment>-<5 hex>), the newest removed first when there are too many,
and a status (replicas, readyReplicas, updatedReplicas, availableReplicas) for `get deploy`."""

from __future__ import annotations

import json
import secrets

from ..api import keys, stored
from ..api.pod import is_ready
from ..apiserver import objects
from ..store import Store


def sync(store: Store, log=lambda _msg: None) -> int:
    """Reconcile every Deployment; the number of pods created or deleted."""
    deployments, _ = stored.decode_all(store.list(keys.DEPLOYMENTS)[0])
    pods, _ = stored.decode_all(store.list(keys.PODS)[0])
    by_owner: dict[tuple[str, str], list[dict]] = {}
    for pod in pods:
        for ref in pod["metadata"].get("ownerReferences") or []:
            if isinstance(ref, dict) and ref.get("kind") == "Deployment":
                by_owner.setdefault((pod["metadata"]["namespace"], ref.get("name", "")), []).append(pod)
    changed = 0
    for dep in deployments:
        try:
            changed += _reconcile(store, dep, by_owner.get((dep["metadata"]["namespace"], dep["metadata"]["name"]), []), log)
        except (KeyError, TypeError, ValueError) as e:
            log(f"deployments: skipping {stored.ident(dep)}: {e.__class__.__name__}: {e}")
    return changed


def _reconcile(store: Store, dep: dict, owned: list[dict], log) -> int:
    ns, name = dep["metadata"]["namespace"], dep["metadata"]["name"]
    live = [p for p in owned if not p["metadata"].get("deletionTimestamp")]
    want = int(dep["spec"]["replicas"])
    changed = 0
    count = len(live)
    for _ in range(want - len(live)):
        pod_name = f"{name}-{secrets.token_hex(3)[:5]}"
        try:
            objects.create_owned_pod(store, dep, pod_name)
            changed += 1
            count += 1
        except (objects.Conflict, ValueError) as e:
            log(f"deployments: {ns}/{name}: cannot create {pod_name}: {e}")
    newest_first = sorted(live, key=lambda p: p["metadata"].get("creationTimestamp", ""), reverse=True)
    for pod in newest_first[: max(0, len(live) - want)]:
        objects.delete_pod(store, ns, pod["metadata"]["name"])
        changed += 1
        count -= 1
    ready = sum(1 for p in live if is_ready(p))
    status = {"observedGeneration": dep["metadata"].get("generation", 1), "replicas": count, "updatedReplicas": count,
              "readyReplicas": ready, "availableReplicas": ready}
    if dep.get("status") != status:
        kv = store.get(f"{keys.DEPLOYMENTS}{ns}/{name}")
        current = stored.decode(kv.value) if kv else None
        if current is not None and current["spec"] == dep["spec"]:
            current["status"] = status
            store.cas(kv.key, json.dumps(current), kv.mod_revision)  # lost a race: the next pass writes it
    if changed:
        log(f"deployments: {ns}/{name}: {len(live)} -> {want} replicas")
    return changed
