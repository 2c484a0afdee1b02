"""The Service resource: parsing and validation (field named on error), and allocation of
ClusterIPs, NodePorts and LoadBalancer addresses in the store, each reserved by a create-only
key so that two writers can never hand out the same one."""

from __future__ import annotations

import ipaddress
import random

from ..store import Store
from .errors import ValidationError, mapping
from .keys import SERVICES
from .pod import DNS_1035_LABEL, DNS_LABEL, check_labels, check_name, parse_header

SERVICE_CIDR = "10.96.0.0/16"
DNS_SERVICE_IP = "10.96.0.10"
NODEPORT_RANGE = (30000, 32767)
LB_POOL = "172.31.100.0/24"  # on the lab's underlay; the underlay routes it to the nodes
TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
PROTOCOLS = ("TCP", "UDP", "SCTP")
ALLOC = "/podnet/allocations/"


def parse_service(doc: dict, source: str, default_namespace: str = "default") -> dict:
    """A normalized Service object (defaults filled in), or ValidationError naming the field."""
    name, namespace, labels, spec = parse_header(doc, source, default_namespace, "Service", "v1", DNS_1035_LABEL, 63)
    stype = spec.get("type", "ClusterIP")
    if stype not in TYPES:
        raise ValidationError("spec.type", f"{stype!r} is not one of {', '.join(TYPES)}", source)
    out_spec: dict = {"type": stype}
    if stype == "ExternalName":
        ext = spec.get("externalName")
        if not isinstance(ext, str) or not ext or len(ext) > 253:
            raise ValidationError("spec.externalName", "is required for type ExternalName (a DNS name)", source)
        out_spec["externalName"] = ext.rstrip(".").lower()
        return _service(name, namespace, labels, out_spec, doc, source)
    selector = spec.get("selector")
    if selector is not None and not isinstance(selector, dict):
        raise ValidationError("spec.selector", "must be a mapping of labels", source)
    out_spec["selector"] = check_labels(selector, "spec.selector", source) if selector else {}
    cluster_ip = spec.get("clusterIP") or ""
    if not isinstance(cluster_ip, str):
        raise ValidationError("spec.clusterIP", f"must be an IP address as a string (or \"None\"), not {cluster_ip!r}", source)
    if cluster_ip not in ("", "None"):
        try:
            ip = ipaddress.ip_address(cluster_ip)
        except ValueError:
            raise ValidationError("spec.clusterIP", f"{cluster_ip!r} is not an IP address (or \"None\" for headless)", source) from None
        if ip not in ipaddress.ip_network(SERVICE_CIDR):
            raise ValidationError("spec.clusterIP", f"{cluster_ip} is outside the service range {SERVICE_CIDR}", source)
    if cluster_ip == "None" and stype != "ClusterIP":
        raise ValidationError("spec.clusterIP", f"a headless service (clusterIP: None) cannot be of type {stype}", source)
    out_spec["clusterIP"] = cluster_ip
    ports = spec.get("ports")
    if not isinstance(ports, list) or (not ports and cluster_ip != "None"):
        raise ValidationError("spec.ports", "must list at least one port", source)
    out_ports, seen = [], set()
    for i, p in enumerate(ports):
        f = f"spec.ports[{i}]"
        if not isinstance(p, dict):
            raise ValidationError(f, "must be a mapping", source)
        pname = p.get("name", "")
        if len(ports) > 1 and not pname:
            raise ValidationError(f"{f}.name", "is required when a service has more than one port", source)
        if pname:
            check_name(pname, f"{f}.name", source, DNS_LABEL, 63)
        proto = p.get("protocol", "TCP")
        if proto not in PROTOCOLS:
            raise ValidationError(f"{f}.protocol", f"must be TCP, UDP or SCTP, not {proto!r}", source)
        port = p.get("port")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise ValidationError(f"{f}.port", f"must be a port number (1-65535), not {port!r}", source)
        target = p.get("targetPort", port)
        if isinstance(target, bool) or not (isinstance(target, int) and 0 < target < 65536 or isinstance(target, str) and target):
            raise ValidationError(f"{f}.targetPort", f"must be a port number or a container port name, not {target!r}", source)
        if isinstance(target, str):
            if target.isdigit():
                target = int(target)
            else:
                check_name(target, f"{f}.targetPort", source, DNS_LABEL, 15)
        node_port = p.get("nodePort", 0)
        if node_port:
            if stype not in ("NodePort", "LoadBalancer"):
                raise ValidationError(f"{f}.nodePort", f"only NodePort and LoadBalancer services have node ports, not {stype}", source)
            if not isinstance(node_port, int) or not NODEPORT_RANGE[0] <= node_port <= NODEPORT_RANGE[1]:
                raise ValidationError(f"{f}.nodePort", f"must be in {NODEPORT_RANGE[0]}-{NODEPORT_RANGE[1]}, not {node_port!r}", source)
        if (port, proto) in seen:
            raise ValidationError(f"{f}.port", f"{port}/{proto} appears twice", source)
        seen.add((port, proto))
        out_ports.append({"name": pname, "protocol": proto, "port": port, "targetPort": target, "nodePort": node_port})
    out_spec["ports"] = out_ports
    affinity = spec.get("sessionAffinity", "None")
    if affinity not in ("None", "ClientIP"):
        raise ValidationError("spec.sessionAffinity", f"must be None or ClientIP, not {affinity!r}", source)
    out_spec["sessionAffinity"] = affinity
    if affinity == "ClientIP":
        config = mapping(spec.get("sessionAffinityConfig"), "spec.sessionAffinityConfig", source)
        timeout = mapping(config.get("clientIP"), "spec.sessionAffinityConfig.clientIP", source).get("timeoutSeconds", 10800)
        if not isinstance(timeout, int) or isinstance(timeout, bool) or not 0 < timeout <= 86400:
            raise ValidationError("spec.sessionAffinityConfig.clientIP.timeoutSeconds", f"must be 1-86400, not {timeout!r}", source)
        out_spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": timeout}}
    external = stype in ("NodePort", "LoadBalancer")
    for field_, applies in (("externalTrafficPolicy", external), ("internalTrafficPolicy", True)):
        value = spec.get(field_)
        if value not in (None, "Cluster", "Local"):
            raise ValidationError(f"spec.{field_}", f"must be Cluster or Local, not {value!r}", source)
        if not applies:
            # The API server keeps it only for externally reachable services; a ClusterIP service
            # saved by an older podnet (or another tool) may carry "Cluster": drop it as it would
            if value == "Local":
                raise ValidationError(f"spec.{field_}", "only applies to NodePort and LoadBalancer services", source)
            continue
        out_spec[field_] = value or "Cluster"
    return _service(name, namespace, labels, out_spec, doc, source)


def _annotations(doc: dict, source: str) -> dict:
    annotations = mapping(mapping(doc.get("metadata"), "metadata", source).get("annotations"), "metadata.annotations", source)
    for k, v in annotations.items():
        if not isinstance(v, str):
            raise ValidationError(f"metadata.annotations.{k}", "annotation values must be strings", source)
    return dict(annotations)


def _service(name: str, namespace: str, labels: dict, spec: dict, doc: dict, source: str = "") -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "labels": labels, "annotations": _annotations(doc, source)},
            "spec": spec, "status": {"loadBalancer": {}}}


def service_key(namespace: str, name: str) -> str:
    return f"{SERVICES}{namespace}/{name}"


# -- allocation -------------------------------------------------------------------------------
def _claim(store: Store, kind: str, value: str, owner: str) -> bool:
    return store.create(f"{ALLOC}{kind}/{value}", owner)


def release_all(store: Store, owner: str) -> None:
    kvs, _ = store.list(ALLOC)
    for kv in kvs:
        if kv.value == owner:
            store.delete(kv.key)


def allocate(store: Store, svc: dict, previous: dict | None = None) -> dict:
    """Fill clusterIP, nodePorts and LoadBalancer ingress, keeping what `previous` already had."""
    owner = f"{svc['metadata']['namespace']}/{svc['metadata']['name']}"
    spec = svc["spec"]
    old = (previous or {}).get("spec", {})
    claimed: list[str] = []

    def claim(kind: str, value: str) -> bool:
        if _claim(store, kind, value, owner):
            claimed.append(f"{ALLOC}{kind}/{value}")
            return True
        kv = store.get(f"{ALLOC}{kind}/{value}")
        return kv is not None and kv.value == owner  # ours already (re-apply)

    try:
        if spec["type"] != "ExternalName" and spec.get("clusterIP") != "None":
            want = spec.get("clusterIP") or old.get("clusterIP", "")
            if want and want != "None":
                if not claim("clusterips", want):
                    raise ValidationError("spec.clusterIP", f"{want} is already allocated to another service")
                spec["clusterIP"] = want
            else:
                spec["clusterIP"] = _pick(claim, "clusterips", _cluster_ips())
        if spec["type"] in ("NodePort", "LoadBalancer"):
            old_ports = {(p["port"], p["protocol"]): p.get("nodePort") for p in old.get("ports", [])}
            for p in spec["ports"]:
                want = p.get("nodePort") or old_ports.get((p["port"], p["protocol"])) or 0
                if want:
                    if not claim("nodeports", f"{p['protocol'].lower()}-{want}"):
                        raise ValidationError("spec.ports.nodePort", f"{want}/{p['protocol']} is already allocated")
                    p["nodePort"] = want
                else:
                    p["nodePort"] = int(_pick(lambda k, v, proto=p["protocol"].lower(): claim(k, f"{proto}-{v}"), "nodeports",
                                              (str(n) for n in _shuffled(range(NODEPORT_RANGE[0], NODEPORT_RANGE[1] + 1)))))
        if spec["type"] == "LoadBalancer":
            old_ing = ((previous or {}).get("status", {}).get("loadBalancer", {}).get("ingress") or [{}])[0].get("ip", "")
            if old_ing and claim("lbips", old_ing):
                ip = old_ing
            else:
                ip = _pick(claim, "lbips", (str(h) for h in ipaddress.ip_network(LB_POOL).hosts()))
            svc["status"] = {"loadBalancer": {"ingress": [{"ip": ip}]}}
    except BaseException:
        for key in claimed:
            store.delete(key)
        raise
    # release what the previous version held and this one no longer uses
    if previous is not None:
        keep = set(claimed) | _held_keys(svc)
        kvs, _ = store.list(ALLOC)
        for kv in kvs:
            if kv.value == owner and kv.key not in keep:
                store.delete(kv.key)
    return svc


def _held_keys(svc: dict) -> set[str]:
    spec = svc["spec"]
    keys = set()
    if spec.get("clusterIP") not in (None, "", "None"):
        keys.add(f"{ALLOC}clusterips/{spec['clusterIP']}")
    for p in spec.get("ports", []):
        if p.get("nodePort"):
            keys.add(f"{ALLOC}nodeports/{p['protocol'].lower()}-{p['nodePort']}")
    for ing in svc.get("status", {}).get("loadBalancer", {}).get("ingress", []):
        keys.add(f"{ALLOC}lbips/{ing['ip']}")
    return keys


def _cluster_ips():
    net = ipaddress.ip_network(SERVICE_CIDR)
    reserved = {str(net.network_address + 1), DNS_SERVICE_IP}
    return (str(net.network_address + i) for i in _shuffled(range(2, net.num_addresses - 1))
            if str(net.network_address + i) not in reserved)


def _shuffled(r: range):
    """Every value of r once, from a random start (cheap for large ranges)."""
    start = random.randrange(len(r))
    for i in range(len(r)):
        yield r[(start + i) % len(r)]


def _pick(claim, kind: str, candidates) -> str:
    for value in candidates:
        if claim(kind, value):
            return value
    raise ValidationError("spec", f"no free {kind[:-1]} left")

