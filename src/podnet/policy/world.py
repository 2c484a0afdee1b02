"""The policy World built from stored API objects: pods, namespaces, policies and nodes.

Shared by the agent (what to enforce) and `podnet probe --expect-model` (what should be seen).
"""

from __future__ import annotations

import ipaddress

from ..api import stored
from ..api.keys import NAMESPACES, NETWORK_POLICIES, NODES, PODS
from .evaluate import PodInfo, World

# events under these prefixes can change what a node enforces
WATCHED = (PODS, NAMESPACES, NETWORK_POLICIES)


def network_policy_key(namespace: str, name: str) -> str:
    return f"{NETWORK_POLICIES}{namespace}/{name}"


def namespace_key(name: str) -> str:
    return f"{NAMESPACES}{name}"


def pod_info(pod: dict) -> PodInfo | None:
    """A stored Pod as the policy code sees it; None while it has no IP, and for a pod with
    spec.hostNetwork: NetworkPolicy does not apply to those (no podSelector selects them, and
    their IP is their node's: counted as a pod it would isolate, admit or deny the node itself).
    Their traffic is the node's: allowed to the node's own pods, an ipBlock peer elsewhere."""
    if (pod.get("spec") or {}).get("hostNetwork") is True:
        return None
    ip = pod.get("status", {}).get("podIP")
    if not ip:
        return None
    ports = tuple(sorted((p.get("name", ""), p["containerPort"], p.get("protocol", "TCP"))
                         for c in pod.get("spec", {}).get("containers", []) for p in c.get("ports", []) or []
                         if "containerPort" in p))
    meta = pod["metadata"]
    return PodInfo(meta["name"], meta["namespace"], ip, pod.get("spec", {}).get("nodeName", ""),
                   tuple(sorted((meta.get("labels") or {}).items())), ports)


def node_addresses(node: dict) -> set[str]:
    """Addresses a node's own traffic to its pods comes from: its InternalIP, and its pod
    subnet's gateway (the bridge address, used when the node talks to a local pod)."""
    out = {a["address"] for a in node.get("status", {}).get("addresses", []) if a.get("type") == "InternalIP"}
    cidr = node.get("spec", {}).get("podCIDR")
    if cidr:
        out.add(str(ipaddress.ip_network(cidr, strict=False).network_address + 1))
    return out


def _safe_pod_info(pod: dict, skipped: list[str]) -> PodInfo | None:
    try:
        return pod_info(pod)
    except (KeyError, TypeError, ValueError, AttributeError):
        skipped.append(f"pod {stored.ident(pod)}")
        return None


def build_world(pods: list[dict], namespaces: list[dict], policies: list[dict], nodes: list[dict],
                skipped: list[str] | None = None) -> World:
    """The World; a pod, namespace or node too malformed to read is left out and named in
    `World.skipped` (policies are checked where they are rendered)."""
    skipped = [] if skipped is None else skipped
    infos = [i for i in (_safe_pod_info(p, skipped) for p in pods) if i is not None]
    namespaces, bad = stored.partition(namespaces, lambda n: dict(n["metadata"].get("labels") or {}))
    skipped += [f"namespace {stored.ident(n)}" for n in bad]
    nodes, bad = stored.partition(nodes, node_addresses)
    skipped += [f"node {stored.ident(n)}" for n in bad]
    ns_labels = {n["metadata"]["name"]: dict(n["metadata"].get("labels") or {}) for n in namespaces}
    for info in infos:  # a namespace that only exists through its pods still has the automatic label
        ns_labels.setdefault(info.namespace, {"kubernetes.io/metadata.name": info.namespace})
    node_ips = {n["metadata"]["name"]: node_addresses(n) for n in nodes}
    ordered = sorted(policies, key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"]))
    return World(sorted(infos, key=lambda i: (i.namespace, i.name)), ns_labels, ordered, node_ips, skipped)


def replace_policies(world: World, policies: list[dict]) -> World:
    """The same World with another set of policies."""
    return World(world.pods, world.namespaces, policies, world.node_ips, list(world.skipped))


def load_world(store) -> tuple[World, int]:
    """The World as the store holds it now, and a revision it reflects every change up to
    (the first of the reads: later ones may include more, never less)."""
    lists = {}
    revisions = []
    skipped: list[str] = []
    for prefix in (PODS, NAMESPACES, NETWORK_POLICIES, NODES):
        kvs, rev = store.list(prefix)
        lists[prefix], bad = stored.decode_all(kvs, namespaced=prefix not in (NAMESPACES, NODES))
        skipped += bad
        revisions.append(rev)
    revision = min(revisions)
    return build_world(lists[PODS], lists[NAMESPACES], lists[NETWORK_POLICIES], lists[NODES], skipped), revision
