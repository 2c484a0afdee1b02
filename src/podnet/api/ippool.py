"""IPPool and BGPConfiguration: Calico's resources for the routed (bgp) backend.

An IPPool is a range pods take addresses from, carved into blocks of `blockSize` that nodes
claim (podnet.ipam.blocks). Manifests in podnet's own form (apiVersion podnet.io/v1) and in
Calico's (projectcalico.org/v3) are both accepted unchanged; they are stored as podnet.io/v1
with every default filled in, so what `get ippools -o yaml` shows is what the agents use.

    apiVersion: projectcalico.org/v3
    kind: IPPool
    metadata: {name: default-ipv4-ippool}
    spec:
      cidr: 10.244.0.0/16
      blockSize: 26              # 20..32; the pool must hold at least one block
      vxlanMode: CrossSubnet     # Always | CrossSubnet | Never
      ipipMode: Never            # Always | CrossSubnet | Never (not with vxlanMode on)
      natOutgoing: true
      disabled: false            # no new addresses from it; existing ones stay
      nodeSelector: all()        # which nodes take blocks from it (Calico selector)

Defaults are Calico's: blockSize 26, both modes Never, natOutgoing false, nodeSelector all().
The default pool the bgp backend creates from the cluster network says vxlanMode CrossSubnet
and natOutgoing true (`default_pool`).
"""

from __future__ import annotations

import ipaddress
import time
import uuid

from . import selector
from .errors import ValidationError, mapping
from .pod import DNS_SUBDOMAIN, check_labels, check_name

API_VERSION = "podnet.io/v1"
CALICO_API_VERSION = "projectcalico.org/v3"
API_VERSIONS = (API_VERSION, CALICO_API_VERSION)
MODES = ("Always", "CrossSubnet", "Never")
USES = ("Workload", "Tunnel")
POOL_FIELDS = ("cidr", "blockSize", "vxlanMode", "ipipMode", "natOutgoing", "disabled", "nodeSelector",
               "disableBGPExport", "allowedUses", "assignmentMode")
DEFAULT_POOL = "default-ipv4-ippool"
DEFAULT_BLOCK_SIZE = 26
DEFAULT_AS = 64512
BGP_FIELDS = ("asNumber", "nodeToNodeMeshEnabled", "routeReflectorSelector", "logSeverityScreen", "listenPort")
ROUTE_REFLECTOR_LABEL = "podnet.io/route-reflector"


def _header(doc: dict, kind: str, source: str) -> tuple[str, dict, dict]:
    if doc.get("apiVersion") not in API_VERSIONS:
        raise ValidationError("apiVersion", f"a {kind} needs apiVersion {API_VERSION} (or Calico's {CALICO_API_VERSION}), "
                                            f"not {doc.get('apiVersion')!r}", source)
    meta = mapping(doc.get("metadata"), "metadata", source)
    name = check_name(meta.get("name"), "metadata.name", source, DNS_SUBDOMAIN, 253)
    out_meta: dict = {"name": name}
    labels = check_labels(meta.get("labels"), "metadata.labels", source)
    if labels:
        out_meta["labels"] = labels
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        raise ValidationError("spec", "is required", source)
    return name, out_meta, spec


def _bool(spec: dict, key: str, default: bool, source: str) -> bool:
    value = spec.get(key, default)
    if not isinstance(value, bool):
        raise ValidationError(f"spec.{key}", f"must be true or false, not {value!r}", source)
    return value


def _mode(spec: dict, key: str, source: str) -> str:
    value = spec.get(key, "Never")
    if value in ("", None):
        value = "Never"
    if value not in MODES:
        raise ValidationError(f"spec.{key}", f"must be one of {', '.join(MODES)}, not {value!r}", source)
    return value


def parse_ippool(doc: dict, source: str = "", _namespace: str = "") -> dict:
    """The stored IPPool (podnet.io/v1, defaults filled in), or ValidationError naming the field."""
    _, meta, spec = _header(doc, "IPPool", source)
    unknown = sorted(set(spec) - set(POOL_FIELDS))
    if unknown:
        raise ValidationError(f"spec.{unknown[0]}", f"unknown field (podnet's IPPool has {', '.join(POOL_FIELDS)})", source)
    raw = spec.get("cidr")
    if not isinstance(raw, str) or not raw:
        raise ValidationError("spec.cidr", "is required, e.g. 10.244.0.0/16", source)
    try:
        net = ipaddress.ip_network(raw, strict=False)
    except ValueError:
        raise ValidationError("spec.cidr", f"{raw!r} is not a network in CIDR notation", source) from None
    if net.version != 4:
        raise ValidationError("spec.cidr", "only IPv4 pools are supported so far", source)
    if str(net) != raw:
        raise ValidationError("spec.cidr", f"{raw!r} has host bits set: did you mean {net}?", source)
    size = spec.get("blockSize", DEFAULT_BLOCK_SIZE)
    if not isinstance(size, int) or isinstance(size, bool) or not 20 <= size <= 32:
        raise ValidationError("spec.blockSize", f"must be an integer from 20 to 32, not {size!r}", source)
    if size < net.prefixlen:
        raise ValidationError("spec.blockSize", f"a /{size} block does not fit in the pool {net}: the pool must hold at "
                                                f"least one block (blockSize >= {net.prefixlen})", source)
    vxlan, ipip = _mode(spec, "vxlanMode", source), _mode(spec, "ipipMode", source)
    if vxlan != "Never" and ipip != "Never":
        raise ValidationError("spec.ipipMode", f"cannot be {ipip} while vxlanMode is {vxlan}: choose one encapsulation",
                              source)
    uses = spec.get("allowedUses", list(USES))
    if not isinstance(uses, list) or not uses or any(u not in USES for u in uses):
        raise ValidationError("spec.allowedUses", f"must be a non-empty list of {', '.join(USES)}, not {uses!r}", source)
    assignment = spec.get("assignmentMode", "Automatic")
    if assignment not in ("Automatic", "Manual"):
        raise ValidationError("spec.assignmentMode", f"must be Automatic or Manual, not {assignment!r}", source)
    return {"apiVersion": API_VERSION, "kind": "IPPool", "metadata": meta, "spec": {
        "cidr": str(net), "blockSize": size, "vxlanMode": vxlan, "ipipMode": ipip,
        "natOutgoing": _bool(spec, "natOutgoing", False, source), "disabled": _bool(spec, "disabled", False, source),
        "disableBGPExport": _bool(spec, "disableBGPExport", False, source),
        "nodeSelector": selector.check(spec.get("nodeSelector", "all()"), "spec.nodeSelector", source),
        "allowedUses": sorted(uses), "assignmentMode": assignment}}


def default_pool(cidr: str, block_size: int = DEFAULT_BLOCK_SIZE) -> dict:
    """The pool the bgp backend creates when there is none: the whole cluster network (or what
    the operator chose, as calico-node's CALICO_IPV4POOL_CIDR and _BLOCK_SIZE). Stamped as a
    created object (creationTimestamp, uid): its callers store it as it is."""
    pool = parse_ippool({"apiVersion": API_VERSION, "kind": "IPPool", "metadata": {"name": DEFAULT_POOL},
                         "spec": {"cidr": cidr, "blockSize": block_size, "vxlanMode": "CrossSubnet",
                                  "natOutgoing": True}}, "default pool")
    pool["metadata"].update(creationTimestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), uid=str(uuid.uuid4()))
    return pool


def parse_bgp_configuration(doc: dict, source: str = "", _namespace: str = "") -> dict:
    """BGPConfiguration (only `default` is used, as in Calico): the AS number, whether nodes
    peer in a full mesh, and which nodes are route reflectors."""
    name, meta, spec = _header(doc, "BGPConfiguration", source)
    if name != "default":
        raise ValidationError("metadata.name", f"must be default (podnet reads the cluster-wide BGPConfiguration named "
                                               f"default; per-node ones are not supported), not {name!r}", source)
    unknown = sorted(set(spec) - set(BGP_FIELDS))
    if unknown:
        raise ValidationError(f"spec.{unknown[0]}", f"unknown field (podnet's BGPConfiguration has {', '.join(BGP_FIELDS)})",
                              source)
    asn = spec.get("asNumber", DEFAULT_AS)
    if not isinstance(asn, int) or isinstance(asn, bool) or not 1 <= asn <= 4294967295:
        raise ValidationError("spec.asNumber", f"must be an AS number from 1 to 4294967295, not {asn!r}", source)
    port = spec.get("listenPort", 179)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ValidationError("spec.listenPort", f"must be a TCP port, not {port!r}", source)
    level = spec.get("logSeverityScreen", "Info")
    if level not in ("Debug", "Info", "Warning", "Error", "Fatal"):
        raise ValidationError("spec.logSeverityScreen", f"must be Debug, Info, Warning, Error or Fatal, not {level!r}", source)
    return {"apiVersion": API_VERSION, "kind": "BGPConfiguration", "metadata": meta, "spec": {
        "asNumber": asn, "nodeToNodeMeshEnabled": _bool(spec, "nodeToNodeMeshEnabled", True, source),
        "routeReflectorSelector": selector.check(spec.get("routeReflectorSelector", f"{ROUTE_REFLECTOR_LABEL} == \"true\""),
                                                 "spec.routeReflectorSelector", source),
        "listenPort": port, "logSeverityScreen": level}}


def default_bgp_configuration() -> dict:
    return parse_bgp_configuration({"apiVersion": API_VERSION, "kind": "BGPConfiguration",
                                    "metadata": {"name": "default"}, "spec": {}})


def pool_problem_with(new: dict, previous: dict | None, others: list[dict], network: str | None) -> ValidationError | None:
    """What the API server refuses about an IPPool write, given the stored one, the other
    pools and the cluster network: a changed cidr or blockSize, an overlap, a pool outside
    the cluster network (podnet's masquerade and policy treat that network as the pods')."""
    spec = new["spec"]
    if previous is not None:
        for key in ("cidr", "blockSize"):
            if previous["spec"].get(key) != spec[key]:
                return ValidationError(f"spec.{key}", f"is immutable ({previous['spec'].get(key)!r} -> {spec[key]!r}): "
                                                      "create a new pool, disable this one, and delete it once it is empty")
    net = ipaddress.ip_network(spec["cidr"])
    for other in others:
        if other["metadata"]["name"] == new["metadata"]["name"]:
            continue
        if net.overlaps(ipaddress.ip_network(other["spec"]["cidr"])):
            return ValidationError("spec.cidr", f"{net} overlaps IPPool {other['metadata']['name']} ({other['spec']['cidr']})")
    if network and not net.subnet_of(ipaddress.ip_network(network)):
        return ValidationError("spec.cidr", f"{net} is not inside the cluster network {network}")
    return None
