"""The topology of a live pod network as plain data: what `podnet topo` draws and serves.

One model feeds every view (text, JSON, DOT/SVG, HTML, the live page), so they cannot disagree.
Everything has a stable id, the same one in every view, so that a `trace` path (a list of ids)
can be highlighted on any of them:

    node/<name>                 a node                     ns/<netns>          a network namespace
    pod/<namespace>/<name>      a pod                      svc/<ns>/<name>     a Service
    netpol/<ns>/<name>          a NetworkPolicy            dev/<owner>/<if>    a device, owner = node or pod id
                                                                               (dev/node/node1/cni0, dev/pod/default/a/eth0)

Links say how things connect: `veth` (the two ends of a pair), `bridge-port` (a port to its
bridge), `vxlan` (a VTEP to the remote VTEP its FDB points at), `endpoint` (a Service to a pod
behind it), `selects` (a NetworkPolicy to a pod it selects).

Pure: no kernel, no store. `podnet.topo.collect` fills it from live state.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

VERSION = 1
LINK_KINDS = ("veth", "bridge-port", "vxlan", "endpoint", "selects")


def node_id(name: str) -> str:
    return f"node/{name}"


def pod_id(namespace: str, name: str) -> str:
    return f"pod/{namespace}/{name}"


def service_id(namespace: str, name: str) -> str:
    return f"svc/{namespace}/{name}"


def policy_id(namespace: str, name: str) -> str:
    return f"netpol/{namespace}/{name}"


def device_id(owner: str, ifname: str) -> str:
    return f"dev/{owner}/{ifname}"


def netns_id(netns: str) -> str:
    return f"ns/{netns}"


@dataclass
class Node:
    id: str
    name: str
    ip: str = ""               # InternalIP: the underlay address (the VXLAN outer address)
    netns: str = ""
    pod_cidr: str = ""
    ready: bool = False


@dataclass
class Pod:
    id: str
    namespace: str
    name: str
    ip: str = ""
    node: str = ""             # the node's name ("" while unscheduled)
    netns: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    ready: bool = False
    phase: str = ""
    host_network: bool = False


@dataclass
class Endpoint:
    ip: str
    ready: bool = False
    pod: str = ""              # the pod id, when the address belongs to a known pod


@dataclass
class Service:
    id: str
    namespace: str
    name: str
    type: str = "ClusterIP"
    cluster_ip: str = ""
    ports: list[str] = field(default_factory=list)        # "80/TCP->8080"
    endpoints: list[Endpoint] = field(default_factory=list)


@dataclass
class Policy:
    id: str
    namespace: str
    name: str
    policy_types: list[str] = field(default_factory=list)
    selects: list[str] = field(default_factory=list)      # pod ids


@dataclass
class FdbEntry:
    mac: str
    dst: str                   # the remote VTEP's underlay IP
    node: str = ""             # the node id owning that IP, when known


@dataclass
class Device:
    id: str
    owner: str                 # node or pod id
    netns: str
    name: str
    kind: str = "device"       # veth, bridge, vxlan, ipip, device, ...
    ifindex: int = 0
    mac: str = ""
    mtu: int = 0
    up: bool = False
    addresses: list[str] = field(default_factory=list)    # CIDR notation; link-local IPv6 left out
    master: str = ""           # device id of the bridge this is a port of
    peer: str = ""             # device id of the other end of a veth pair (when found)
    vni: int | None = None     # vxlan only: VNI, UDP port, local underlay address
    port: int | None = None
    local: str = ""
    fdb: list[FdbEntry] = field(default_factory=list)


@dataclass
class Netns:
    id: str
    name: str
    owner: str                 # node or pod id
    routes: list[str] = field(default_factory=list)       # as `ip route` prints them
    error: str = ""            # why it could not be read (gone, permission), if so


@dataclass
class Link:
    frm: str
    to: str
    kind: str
    label: str = ""

    def to_json(self) -> dict[str, str]:
        out = {"from": self.frm, "to": self.to, "kind": self.kind}
        if self.label:
            out["label"] = self.label
        return out


@dataclass
class Topology:
    nodes: list[Node] = field(default_factory=list)
    pods: list[Pod] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    policies: list[Policy] = field(default_factory=list)
    devices: list[Device] = field(default_factory=list)
    namespaces: list[Netns] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    cluster: dict[str, str] = field(default_factory=dict)  # name, backend: what it is a picture of

    def to_json(self) -> dict[str, Any]:
        """The versioned document (`-o json`, `/model.json`): stable keys, sorted lists."""
        return {"version": VERSION, "cluster": dict(self.cluster),
                "nodes": [asdict(n) for n in self.nodes], "pods": [asdict(p) for p in self.pods],
                "services": [asdict(s) for s in self.services], "policies": [asdict(p) for p in self.policies],
                "devices": [asdict(d) for d in self.devices], "namespaces": [asdict(n) for n in self.namespaces],
                "links": [link.to_json() for link in self.links]}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Topology:
        if doc.get("version") != VERSION:
            raise ValueError(f"topology document version {doc.get('version')!r}, this podnet reads version {VERSION}")

        def make(kind, raw: dict) -> Any:
            known = {f.name for f in fields(kind)}
            return kind(**{k: v for k, v in raw.items() if k in known})

        services = []
        for raw in doc.get("services", []):
            svc = make(Service, raw)
            svc.endpoints = [make(Endpoint, e) for e in raw.get("endpoints", [])]
            services.append(svc)
        devices = []
        for raw in doc.get("devices", []):
            dev = make(Device, raw)
            dev.fdb = [make(FdbEntry, e) for e in raw.get("fdb", [])]
            devices.append(dev)
        return cls(nodes=[make(Node, n) for n in doc.get("nodes", [])], pods=[make(Pod, p) for p in doc.get("pods", [])],
                   services=services, policies=[make(Policy, p) for p in doc.get("policies", [])], devices=devices,
                   namespaces=[make(Netns, n) for n in doc.get("namespaces", [])],
                   links=[Link(lk["from"], lk["to"], lk["kind"], lk.get("label", "")) for lk in doc.get("links", [])],
                   cluster=dict(doc.get("cluster", {})))

    # lookups the renderers share
    def devices_of(self, owner: str) -> list[Device]:
        return [d for d in self.devices if d.owner == owner]

    def pods_on(self, node_name: str) -> list[Pod]:
        return [p for p in self.pods if p.node == node_name]

    def ids(self) -> set[str]:
        return {x.id for group in (self.nodes, self.pods, self.services, self.policies, self.devices, self.namespaces)
                for x in group}
