"""The lab's Ingress controller, set up as the ingress-nginx manifests set it up: namespace
ingress-nginx, IngressClass `nginx` (the default class), the controller as a pod running
`podnet ingress-controller` (a real nginx inside it), and a LoadBalancer Service in front of it,
so a client outside the cluster (the underlay) reaches the Ingresses at its address:

    ip netns exec pn-<lab>-u curl -H 'Host: foo.example' http://<address>/
"""

from __future__ import annotations

import os
import shutil
import sys

from ..api.ingress import parse_ingress_class
from ..api.networkpolicy import parse_namespace
from ..api.pod import parse_pod
from ..api.service import parse_service
from ..apiserver import objects
from ..store import open_store
from . import pods as pods_mod
from . import workloads
from .state import LabError, LabState

NAMESPACE = "ingress-nginx"
NAME = "ingress-nginx-controller"
LABELS = {"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller"}
WORK_DIR = "ingress"   # in the lab's directory: nginx's prefix (config, certificates, logs)


def work_dir(state: LabState) -> str:
    return os.path.join(state.directory, WORK_DIR)


def manifests(state: LabState, node: str) -> list[dict]:
    """The objects, parsed as `podnet apply` would: namespace, class, Service, controller pod."""
    command = [sys.executable, "-m", "podnet.cli.main", "ingress-controller", "--store", state.store_url,
               "--work-dir", work_dir(state), "--publish-service", f"{NAMESPACE}/{NAME}"]
    health = {"httpGet": {"host": "127.0.0.1", "port": 10254, "path": "/healthz"}, "periodSeconds": 1,
              "failureThreshold": 3}
    return [
        parse_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}, "lab"),
        parse_ingress_class({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                             "metadata": {"name": "nginx", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
                             "spec": {"controller": "k8s.io/ingress-nginx"}}, "lab"),
        parse_service({"apiVersion": "v1", "kind": "Service", "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": LABELS},
                       "spec": {"type": "LoadBalancer", "selector": LABELS,
                                "ports": [{"name": "http", "port": 80, "targetPort": 80},
                                          {"name": "https", "port": 443, "targetPort": 443}]}}, "lab"),
        parse_pod({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": LABELS},
                   "spec": {"nodeName": node, "terminationGracePeriodSeconds": 10,
                            "containers": [{"name": "controller", "command": command,
                                            "ports": [{"name": "http", "containerPort": 80},
                                                      {"name": "https", "containerPort": 443}],
                                            "readinessProbe": health, "livenessProbe": {**health, "periodSeconds": 5}}]}},
                  "lab").to_object(),
    ]


def start(state: LabState, progress=lambda _m: None) -> str:
    """Set the controller up and wait until it serves; its address (the Service's LB IP)."""
    from .topology import store_context

    if shutil.which("nginx") is None:
        raise LabError("the Ingress controller needs nginx: apt-get install nginx (Debian's package; podnet starts it)")
    os.makedirs(work_dir(state), mode=0o700, exist_ok=True)
    node = state.nodes[0].name
    with store_context(state):
        store = open_store(state.store_url)
        try:
            *first, svc, pod = manifests(state, node)
            for obj in first:
                objects.apply(store, obj)
            workloads.apply_service(store, svc)
            objects.apply(store, pod)
            pods_mod.wait_pod(store, NAMESPACE, NAME, until=_ready, timeout=60)
            address = ",".join(i["ip"] for i in svc.get("status", {}).get("loadBalancer", {}).get("ingress", []))
        finally:
            store.close()
    progress(f"ingress: nginx controller {NAMESPACE}/{NAME} on {node}, IngressClass nginx (default), "
             f"reached at {address or svc['spec']['clusterIP']}")
    return address


def _ready(pod: dict | None) -> bool:
    return pod is not None and any(c.get("type") == "Ready" and c.get("status") == "True"
                                   for c in (pod.get("status") or {}).get("conditions") or [])
