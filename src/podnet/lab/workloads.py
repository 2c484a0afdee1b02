"""Services and Deployments in the lab: stored objects, allocations, replicas as pods."""

from __future__ import annotations

import json
import secrets

from ..api.keys import DEPLOYMENTS
from ..api.pod import parse_pod
from ..api.service import service_key
from ..apiserver.allocate import allocate, release_all
from ..proxy import endpoints as ep_mod
from ..store import Store
from . import pods as pods_mod
from .state import LabState




def apply_service(store: Store, svc: dict) -> str:
    key = service_key(svc["metadata"]["namespace"], svc["metadata"]["name"])
    kv = store.get(key)
    previous = json.loads(kv.value) if kv else None
    if previous is not None:
        svc["metadata"]["creationTimestamp"] = previous["metadata"].get("creationTimestamp", pods_mod.now())
    else:
        svc["metadata"]["creationTimestamp"] = pods_mod.now()
    allocate(store, svc, previous)
    if previous == svc:
        return "unchanged"
    store.put(key, json.dumps(svc))
    return "configured" if previous else "created"


def delete_service(store: Store, namespace: str, name: str) -> bool:
    kv = store.get(service_key(namespace, name))
    if kv is None:
        return False
    store.delete(kv.key)
    release_all(store, f"{namespace}/{name}")
    store.delete(ep_mod.key(namespace, name))
    return True


def deployment_key(namespace: str, name: str) -> str:
    return f"{DEPLOYMENTS}{namespace}/{name}"


def owned_pods(state: LabState, store: Store, dep: dict) -> list[dict]:
    ns, name = dep["metadata"]["namespace"], dep["metadata"]["name"]
    return [p for p in pods_mod.list_pods(state, store, ns)
            if any(o.get("kind") == "Deployment" and o.get("name") == name for o in p["metadata"].get("ownerReferences", []))]


def reconcile_deployment(state: LabState, store: Store, dep: dict) -> tuple[int, int]:
    """Create or delete pods until the deployment has spec.replicas of them; (created, deleted)."""
    ns, name = dep["metadata"]["namespace"], dep["metadata"]["name"]
    have = owned_pods(state, store, dep)
    want = dep["spec"]["replicas"]
    created = deleted = 0
    for _ in range(want - len(have)):
        pod_name = f"{name}-{secrets.token_hex(3)}"
        doc = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": pod_name, "namespace": ns, "labels": dep["spec"]["template"]["metadata"]["labels"]},
               "spec": dep["spec"]["template"]["spec"]}
        pod = parse_pod(doc, f"deployment/{name}", ns)
        pods_mod.create_pod(state, store, pod, owner={"kind": "Deployment", "name": name, "apiVersion": "apps/v1"})
        created += 1
    for p in sorted(have, key=lambda p: p["metadata"]["creationTimestamp"], reverse=True)[: max(0, len(have) - want)]:
        pods_mod.delete_pod(state, store, ns, p["metadata"]["name"])
        deleted += 1
    return created, deleted


def apply_deployment(state: LabState, store: Store, dep: dict) -> str:
    key = deployment_key(dep["metadata"]["namespace"], dep["metadata"]["name"])
    kv = store.get(key)
    previous = json.loads(kv.value) if kv else None
    store.put(key, json.dumps(dep))
    created, deleted = reconcile_deployment(state, store, dep)
    if previous is None:
        return "created"
    return "configured" if previous != dep or created or deleted else "unchanged"


def scale(state: LabState, store: Store, namespace: str, name: str, replicas: int) -> bool:
    kv = store.get(deployment_key(namespace, name))
    if kv is None:
        return False
    dep = json.loads(kv.value)
    dep["spec"]["replicas"] = replicas
    store.put(kv.key, json.dumps(dep))
    reconcile_deployment(state, store, dep)
    return True


def delete_deployment(state: LabState, store: Store, namespace: str, name: str) -> bool:
    kv = store.get(deployment_key(namespace, name))
    if kv is None:
        return False
    dep = json.loads(kv.value)
    dep["spec"]["replicas"] = 0
    reconcile_deployment(state, store, dep)
    store.delete(kv.key)
    return True
