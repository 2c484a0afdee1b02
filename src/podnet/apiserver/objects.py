"""Creating, updating and deleting API objects in the store, as the API server does.

On every write: the namespace must exist (admission), creationTimestamp and uid are set once
and kept, and what a kind needs is added: a Service gets its ClusterIP, NodePorts and
LoadBalancer address (`allocate`), a Pod is scheduled onto a node when it names none, a
Namespace gets its automatic name label. A Pod's spec cannot change once created (as in
Kubernetes: delete and re-create it); its labels and annotations can. Every write is a
create-if-absent or a compare-and-set, retried when someone else wrote in between.

Deletion is graceful where Kubernetes makes it so: a Pod is only marked (deletionTimestamp)
and its node's kubelet stops it, detaches it and removes the object; deleting a Deployment
or a Namespace deletes what it owns or contains the same way.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import time
import uuid

from ..api import ippool, keys, kinds, stored
from ..api.errors import ValidationError
from ..store import Store
from .allocate import allocate, release_all

SYSTEM_NAMESPACES = ("default", "kube-system")
MANAGED = ("creationTimestamp", "uid", "deletionTimestamp", "deletionGracePeriodSeconds", "ownerReferences", "generation")


class NotFound(LookupError):
    def __init__(self, plural: str, name: str, namespace: str = "") -> None:
        self.plural, self.name, self.namespace = plural, name, namespace
        super().__init__(f'{plural} "{name}" not found' + (f" in namespace {namespace}" if namespace else ""))


class Conflict(RuntimeError):
    pass


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def namespace_exists(store: Store, name: str) -> bool:
    return name in SYSTEM_NAMESPACES or store.get(f"{keys.NAMESPACES}{name}") is not None


def get(store: Store, kind: kinds.Kind, namespace: str, name: str) -> dict | None:
    kv = store.get(kind.key(namespace, name))
    return stored.decode(kv.value, kind.namespaced) if kv else None


def list_objects(store: Store, kind: kinds.Kind, namespace: str | None = None) -> tuple[list[dict], list[str]]:
    """(objects, keys of stored values that do not decode); every namespace when None."""
    prefix = kind.prefix if namespace is None or not kind.namespaced else f"{kind.prefix}{namespace}/"
    return stored.decode_all(store.list(prefix)[0], kind.namespaced)


# -- writes ---------------------------------------------------------------------------------------
def apply(store: Store, obj: dict, created_namespaces: frozenset[str] = frozenset()) -> str:
    """Create or update `obj` (already parsed: the stored form of its kind); "created",
    "configured" or "unchanged". ValidationError names what is wrong, NotFound a missing
    namespace. `created_namespaces`: namespaces this same apply creates first."""
    kind = kinds.BY_KIND[obj["kind"]]
    if not kind.writable:
        raise ValidationError("kind", f"{kind.kind} objects are written by podnet itself, not applied")
    meta = obj["metadata"]
    namespace = meta.get("namespace", "") if kind.namespaced else ""
    if kind.namespaced and namespace not in created_namespaces and not namespace_exists(store, namespace):
        raise NotFound("namespaces", namespace)
    key = kind.key(namespace, meta["name"])
    for _ in range(10):
        kv = store.get(key)
        previous = stored.decode(kv.value, kind.namespaced) if kv else None
        if previous is not None and previous["metadata"].get("deletionTimestamp"):
            raise ValidationError("metadata.name", f"{kind.singular} {meta['name']} is being deleted; apply it again once it "
                                                   "is gone")
        new = _prepare(store, kind, copy.deepcopy(obj), previous)
        if previous is not None and new == previous:
            return "unchanged"
        text = json.dumps(new)
        if (store.create(key, text) if kv is None else store.cas(key, text, kv.mod_revision)):
            return "created" if kv is None else "configured"
    raise Conflict(f"{key}: changed by someone else on every try")


def _prepare(store: Store, kind: kinds.Kind, obj: dict, previous: dict | None) -> dict:
    meta = obj["metadata"]
    old_meta = (previous or {}).get("metadata", {})
    for field in MANAGED:
        if field in old_meta:
            meta[field] = old_meta[field]
        else:
            meta.pop(field, None)
    meta.setdefault("creationTimestamp", now())
    meta.setdefault("uid", str(uuid.uuid4()))
    if kind.kind == "Namespace":
        obj["status"] = {"phase": "Active"}
    elif kind.kind == "Service":
        obj = allocate(store, obj, previous)
    elif kind.kind == "Deployment":
        obj["status"] = (previous or {}).get("status", {})
    elif kind.kind == "Ingress" and previous is not None:
        obj["status"] = previous.get("status", obj.get("status"))  # written by the Ingress controller
        meta["generation"] = old_meta.get("generation", 0) + (previous is None or previous["spec"] != obj["spec"])
    elif kind.kind == "Pod":
        obj = _prepare_pod(store, obj, previous)
    elif kind.kind == "IPPool":
        _admit_pool(store, obj, previous)
    return obj


def _pool_unused(store: Store, pool: dict | None) -> None:
    """A pool whose addresses are in use is not deleted: its pods would lose their routes. As
    with Calico: disable it, move the pods, then delete it."""
    if pool is None:
        return
    net = ipaddress.ip_network(pool["spec"]["cidr"])
    used = 0
    for kv in store.list(keys.IPAM_BLOCKS)[0]:
        try:
            block = json.loads(kv.value)
            if ipaddress.ip_network(block["cidr"]).subnet_of(net):
                used += len(block.get("allocations") or {})
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    if used:
        raise ValidationError("metadata.name", f"IPPool {pool['metadata']['name']} still has {used} addresses in use (pods, "
                                               "and a VXLAN tunnel address per node): set spec.disabled: true, move its "
                                               "pods, then delete it")


def _admit_pool(store: Store, pool: dict, previous: dict | None) -> None:
    """cidr and blockSize never change; pools do not overlap and stay in the cluster network."""
    others, _ = list_objects(store, kinds.BY_KIND["IPPool"])
    kv = store.get(keys.CONFIG)
    network = None
    if kv is not None:
        try:
            network = json.loads(kv.value).get("Network")
        except (ValueError, AttributeError):
            network = None
    problem = ippool.pool_problem_with(pool, previous, others, network if isinstance(network, str) else None)
    if problem is not None:
        raise problem


def _prepare_pod(store: Store, pod: dict, previous: dict | None) -> dict:
    spec = pod["spec"]
    if previous is not None:
        old = previous["spec"]
        wanted = dict(spec)
        if not wanted.get("nodeName"):
            wanted["nodeName"] = old.get("nodeName", "")  # the scheduler's choice is not a change
        if wanted != old:
            changed = sorted(k for k in set(wanted) | set(old) if wanted.get(k) != old.get(k))
            raise ValidationError(f"spec.{changed[0]}", "a pod's spec cannot change once created, only its labels and "
                                                        "annotations: delete the pod and create it again")
        pod["spec"] = old
        annotations = {k: v for k, v in (previous["metadata"].get("annotations") or {}).items() if k.startswith("podnet.io/")}
        annotations.update(pod["metadata"].get("annotations") or {})
        if annotations:
            pod["metadata"]["annotations"] = annotations
        pod["status"] = previous.get("status", {})
        return pod
    spec["nodeName"] = schedule(store, spec.get("nodeName") or "", pod)
    pod["status"] = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True",
                                                         "lastTransitionTime": now()}]}
    return pod


def host_ports(pod: dict, strict: bool = False) -> list[tuple[int, str, str]]:
    """(port, protocol, field) of every port a pod takes on its node's addresses: each
    containerPort of a hostNetwork pod (its hostPort is its containerPort), ports[].hostPort of
    the others (when set: 0 or absent is none). `strict`: a hostPort that is not a port number
    is a ValidationError (the pod being admitted); otherwise it is ignored (a stored pod)."""
    spec = pod.get("spec") or {}
    host_network = spec.get("hostNetwork") is True
    out: list[tuple[int, str, str]] = []
    seen: set[tuple[int, str]] = set()
    for i, c in enumerate(spec.get("containers") or []):
        for j, p in enumerate((c.get("ports") or []) if isinstance(c, dict) else []):
            if not isinstance(p, dict):
                continue
            key = "containerPort" if host_network else "hostPort"
            field = f"spec.containers[{i}].ports[{j}].{key}"
            port = p.get(key)
            if port in (None, 0) and key == "hostPort":
                continue
            if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
                if strict:
                    raise ValidationError(field, f"must be a port number (1-65535), not {port!r}")
                continue
            proto = p.get("protocol") or "TCP"
            if (port, proto) not in seen:
                seen.add((port, proto))
                out.append((port, str(proto), field))
    return out


def _ports_in_use(pods: list[dict], skip: tuple[str, str]) -> dict[str, dict[tuple[int, str], tuple[str, bool]]]:
    """node -> (port, protocol) -> the pod holding it ("ns/name", whether it is hostNetwork),
    for the pods running or about to, and those still draining (a deleted pod holds its ports
    until it is gone, as the scheduler counts it); finished ones (Succeeded/Failed) and the pod
    `skip` (namespace, name) itself are left out."""
    used: dict[str, dict[tuple[int, str], tuple[str, bool]]] = {}
    for other in pods:
        try:
            meta, spec = other["metadata"], other.get("spec") or {}
            node = spec.get("nodeName")
            if (not node or (meta.get("namespace"), meta.get("name")) == skip
                    or (other.get("status") or {}).get("phase") in ("Succeeded", "Failed")):
                continue
            who = (f"{meta['namespace']}/{meta['name']}", spec.get("hostNetwork") is True)
            for port, proto, _ in host_ports(other):
                used.setdefault(node, {}).setdefault((port, proto), who)
        except (KeyError, TypeError, AttributeError):
            continue  # a malformed stored pod: it runs nowhere we could know of
    return used


def schedule(store: Store, wanted: str, pod: dict | None = None) -> str:
    """The node a new pod runs on: the one it names (which must exist), else the Ready node
    with the fewest pods (by name on a tie, so a lab is predictable). A pod taking host ports
    (hostNetwork, or ports[].hostPort) goes only where those ports are free, as the scheduler's
    NodePorts filter has it: on a node it names, a port taken there is refused."""
    nodes, _ = list_objects(store, kinds.BY_KIND["Node"])
    names = sorted(n["metadata"]["name"] for n in nodes)
    wanted_ports = host_ports(pod, strict=True) if pod is not None else []
    me = ((pod or {}).get("metadata", {}).get("namespace"), (pod or {}).get("metadata", {}).get("name"))
    if wanted:
        if wanted not in names:
            raise ValidationError("spec.nodeName", f"{wanted!r} is not a node of this cluster"
                                                   f" (nodes: {', '.join(names) or 'none yet'})")
        if wanted_ports:
            used = _ports_in_use(list_objects(store, kinds.BY_KIND["Pod"])[0], me).get(wanted, {})
            for port, proto, field in wanted_ports:
                if (port, proto) in used:
                    holder, host_network = used[(port, proto)]
                    raise ValidationError(field, f"port {port}/{proto} is already used on node {wanted} by "
                                                 f"{'hostNetwork pod' if host_network else 'pod'} {holder}")
        return wanted
    ready = [n["metadata"]["name"] for n in nodes if kinds.node_ready(n)] or names
    if not ready:
        raise ValidationError("spec.nodeName", "no node to run the pod on yet (is the cluster up?)")
    counts = {n: 0 for n in ready}
    pods = list_objects(store, kinds.BY_KIND["Pod"])[0]
    for other in pods:
        node = other.get("spec", {}).get("nodeName")
        if node in counts:
            counts[node] += 1
    free = ready
    if wanted_ports:
        used = _ports_in_use(pods, me)
        taken = {n: next(((port, proto, field) for port, proto, field in wanted_ports if (port, proto) in used.get(n, {})),
                         None) for n in ready}
        free = [n for n in ready if taken[n] is None]
        if not free:
            raise _no_free_node(wanted_ports, taken, used)
    return min(free, key=lambda n: (counts[n], n))


def _no_free_node(wanted: list[tuple[int, str, str]], taken: dict[str, tuple[int, str, str]],
                  used: dict[str, dict[tuple[int, str], tuple[str, bool]]]) -> ValidationError:
    """Why no node can take the pod: on each node, the first of its host ports taken there, and by whom."""
    blocking = [w for w in wanted if w in taken.values()]
    port, proto, field = blocking[0]
    field = field.rpartition(".")[0]  # spec.containers[i].ports[j]
    who = {n: used[n][(t[0], t[1])][0] for n, t in taken.items()}
    if len(blocking) == 1:
        where = ", ".join(f"on {n} by {who[n]}" for n in sorted(taken))
        return ValidationError(field, f"no node has port {port}/{proto} free: it is taken {where}")
    listed = ", ".join(f"{p}/{pr}" for p, pr, _ in blocking)
    where = ", ".join(f"{t[0]}/{t[1]} on {n} by {who[n]}" for n, t in sorted(taken.items()))
    return ValidationError(field, f"no node has all of ports {listed} free: taken are {where}")


def update(store: Store, kind: kinds.Kind, namespace: str, name: str, change) -> dict:
    """Read, change (a function editing the object in place), compare-and-set; retried on a
    concurrent write. The new object. NotFound when there is none."""
    key = kind.key(namespace, name)
    for _ in range(20):
        kv = store.get(key)
        obj = stored.decode(kv.value, kind.namespaced) if kv else None
        if obj is None:
            raise NotFound(kind.plural, name, namespace if kind.namespaced else "")
        change(obj)
        if store.cas(key, json.dumps(obj), kv.mod_revision):
            return obj
    raise Conflict(f"{key}: changed by someone else on every try")


def set_labels(store: Store, kind: kinds.Kind, namespace: str, name: str, labels: dict) -> dict:
    def change(obj: dict) -> None:
        if kind.kind == "Namespace":
            labels["kubernetes.io/metadata.name"] = name
        obj["metadata"]["labels"] = labels

    return update(store, kind, namespace, name, change)


def scale(store: Store, namespace: str, name: str, replicas: int) -> dict:
    def change(obj: dict) -> None:
        obj["spec"]["replicas"] = replicas
        obj["metadata"]["generation"] = obj["metadata"].get("generation", 0) + 1

    return update(store, kinds.BY_KIND["Deployment"], namespace, name, change)


# -- deletion -------------------------------------------------------------------------------------
def delete(store: Store, kind: kinds.Kind, namespace: str, name: str, grace: int = 30, force: bool = False) -> bool:
    """Delete one object (False when there is none). Pods are marked for their kubelet unless
    `force`; Deployments and Namespaces take what they own or contain along."""
    ns = namespace if kind.namespaced else ""
    if kind.kind == "Namespace" and name in SYSTEM_NAMESPACES:
        raise ValidationError("metadata.name", f'namespace "{name}" is a system namespace and cannot be deleted')
    if kind.kind == "Pod":
        return delete_pod(store, ns, name, grace, force)
    kv = store.get(kind.key(ns, name))
    if kind.kind == "IPPool" and kv is not None:
        _pool_unused(store, stored.decode(kv.value, False))
    existed = kv is not None
    if kind.kind == "Deployment":
        for pod in owned_pods(store, ns, name):
            delete_pod(store, ns, pod["metadata"]["name"], grace, force)
    if kind.kind == "Namespace":
        for inner in kinds.KINDS:
            if inner.namespaced and inner.writable:
                for obj in list_objects(store, inner, name)[0]:
                    existed = delete(store, inner, name, obj["metadata"]["name"], grace, force) or existed
    if kv is not None:
        store.delete(kv.key)
    if kind.kind == "Service":
        release_all(store, f"{ns}/{name}")
        store.delete(f"{keys.ENDPOINT_SLICES}{ns}/{name}")
    return existed


def delete_pod(store: Store, namespace: str, name: str, grace: int = 30, force: bool = False) -> bool:
    kind = kinds.BY_KIND["Pod"]
    kv = store.get(kind.key(namespace, name))
    if kv is None:
        return False
    pod = stored.decode(kv.value)
    if force or pod is None or not pod.get("spec", {}).get("nodeName"):
        store.delete(kv.key)  # nothing runs it, or the user said so: the kubelet cleans up what is left
        return True
    if pod["metadata"].get("deletionTimestamp"):
        return True

    def mark(obj: dict) -> None:
        obj["metadata"].setdefault("deletionTimestamp", now())
        obj["metadata"].setdefault("deletionGracePeriodSeconds", grace)

    try:
        update(store, kind, namespace, name, mark)
    except NotFound:
        pass
    return True


def owned_pods(store: Store, namespace: str, deployment: str) -> list[dict]:
    pods, _ = list_objects(store, kinds.BY_KIND["Pod"], namespace)
    return [p for p in pods if any(o.get("kind") == "Deployment" and o.get("name") == deployment
                                   for o in p["metadata"].get("ownerReferences", []))]


def create_owned_pod(store: Store, deployment: dict, name: str) -> str:
    """A replica of a Deployment's template, owned by it."""
    from ..api.pod import parse_pod

    ns = deployment["metadata"]["namespace"]
    template = deployment["spec"]["template"]
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": template["metadata"]["labels"]},
           "spec": template["spec"]}
    pod = parse_pod(doc, f"deployment/{deployment['metadata']['name']}", ns).to_object()
    owners = [{"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"],
               "uid": deployment["metadata"].get("uid", "")}]
    kind = kinds.BY_KIND["Pod"]
    obj = _prepare(store, kind, pod, None)
    obj["metadata"]["ownerReferences"] = owners  # set by the controller, so kept although _prepare drops it
    if not store.create(kind.key(ns, name), json.dumps(obj)):
        raise Conflict(f"pod {ns}/{name} exists already")
    return name
