"""EndpointSlices from Services and Pods (what kube-controller-manager's controller computes).

Each endpoint carries the three conditions of discovery.k8s.io/v1 (Kubernetes >= 1.26):
`serving` is the pod's Ready condition as the kubelet last reported it, `terminating` is set
once the pod has a deletionTimestamp, and `ready` is serving and not terminating (always True
when the Service has publishNotReadyAddresses). A pod is listed when it has an IP, is not
finished (Succeeded/Failed) and is ready or terminating; kube-proxy sends new connections to
ready endpoints and, when a service has none, to the serving terminating ones
(podnet.proxy.maps.usable_endpoints).

Deterministic: the same inputs give the same JSON, so several agents computing it at once
converge (the first write wins, the others find nothing to change).
"""

from __future__ import annotations

import json

from ..api import stored
from ..api.keys import ENDPOINT_SLICES

TERMINAL_PHASES = ("Succeeded", "Failed")


def selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _usable(pod: object) -> bool:
    """A pod shaped well enough to be an endpoint (a stored value may be anything)."""
    import ipaddress

    try:
        meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}  # type: ignore[index]
        ipaddress.IPv4Address(status["podIP"])
        labels = meta.get("labels") or {}
        return (isinstance(meta.get("namespace"), str) and isinstance(meta.get("name"), str)
                and isinstance(labels, dict) and all(isinstance(v, str) for v in labels.values())
                and isinstance(spec.get("nodeName", ""), (str, type(None)))
                and isinstance(spec.get("containers", []), list) and all(isinstance(c, dict) for c in spec.get("containers", []))
                and all(isinstance(c.get("ports") or [], list) and all(isinstance(p, dict) for p in c.get("ports") or [])
                        for c in spec.get("containers", [])))
    except (KeyError, TypeError, ValueError, AttributeError):
        return False


def ready_condition(pod: dict) -> bool:
    """The pod's Ready condition is True, as last reported, whether or not the pod is being
    deleted (api.pod.is_ready says False for a pod being deleted; an endpoint's `serving` is this)."""
    status = pod.get("status") or {}
    return any(isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True"
               for c in status.get("conditions") or [])


def pod_ready(pod: dict) -> bool:
    """Ready to take new connections: Ready, with an IP, not being deleted."""
    return bool((pod.get("status") or {}).get("podIP")) and ready_condition(pod) \
        and not (pod.get("metadata") or {}).get("deletionTimestamp")


def endpoint_conditions(pod: dict, publish_not_ready: bool = False) -> dict | None:
    """{ready, serving, terminating} as the EndpointSlice controller writes them for one pod,
    or None when the pod is not listed: finished (Succeeded/Failed), or neither Ready nor
    terminating (unless the service publishes not-ready addresses, which lists every pod with
    ready True, as Kubernetes does)."""
    if (pod.get("status") or {}).get("phase") in TERMINAL_PHASES:
        return None
    serving = ready_condition(pod)
    terminating = bool((pod.get("metadata") or {}).get("deletionTimestamp"))
    if not (serving or terminating or publish_not_ready):
        return None
    return {"ready": bool(publish_not_ready) or (serving and not terminating), "serving": serving, "terminating": terminating}


def resolve_port(pod: dict, target, protocol: str) -> int | None:
    """A service port's targetPort for one pod: a number as is, a name through the pod's ports."""
    if isinstance(target, int):
        return target
    for c in pod.get("spec", {}).get("containers", []):
        for p in c.get("ports", []) or []:
            if p.get("name") == target and p.get("protocol", "TCP") == protocol:
                port = p.get("containerPort")
                return port if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536 else None
    return None


def compute(svc: dict, pods: list[dict]) -> dict | None:
    """The EndpointSlice List for a service, or None when it has no selector (or is ExternalName)."""
    spec = svc["spec"]
    if spec["type"] == "ExternalName" or not spec.get("selector"):
        return None
    ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
    publish_not_ready = spec.get("publishNotReadyAddresses") is True
    groups: dict[tuple, list[dict]] = {}
    for pod in sorted((p for p in pods if _usable(p)), key=lambda p: p["status"]["podIP"]):
        if pod["metadata"]["namespace"] != ns or not selects(spec["selector"], pod["metadata"].get("labels") or {}):
            continue
        conditions = endpoint_conditions(pod, publish_not_ready)
        if conditions is None:
            continue
        ports = []
        for sp in spec.get("ports", []):
            resolved = resolve_port(pod, sp["targetPort"], sp["protocol"])
            if resolved is not None:
                ports.append((sp["name"], resolved, sp["protocol"]))
        endpoint = {"addresses": [pod["status"]["podIP"]], "conditions": conditions,
                    "nodeName": pod["spec"].get("nodeName") or "",
                    "targetRef": {"kind": "Pod", "namespace": ns, "name": pod["metadata"]["name"]}}
        hostname = pod["spec"].get("hostname")
        if isinstance(hostname, str) and hostname and pod["spec"].get("subdomain") == name:
            endpoint["hostname"] = hostname
        groups.setdefault(tuple(ports), []).append(endpoint)
    items = []
    for i, (ports, endpoints) in enumerate(sorted(groups.items())):
        items.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                      "metadata": {"name": f"{name}-{i}", "namespace": ns, "labels": {"kubernetes.io/service-name": name}},
                      "addressType": "IPv4",
                      "endpoints": endpoints,
                      "ports": [{"name": n, "port": p, "protocol": pr} for n, p, pr in ports]})
    return {"apiVersion": "v1", "kind": "List", "items": items}


def key(namespace: str, name: str) -> str:
    return f"{ENDPOINT_SLICES}{namespace}/{name}"


def dumps(obj: dict) -> str:
    return json.dumps(obj, sort_keys=True)


def compute_all(services: list[dict], pods: list[dict]) -> tuple[dict[tuple[str, str], dict], list[str]]:
    """EndpointSlice lists per (namespace, name) for every service, and the objects left out:
    a pod or service too malformed to compute with is found and skipped, never stopping the rest."""
    skipped: list[str] = []
    slices: dict[tuple[str, str], dict] = {}
    for svc in services:
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        try:
            computed = compute(svc, pods)
        except Exception:  # noqa: BLE001 - a malformed pod or service: find it, skip it
            try:
                compute(svc, [])
            except Exception:  # noqa: BLE001 - the service itself
                skipped.append(f"service {ns}/{name}")
                continue
            pods, culprits = stored.partition(pods, lambda p, svc=svc: compute(svc, [p]))
            skipped += [f"pod {stored.ident(p)}" for p in culprits]
            try:
                computed = compute(svc, pods)
            except Exception:  # noqa: BLE001
                skipped.append(f"service {ns}/{name}")
                continue
        if computed is not None:
            slices[(ns, name)] = computed
    return slices, skipped
