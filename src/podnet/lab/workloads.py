"""Services and Deployments in the lab, through the API server: a Service gets its addresses
when it is written; a Deployment's replicas are made by the controller manager."""

from __future__ import annotations

from ..api import kinds
from ..apiserver import objects
from ..store import Store
from .state import LabState

SERVICE, DEPLOYMENT = kinds.BY_KIND["Service"], kinds.BY_KIND["Deployment"]


def apply_service(store: Store, svc: dict) -> str:
    """Write a parsed Service; it comes back (in `svc`) with its ClusterIP and ports filled in."""
    result = objects.apply(store, svc)
    current = objects.get(store, SERVICE, svc["metadata"]["namespace"], svc["metadata"]["name"])
    if current is not None:
        svc.clear()
        svc.update(current)
    return result


def delete_service(store: Store, namespace: str, name: str) -> bool:
    return objects.delete(store, SERVICE, namespace, name)


def owned_pods(state: LabState, store: Store, dep: dict) -> list[dict]:
    return objects.owned_pods(store, dep["metadata"]["namespace"], dep["metadata"]["name"])


def apply_deployment(state: LabState, store: Store, dep: dict) -> str:
    return objects.apply(store, dep)


def scale(state: LabState, store: Store, namespace: str, name: str, replicas: int) -> bool:
    try:
        objects.scale(store, namespace, name, replicas)
    except objects.NotFound:
        return False
    return True


def delete_deployment(state: LabState, store: Store, namespace: str, name: str) -> bool:
    return objects.delete(store, DEPLOYMENT, namespace, name)
