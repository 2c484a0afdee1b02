"""NetworkPolicies and Namespaces in the lab: stored objects the node agents enforce."""

from __future__ import annotations

import json
import os
import time

from ..api.keys import DEPLOYMENTS, NAMESPACES, NETWORK_POLICIES, PODS, SERVICES
from ..policy.world import namespace_key, network_policy_key
from ..store import Store
from . import pods as pods_mod
from . import workloads
from .state import LabState

SYSTEM_NAMESPACES = ("default", "kube-system")


def _put_if_changed(store: Store, key: str, obj: dict) -> str:
    kv = store.get(key)
    previous = json.loads(kv.value) if kv else None
    obj["metadata"]["creationTimestamp"] = (previous or {}).get("metadata", {}).get("creationTimestamp") or pods_mod.now()
    if previous == obj:
        return "unchanged"
    store.put(key, json.dumps(obj))
    return "configured" if previous else "created"


def apply_network_policy(store: Store, policy: dict) -> str:
    return _put_if_changed(store, network_policy_key(policy["metadata"]["namespace"], policy["metadata"]["name"]), policy)


def delete_network_policy(store: Store, namespace: str, name: str) -> bool:
    return store.delete(network_policy_key(namespace, name))


def apply_namespace(store: Store, namespace: dict) -> str:
    return _put_if_changed(store, namespace_key(namespace["metadata"]["name"]), namespace)


def list_namespaces(store: Store) -> list[dict]:
    """Stored namespaces, plus the system ones, which always exist (as in a cluster); those
    carry just the automatic name label until someone labels them."""
    stored = (json.loads(kv.value) for kv in store.list(NAMESPACES)[0])
    found = {ns["metadata"]["name"]: ns for ns in stored}
    for name in set(SYSTEM_NAMESPACES) - set(found):
        found[name] = {"apiVersion": "v1", "kind": "Namespace",
                       "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}}}
    return [found[n] for n in sorted(found)]


def namespace_exists(store: Store, name: str) -> bool:
    return name in SYSTEM_NAMESPACES or store.get(namespace_key(name)) is not None


def delete_namespace(state: LabState, store: Store, name: str) -> bool:
    """Delete a namespace and everything in it (deployments, pods, services, policies), as the API
    server's namespace controller does. False if neither it nor anything in it exists."""
    existed = store.delete(namespace_key(name))
    for kv in store.list(f"{DEPLOYMENTS}{name}/")[0]:
        existed = workloads.delete_deployment(state, store, name, kv.key.rsplit("/", 1)[1]) or existed
    for kv in store.list(f"{PODS}{name}/")[0]:
        existed = pods_mod.delete_pod(state, store, name, kv.key.rsplit("/", 1)[1]) or existed
    for kv in store.list(f"{SERVICES}{name}/")[0]:
        existed = workloads.delete_service(store, name, kv.key.rsplit("/", 1)[1]) or existed
    for kv in store.list(f"{NETWORK_POLICIES}{name}/")[0]:
        existed = store.delete(kv.key) or existed
    return existed


def enforced_revisions(state: LabState) -> dict[str, int]:
    """The store revision each node's agent has enforced policy up to (0: not reported yet)."""
    out = {}
    for node in state.nodes:
        try:
            with open(os.path.join(state.node_dir(node.name), "policy-status.json")) as f:
                out[node.name] = int(json.load(f)["revision"])
        except (OSError, ValueError, KeyError):
            out[node.name] = 0
    return out


def wait_enforced(state: LabState, revision: int, timeout: float = 5.0) -> list[str]:
    """Wait until every node enforces policy as of store `revision`; the nodes still behind."""
    deadline = time.monotonic() + timeout
    while True:
        behind = [n for n, r in enforced_revisions(state).items() if r < revision]
        if not behind or time.monotonic() >= deadline:
            return behind
        time.sleep(0.02)
