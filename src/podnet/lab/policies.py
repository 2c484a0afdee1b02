"""NetworkPolicies and Namespaces in the lab (written through the API server; the node agents
enforce them), and waiting until every agent enforces the latest ones."""

from __future__ import annotations

import json
import os
import time

from ..api import kinds
from ..api.stored import decode_all
from ..api.keys import NAMESPACES
from ..apiserver import objects
from ..apiserver.objects import SYSTEM_NAMESPACES, namespace_exists  # noqa: F401 - the lab's callers use them
from ..store import Store
from .state import LabState

NETWORK_POLICY, NAMESPACE = kinds.BY_KIND["NetworkPolicy"], kinds.BY_KIND["Namespace"]


def apply_network_policy(store: Store, policy: dict) -> str:
    return objects.apply(store, policy)


def apply_namespace(store: Store, namespace: dict) -> str:
    return objects.apply(store, namespace)


def list_namespaces(store: Store) -> list[dict]:
    """Stored namespaces, plus the system ones, which always exist (as in a cluster); those
    carry just the automatic name label until someone labels them."""
    found = {ns["metadata"]["name"]: ns for ns in decode_all(store.list(NAMESPACES)[0], namespaced=False)[0]}
    for name in set(SYSTEM_NAMESPACES) - set(found):
        found[name] = {"apiVersion": "v1", "kind": "Namespace",
                       "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
                       "status": {"phase": "Active"}}
    return [found[n] for n in sorted(found)]


def delete_namespace(state: LabState, store: Store, name: str) -> bool:
    """Delete a namespace and everything in it, as the API server's namespace controller does."""
    return objects.delete(store, NAMESPACE, "", name)


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
