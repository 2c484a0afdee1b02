"""What the walk knows besides the kernel: the cluster's objects (pods and the namespaces they run
in, nodes and their addresses, services, policies, the cluster network) and the names of the
namespaces that are not pods or nodes (the lab's underlay, its router). Plain data: the CLI
fills it from the store and the lab state, tests from canned objects.

Also here: turning what the user typed (SRC, DST[:PORT]) into an `Endpoint`."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field

from ..api import stored
from ..api.cluster import parse as parse_cluster
from ..api.keys import CONFIG, NAMESPACES, NETWORK_POLICIES, NODES, PODS, SERVICES
from ..policy.evaluate import World
from ..policy.world import build_world
from .model import Endpoint

NETNS_ANNOTATION = "podnet.io/netns"


class ResolveError(ValueError):
    """SRC or DST names nothing the trace can use."""


@dataclass
class Place:
    """A network namespace on the path, as people know it."""
    netns: str
    label: str                   # "default/a", "node1", "underlay"
    kind: str                    # pod, node, underlay, router, netns
    node: str | None = None      # a pod's node, a node itself


@dataclass
class Inventory:
    pods: list[dict] = field(default_factory=list)
    services: list[dict] = field(default_factory=list)
    nodes: list[dict] = field(default_factory=list)
    namespaces: list[dict] = field(default_factory=list)
    policies: list[dict] = field(default_factory=list)
    cluster_cidr: str | None = None
    node_netns: dict[str, str] = field(default_factory=dict)   # node name -> its namespace
    others: dict[str, str] = field(default_factory=dict)       # netns -> label (kind = label): underlay, router
    world: World | None = None

    def __post_init__(self) -> None:
        if self.world is None:
            self.world = build_world(self.pods, self.namespaces, self.policies, self.nodes)

    # -- loading -----------------------------------------------------------------------------
    @classmethod
    def load(cls, store, node_netns: dict[str, str], others: dict[str, str] | None = None) -> Inventory:
        """From a podnet store (anything with list(prefix) and get(key))."""
        lists = {}
        for prefix in (PODS, SERVICES, NODES, NAMESPACES, NETWORK_POLICIES):
            kvs, _ = store.list(prefix)
            lists[prefix] = stored.decode_all(kvs, namespaced=prefix not in (NODES, NAMESPACES))[0]
        cidr = None
        kv = store.get(CONFIG)
        if kv is not None:
            try:
                cidr = str(parse_cluster(kv.value).network)
            except ValueError:
                cidr = None
        return cls(lists[PODS], lists[SERVICES], lists[NODES], lists[NAMESPACES], lists[NETWORK_POLICIES], cidr,
                    dict(node_netns), dict(others or {}))

    def to_json(self) -> dict:
        """Everything but the World (rebuilt from the rest): canned inventories for tests."""
        return {"pods": self.pods, "services": self.services, "nodes": self.nodes, "namespaces": self.namespaces,
                "policies": self.policies, "cluster_cidr": self.cluster_cidr, "node_netns": self.node_netns,
                "others": self.others}

    @classmethod
    def from_json(cls, doc: dict | str) -> Inventory:
        doc = json.loads(doc) if isinstance(doc, str) else doc
        return cls(**doc)

    # -- lookups -----------------------------------------------------------------------------
    def pod(self, namespace: str, name: str) -> dict | None:
        return next((p for p in self.pods if p["metadata"]["name"] == name
                     and p["metadata"].get("namespace", "default") == namespace), None)

    def pod_netns(self, pod: dict) -> str | None:
        if (pod.get("spec") or {}).get("hostNetwork") is True:
            return self.node_netns.get((pod.get("spec") or {}).get("nodeName", ""))
        ns = ((pod["metadata"].get("annotations") or {}).get(NETNS_ANNOTATION) or "").rsplit("/", 1)[-1]
        return ns or None

    def pod_by_ip(self, ip: str) -> dict | None:
        return next((p for p in self.pods if (p.get("status") or {}).get("podIP") == ip
                     and (p.get("spec") or {}).get("hostNetwork") is not True), None)

    def node_ip(self, name: str) -> str | None:
        node = next((n for n in self.nodes if n["metadata"]["name"] == name), None)
        if node is None:
            return None
        return next((a["address"] for a in (node.get("status") or {}).get("addresses", [])
                     if a.get("type") == "InternalIP"), None)

    def node_by_ip(self, ip: str) -> str | None:
        return next((n["metadata"]["name"] for n in self.nodes
                     for a in (n.get("status") or {}).get("addresses", []) if a.get("address") == ip), None)

    def node_names(self) -> list[str]:
        return sorted({n["metadata"]["name"] for n in self.nodes} | set(self.node_netns))

    def service(self, namespace: str, name: str) -> dict | None:
        return next((s for s in self.services if s["metadata"]["name"] == name
                     and s["metadata"].get("namespace", "default") == namespace), None)

    def service_for(self, ip: str, proto: str, port: int, nodeport: bool = False) -> dict | None:
        """The Service behind a frontend: a ClusterIP or LoadBalancer IP and port, or a NodePort."""
        for s in self.services:
            spec = s.get("spec") or {}
            ips = {spec.get("clusterIP")} | {i.get("ip") for i in (s.get("status") or {}).get("loadBalancer", {})
                                               .get("ingress", []) or []}
            for p in spec.get("ports") or []:
                if p.get("protocol", "TCP").lower() != proto:
                    continue
                if (nodeport and p.get("nodePort") == port) or (not nodeport and ip in ips and p.get("port") == port):
                    return s
        return None

    def in_cluster(self, ip: str) -> bool:
        return bool(self.cluster_cidr) and ipaddress.ip_address(ip) in ipaddress.ip_network(self.cluster_cidr)

    def place(self, netns: str) -> Place:
        cache = self.__dict__.setdefault("_places", {})
        if netns not in cache:
            cache[netns] = self._place(netns)
        return cache[netns]

    def _place(self, netns: str) -> Place:
        for node, ns in self.node_netns.items():
            if ns == netns:
                return Place(netns, node, "node", node)
        for pod in self.pods:
            if (pod.get("spec") or {}).get("hostNetwork") is not True and self.pod_netns(pod) == netns:
                meta = pod["metadata"]
                return Place(netns, f"{meta.get('namespace', 'default')}/{meta['name']}", "pod",
                             (pod.get("spec") or {}).get("nodeName"))
        if netns in self.others:
            return Place(netns, self.others[netns], self.others[netns])
        return Place(netns, netns, "netns")

    def host_netns(self) -> list[str]:
        """The namespaces that are not pods: the others (where outside addresses live), then the nodes."""
        return list(self.others) + [ns for ns in self.node_netns.values() if ns not in self.others]

    # -- what the user typed -----------------------------------------------------------------
    def resolve(self, spec: str, default_namespace: str = "default", source: bool = False) -> Endpoint:
        """SRC or DST[:PORT]: `ns/pod` or `pod`, `svc/ns/name` (or `svc/name`), `node/NAME` or a
        node's name, or an IP address (a pod's, a node's or a Service's is taken as that)."""
        what = "SRC" if source else "DST"
        body, port_text = spec, None
        head, sep, tail = spec.rpartition(":")
        if sep and head and "/" not in tail and (tail.isdigit() or spec.startswith(("svc/", "service/"))):
            body, port_text = head, tail
        if port_text is not None and source:
            raise ResolveError(f"SRC {spec!r}: a source has no port (use --sport)")
        port = None
        if port_text is not None and port_text.isdigit():
            port = int(port_text)
            if not 1 <= port <= 65535:
                raise ResolveError(f"{what} {spec!r}: port {port} is not 1-65535")
        parts = body.split("/")
        if parts[0] in ("svc", "service", "services"):
            if source:
                raise ResolveError(f"SRC {spec!r}: a Service sends nothing; trace from a pod, a node or an address")
            if len(parts) not in (2, 3):
                raise ResolveError(f"{what} {spec!r}: a Service is svc/NAMESPACE/NAME or svc/NAME")
            ns, name = (parts[1], parts[2]) if len(parts) == 3 else (default_namespace, parts[1])
            return self._service_endpoint(spec, ns, name, port, port_text)
        if parts[0] == "node" and len(parts) == 2:
            return self._node_endpoint(spec, parts[1], port)
        if parts[0] == "pod" and len(parts) in (2, 3):
            parts = parts[1:]
        if len(parts) == 2:
            return self._pod_endpoint(spec, parts[0], parts[1], port, source)
        if len(parts) != 1 or not body:
            raise ResolveError(f"{what} {spec!r}: expected ns/pod, pod, svc/ns/name, a node or an IP address")
        try:
            ip = str(ipaddress.IPv4Address(body))
        except ValueError:
            ip = None
        if ip is not None:
            pod = self.pod_by_ip(ip)
            if pod is not None:
                m = pod["metadata"]
                return self._pod_endpoint(spec, m.get("namespace", "default"), m["name"], port, source)
            node = self.node_by_ip(ip)
            if node is not None:
                return self._node_endpoint(spec, node, port)
            return Endpoint(spec, "ip", ip, ip, port)
        if self.pod(default_namespace, body) is not None:
            return self._pod_endpoint(spec, default_namespace, body, port, source)
        if body in self.node_names():
            return self._node_endpoint(spec, body, port)
        raise ResolveError(f"{what} {spec!r}: no pod {default_namespace}/{body} and no node {body!r} "
                           f"(nodes: {', '.join(self.node_names()) or 'none'})")

    def _pod_endpoint(self, spec: str, ns: str, name: str, port: int | None, source: bool) -> Endpoint:
        pod = self.pod(ns, name)
        if pod is None:
            raise ResolveError(f"{'SRC' if source else 'DST'} {spec!r}: no pod {ns}/{name}")
        ip = (pod.get("status") or {}).get("podIP")
        netns = self.pod_netns(pod)
        if not ip or (source and not netns):
            raise ResolveError(f"pod {ns}/{name} is not running yet (no IP or network namespace)")
        return Endpoint(spec, "pod", f"{ns}/{name}", ip, port, (pod.get("spec") or {}).get("nodeName"), netns)

    def _node_endpoint(self, spec: str, name: str, port: int | None) -> Endpoint:
        ip = self.node_ip(name)
        if ip is None:
            raise ResolveError(f"{spec!r}: no node {name!r} with an InternalIP (nodes: {', '.join(self.node_names())})")
        return Endpoint(spec, "node", name, ip, port, name, self.node_netns.get(name))

    def _service_endpoint(self, spec: str, ns: str, name: str, port: int | None, port_text: str | None) -> Endpoint:
        svc = self.service(ns, name)
        if svc is None:
            raise ResolveError(f"DST {spec!r}: no Service {ns}/{name}")
        s = svc.get("spec") or {}
        cluster_ip = s.get("clusterIP")
        if not cluster_ip or cluster_ip == "None":
            raise ResolveError(f"Service {ns}/{name} has no ClusterIP (headless or ExternalName): trace to its pods")
        ports = s.get("ports") or []
        chosen = None
        if port_text is None:
            if len(ports) != 1:
                raise ResolveError(f"Service {ns}/{name} has {len(ports)} ports: say which "
                                   f"({', '.join(str(p['port']) for p in ports)})")
            chosen = ports[0]
        else:
            chosen = next((p for p in ports if p.get("port") == port or (port is None and p.get("name") == port_text)), None)
            if chosen is None:
                raise ResolveError(f"Service {ns}/{name} has no port {port_text} "
                                   f"(ports: {', '.join(str(p['port']) for p in ports)})")
        return Endpoint(spec, "service", f"{ns}/{name}", cluster_ip, chosen["port"])

    def service_protocol(self, dst: Endpoint) -> str | None:
        """The protocol of the Service port a DST names (TCP by default)."""
        if dst.kind != "service":
            return None
        ns, name = dst.name.split("/", 1)
        svc = self.service(ns, name) or {}
        p = next((p for p in (svc.get("spec") or {}).get("ports") or [] if p.get("port") == dst.port), {})
        return p.get("protocol", "TCP").lower()
