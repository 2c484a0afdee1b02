"""One topology model from live state: the API objects in the store, and what the kernel of every
node's and pod's network namespace says (`ip -j`, `bridge -j`; reading only, nothing is changed).

Two steps, so the second can be tested without root: `read_store` / `read_netns` gather the raw
state, and `assemble` (pure) turns it into a `Topology`, resolving who connects to whom:

- a veth's peer from the kernel's own answer (`link_netnsid` named by `ip netns list-id`, then
  `link_index`), never from interface names, which mean nothing across namespaces;
- a VXLAN device's remote VTEPs from its FDB (`dst` = the remote node's underlay address);
- a Service's endpoints from its EndpointSlices, a NetworkPolicy's pods from its podSelector.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..api import keys, stored
from ..policy.evaluate import selector_matches
from ..store import Compacted
from .model import (
    Device,
    Endpoint,
    FdbEntry,
    Link,
    Netns,
    Node,
    Pod,
    Policy,
    Service,
    Topology,
    device_id,
    netns_id,
    node_id,
    pod_id,
    policy_id,
    service_id,
)

# what changes the picture (node heartbeats change nothing in the model: an unchanged model is not pushed)
WATCHED = (keys.PODS, keys.SERVICES, keys.ENDPOINT_SLICES, keys.NETWORK_POLICIES, keys.NODES, keys.SUBNETS)
NETNS_ANNOTATION = "podnet.io/netns"


@dataclass(frozen=True)
class NodeRef:
    """A node as whoever runs it knows it (the lab state): its name and network namespace."""
    name: str
    netns: str
    ip: str = ""


@dataclass
class Reading:
    """One namespace's kernel state, as `ip -j` prints it."""
    links: list[dict] = field(default_factory=list)     # ip -j -d addr show: links with their addresses
    routes: list[dict] = field(default_factory=list)    # ip -j route show
    fdb: list[dict] = field(default_factory=list)       # bridge -j fdb show (nodes only)
    nsids: dict[int, str] = field(default_factory=dict)  # ip -j netns list-id: peer namespace ids -> names
    error: str = ""


@dataclass
class Objects:
    """The API objects the model is made of, as stored."""
    nodes: list[dict] = field(default_factory=list)
    pods: list[dict] = field(default_factory=list)
    services: list[dict] = field(default_factory=list)
    slices: dict[str, list[dict]] = field(default_factory=dict)   # "<ns>/<service>" -> EndpointSlices
    policies: list[dict] = field(default_factory=list)


Runner = Callable[[list[str]], str]


def _run(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout


def read_netns(netns: str, node: bool, run: Runner = _run) -> Reading:
    """Read one namespace; a namespace that vanished meanwhile (a pod being deleted) gives a
    Reading with `error` set instead of failing the whole picture."""
    try:
        reading = Reading(links=_json(run(["ip", "-n", netns, "-j", "-d", "addr", "show"])),
                          routes=_json(run(["ip", "-n", netns, "-j", "route", "show"])))
        if node:
            reading.fdb = _json(run(["bridge", "-n", netns, "-j", "fdb", "show"]))
            reading.nsids = {int(e["nsid"]): e["name"] for e in _json(run(["ip", "-n", netns, "-j", "netns", "list-id"]))
                             if "name" in e and "nsid" in e}
        return reading
    except subprocess.CalledProcessError as e:
        return Reading(error=(e.stderr or str(e)).strip().splitlines()[-1] if (e.stderr or "").strip() else str(e))
    except (OSError, ValueError, subprocess.TimeoutExpired) as e:
        return Reading(error=str(e))


def _json(text: str) -> list[dict]:
    value = json.loads(text or "[]")
    return value if isinstance(value, list) else []


def read_store(store) -> tuple[Objects, int]:
    """The objects, and the store revision they reflect (every change up to it, maybe more)."""
    revision = 0
    lists: dict[str, list] = {}
    for prefix in WATCHED[:-1]:
        kvs, rev = store.list(prefix)
        revision = rev if not revision else min(revision, rev)
        if prefix == keys.ENDPOINT_SLICES:
            lists[prefix] = kvs
        else:
            lists[prefix] = stored.decode_all(kvs, namespaced=prefix != keys.NODES)[0]
    slices = {}
    for kv in lists[keys.ENDPOINT_SLICES]:
        try:
            items = json.loads(kv.value).get("items", [])
        except (ValueError, AttributeError):
            continue
        slices[kv.key[len(keys.ENDPOINT_SLICES):]] = [s for s in items if isinstance(s, dict)]
    return Objects(nodes=lists[keys.NODES], pods=lists[keys.PODS], services=lists[keys.SERVICES], slices=slices,
                   policies=lists[keys.NETWORK_POLICIES]), revision


def pod_netns(pod: dict) -> str:
    """The name of a pod's network namespace (the kubelet's annotation holds a name or a path)."""
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(NETNS_ANNOTATION, "")
    return os.path.basename(value) if isinstance(value, str) else ""


def collect(store, nodes: list[NodeRef], cluster: dict[str, str] | None = None, run: Runner = _run) -> Topology:
    objects, _ = read_store(store)
    readings: dict[str, Reading] = {}
    for ref in nodes:
        if ref.netns:
            readings[ref.netns] = read_netns(ref.netns, node=True, run=run)
    for pod in objects.pods:
        ns = pod_netns(pod)
        if ns and ns not in readings and not (pod.get("spec") or {}).get("hostNetwork"):
            readings[ns] = read_netns(ns, node=False, run=run)
    return assemble(nodes, objects, readings, cluster or {})


# ---------------------------------------------------------------- assembling (pure)


def _ready(obj: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [] if isinstance(c, dict))


def _internal_ip(node: dict) -> str:
    return next((a.get("address", "") for a in (node.get("status") or {}).get("addresses") or []
                 if isinstance(a, dict) and a.get("type") == "InternalIP"), "")


def _nodes(refs: list[NodeRef], objects: Objects) -> list[Node]:
    stored_nodes = {n["metadata"]["name"]: n for n in objects.nodes}
    out = []
    for name in sorted(set(stored_nodes) | {r.name for r in refs}):
        obj = stored_nodes.get(name, {})
        ref = next((r for r in refs if r.name == name), None)
        out.append(Node(id=node_id(name), name=name, ip=_internal_ip(obj) or (ref.ip if ref else ""),
                        netns=ref.netns if ref else "", pod_cidr=str((obj.get("spec") or {}).get("podCIDR", "")),
                        ready=_ready(obj)))
    return out


def _pods(objects: Objects) -> list[Pod]:
    out = []
    for obj in objects.pods:
        meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
        out.append(Pod(id=pod_id(meta["namespace"], meta["name"]), namespace=meta["namespace"], name=meta["name"],
                       ip=str(status.get("podIP") or ""), node=str(spec.get("nodeName") or ""), netns=pod_netns(obj),
                       labels={str(k): str(v) for k, v in (meta.get("labels") or {}).items()}, ready=_ready(obj),
                       phase=str(status.get("phase") or "Pending"), host_network=spec.get("hostNetwork") is True))
    return sorted(out, key=lambda p: (p.namespace, p.name))


def _port_text(p: dict) -> str:
    node_port = f":{p['nodePort']}" if p.get("nodePort") else ""
    return f"{p.get('port')}{node_port}/{p.get('protocol', 'TCP')}->{p.get('targetPort', p.get('port'))}"


def _services(objects: Objects, pods: list[Pod]) -> list[Service]:
    by_ip = {p.ip: p.id for p in pods if p.ip and not p.host_network}
    out = []
    for obj in objects.services:
        meta, spec = obj["metadata"], obj.get("spec") or {}
        key = f"{meta['namespace']}/{meta['name']}"
        endpoints: dict[str, Endpoint] = {}
        for sl in objects.slices.get(key, []):
            for ep in sl.get("endpoints") or []:
                ref = ep.get("targetRef") or {}
                ready = (ep.get("conditions") or {}).get("ready") is not False
                for ip in ep.get("addresses") or []:
                    pod = pod_id(ref.get("namespace", meta["namespace"]), ref["name"]) \
                        if ref.get("kind") == "Pod" and ref.get("name") else by_ip.get(ip, "")
                    endpoints[ip] = Endpoint(ip=str(ip), ready=ready, pod=pod)
        out.append(Service(id=service_id(meta["namespace"], meta["name"]), namespace=meta["namespace"], name=meta["name"],
                           type=str(spec.get("type", "ClusterIP")), cluster_ip=str(spec.get("clusterIP") or ""),
                           ports=[_port_text(p) for p in spec.get("ports") or [] if isinstance(p, dict)],
                           endpoints=[endpoints[ip] for ip in sorted(endpoints)]))
    return sorted(out, key=lambda s: (s.namespace, s.name))


def _policies(objects: Objects, pods: list[Pod]) -> list[Policy]:
    """A policy selects the non-hostNetwork pods of its namespace its podSelector matches
    (as `podnet.policy` enforces it)."""
    out = []
    for obj in objects.policies:
        meta, spec = obj["metadata"], obj.get("spec") or {}
        selector = spec.get("podSelector") or {}
        try:
            selected = [p.id for p in pods if p.namespace == meta["namespace"] and not p.host_network
                        and selector_matches(selector, p.labels)]
        except (KeyError, TypeError, AttributeError):
            selected = []
        out.append(Policy(id=policy_id(meta["namespace"], meta["name"]), namespace=meta["namespace"], name=meta["name"],
                          policy_types=[str(t) for t in spec.get("policyTypes") or []], selects=selected))
    return sorted(out, key=lambda p: (p.namespace, p.name))


def route_text(r: dict) -> str:
    """A route as `ip route` prints it."""
    words = [str(r.get("dst", ""))]
    for key, word in (("gateway", "via"), ("dev", "dev"), ("protocol", "proto"), ("scope", "scope"), ("prefsrc", "src"),
                      ("metric", "metric")):
        if r.get(key) not in (None, ""):
            words += [word, str(r[key])]
    return " ".join(words + [str(f) for f in r.get("flags") or []])


def _devices(owner: str, netns: str, reading: Reading, node_by_ip: dict[str, str]) -> list[Device]:
    out = []
    for link in reading.links:
        name = link.get("ifname", "")
        if not name or link.get("link_type") == "loopback":
            continue
        info = link.get("linkinfo") or {}
        data = info.get("info_data") or {}
        kind = str(info.get("info_kind") or "device")
        dev = Device(id=device_id(owner, name), owner=owner, netns=netns, name=name, kind=kind,
                     ifindex=int(link.get("ifindex", 0)), mac=str(link.get("address", "")), mtu=int(link.get("mtu", 0)),
                     up="UP" in (link.get("flags") or []),
                     addresses=[f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info") or []
                                if a.get("local") and a.get("scope") != "link"],
                     master=device_id(owner, link["master"]) if link.get("master") else "")
        if kind == "vxlan":
            dev.vni, dev.port, dev.local = data.get("id"), data.get("port"), str(data.get("local", ""))
            seen = set()
            for e in reading.fdb:
                if e.get("ifname") == name and e.get("dst") and (e.get("mac"), e["dst"]) not in seen:
                    seen.add((e.get("mac"), e["dst"]))
                    dev.fdb.append(FdbEntry(mac=str(e.get("mac", "")), dst=str(e["dst"]), node=node_by_ip.get(e["dst"], "")))
        out.append(dev)
    return out


def _pair_veths(devices: list[Device], readings: dict[str, Reading], raw: dict[str, dict]) -> None:
    """Set `peer` on both ends of every veth pair whose other end was read. The end whose
    namespace knows the peer's nsid (a node's host side) names it exactly; the other end is set
    from it."""
    by_ns_index = {(d.netns, d.ifindex): d for d in devices}
    for dev in devices:
        link = raw.get(dev.id) or {}
        if dev.kind != "veth" or dev.peer or "link_index" not in link or "link_netnsid" not in link:
            continue
        peer_ns = readings[dev.netns].nsids.get(int(link["link_netnsid"]))
        peer = by_ns_index.get((peer_ns, int(link["link_index"]))) if peer_ns else None
        if peer is not None and peer.kind == "veth" and int((raw.get(peer.id) or {}).get("link_index", -1)) == dev.ifindex:
            dev.peer, peer.peer = peer.id, dev.id


def assemble(refs: list[NodeRef], objects: Objects, readings: dict[str, Reading], cluster: dict[str, str]) -> Topology:
    nodes = _nodes(refs, objects)
    pods = _pods(objects)
    node_by_ip = {n.ip: n.id for n in nodes if n.ip}
    owners = [(n.id, n.netns) for n in nodes if n.netns] + [(p.id, p.netns) for p in pods if p.netns and not p.host_network]
    devices: list[Device] = []
    namespaces: list[Netns] = []
    raw: dict[str, dict] = {}
    for owner, ns in owners:
        reading = readings.get(ns)
        if reading is None:
            continue
        namespaces.append(Netns(id=netns_id(ns), name=ns, owner=owner, routes=[route_text(r) for r in reading.routes],
                                error=reading.error))
        devs = _devices(owner, ns, reading, node_by_ip)
        raw.update({device_id(owner, lk.get("ifname", "")): lk for lk in reading.links})
        devices += devs
    _pair_veths(devices, readings, raw)
    services = _services(objects, pods)
    policies = _policies(objects, pods)
    return Topology(nodes=nodes, pods=pods, services=services, policies=policies, devices=devices,
                    namespaces=namespaces, links=_links(devices, services, policies), cluster=dict(cluster))


def _links(devices: list[Device], services: list[Service], policies: list[Policy]) -> list[Link]:
    by_id = {d.id: d for d in devices}
    links: list[Link] = []
    for d in devices:
        # a veth pair once, from the pod's end (or the smaller id between two node devices)
        if d.peer in by_id and (d.owner.startswith("pod/") or (not by_id[d.peer].owner.startswith("pod/") and d.id < d.peer)):
            links.append(Link(d.id, d.peer, "veth"))
        if d.master and by_id.get(d.master) is not None and by_id[d.master].kind == "bridge":
            links.append(Link(d.id, d.master, "bridge-port"))
        done = set()
        for e in d.fdb:
            if not e.node or e.node in done or e.node == d.owner:
                continue
            done.add(e.node)
            remote = next((r for r in devices if r.owner == e.node and r.kind == "vxlan" and r.vni == d.vni), None)
            links.append(Link(d.id, remote.id if remote else e.node, "vxlan", f"VNI {d.vni} -> {e.dst}"))
    for s in services:
        for ep in s.endpoints:
            if ep.pod:
                links.append(Link(s.id, ep.pod, "endpoint", "" if ep.ready else "not ready"))
    for p in policies:
        links += [Link(p.id, pod, "selects") for pod in p.selects]
    return links


# ---------------------------------------------------------------- following changes


def wait_for_change(store, after: int, timeout: float) -> tuple[bool, int]:
    """Wait up to `timeout` s for a change under the watched prefixes after revision `after`:
    (whether one came, the revision to watch from next). A compacted history counts as a
    change: the caller reads everything again."""
    deadline = time.monotonic() + timeout
    revision = after
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False, revision
        try:
            events = store.watch(keys.ROOT, revision, left)
        except Compacted:
            return True, store.revision()
        if not events:
            return False, revision
        revision = max(e.revision for e in events)
        if any(e.key.startswith(WATCHED) for e in events):
            return True, revision
