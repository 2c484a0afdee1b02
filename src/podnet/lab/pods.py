"""Pods in the lab, the way a client sees them: written to the store through the API server,
made real by the kubelet of the node they are scheduled on, read back with the status that
kubelet reports. The helpers here wait where a test or the demo needs the pod running."""

from __future__ import annotations

import time

from ..api import kinds, stored
from ..api.keys import PODS
from ..api.pod import Pod
from ..apiserver import objects
from ..store import Store
from .state import LabError, LabState

POD = kinds.BY_KIND["Pod"]


def get_pod(store: Store, namespace: str, name: str) -> dict | None:
    return objects.get(store, POD, namespace, name)


def list_pods(state: LabState, store: Store, namespace: str = "default", all_namespaces: bool = False) -> list[dict]:
    kvs, _ = store.list(PODS if all_namespaces else f"{PODS}{namespace}/")
    return stored.decode_all(kvs)[0]


def started(pod: dict | None) -> bool:
    """The kubelet has made the pod: it has an IP and its container is past ContainerCreating
    (running, or failed to start: either way there is something to see)."""
    if pod is None:
        return False
    status = pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    return bool(status.get("podIP")) and bool(containers) and \
        "ContainerCreating" not in str(containers[0].get("state", {}).get("waiting", {}).get("reason", ""))


def wait_pod(store: Store, namespace: str, name: str, until=started, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    pod = None
    while time.monotonic() < deadline:
        pod = get_pod(store, namespace, name)
        if until(pod):
            return pod
        time.sleep(0.02)
    reason = ""
    if pod is not None:
        waiting = [c.get("state", {}).get("waiting", {}) for c in (pod.get("status") or {}).get("containerStatuses", [])]
        reason = "; ".join(f"{w.get('reason', '')}: {w.get('message', '')}" for w in waiting if w)
    raise LabError(f"pod {namespace}/{name} did not start within {timeout:g} s"
                   + (f" ({reason})" if reason else " (is its node's kubelet running?)"))


def create_pod(state: LabState, store: Store, pod: Pod, owner: dict | None = None, wait: bool = True) -> dict:
    """Write the pod (the API server schedules it when it names no node) and, unless told not
    to, wait until its kubelet has started it; the pod as stored then."""
    obj = pod.to_object()
    if owner:
        obj["metadata"]["ownerReferences"] = [owner]
    objects.apply(store, obj)
    return wait_pod(store, pod.namespace, pod.name) if wait else get_pod(store, pod.namespace, pod.name)


def delete_pod(state: LabState, store: Store, namespace: str, name: str, timeout: float = 60.0, force: bool = False) -> bool:
    """Delete a pod and wait until its kubelet has stopped and detached it (False: no such pod)."""
    if not objects.delete_pod(store, namespace, name, force=force):
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if get_pod(store, namespace, name) is None:
            return True
        time.sleep(0.02)
    raise LabError(f"pod {namespace}/{name} is still terminating after {timeout:g} s (is its node's kubelet running?)")
