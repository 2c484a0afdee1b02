"""The Service resource: parsing and validation, with the field named on error. (Allocating its
ClusterIP, NodePorts and LoadBalancer address is the API server's job: `podnet.apiserver`.)"""

from __future__ import annotations

import ipaddress

from .errors import ValidationError, mapping
from .keys import SERVICES
from .pod import DNS_1035_LABEL, DNS_LABEL, check_labels, check_name, parse_header

SERVICE_CIDR = "10.96.0.0/16"
DNS_SERVICE_IP = "10.96.0.10"
NODEPORT_RANGE = (30000, 32767)
LB_POOL = "172.31.100.0/24"  # on the lab's underlay; the underlay routes it to the nodes
TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
PROTOCOLS = ("TCP", "UDP", "SCTP")


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
    publish = spec.get("publishNotReadyAddresses", False)
    if not isinstance(publish, bool):
        raise ValidationError("spec.publishNotReadyAddresses", f"must be true or false, not {publish!r}", source)
    if publish:  # (e.g. for a StatefulSet's peers finding each other before they are ready)
        out_spec["publishNotReadyAddresses"] = True
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
