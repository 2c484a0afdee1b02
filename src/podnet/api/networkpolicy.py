"""NetworkPolicy (networking.k8s.io/v1) and Namespace (v1): parsing with the field named on error,
and the API's defaulting (policyTypes: Ingress always, Egress when egress rules are given)."""

from __future__ import annotations

import ipaddress

from .errors import ValidationError, listing
from .pod import DNS_LABEL, check_labels, label_key_problem, parse_header

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
PROTOCOLS = ("TCP", "UDP", "SCTP")


def parse_selector(raw: object, field: str, source: str) -> dict:
    """A LabelSelector: {"matchLabels": {...}, "matchExpressions": [...]}; {} selects everything."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ValidationError(field, "must be a label selector (matchLabels / matchExpressions)", source)
    unknown = {str(k) for k in raw} - {"matchLabels", "matchExpressions"}
    if unknown:
        raise ValidationError(f"{field}.{sorted(unknown)[0]}", "unknown field (expected matchLabels, matchExpressions)", source)
    labels = check_labels(raw.get("matchLabels"), f"{field}.matchLabels", source)
    exprs = []
    for i, e in enumerate(listing(raw.get("matchExpressions"), f"{field}.matchExpressions", source)):
        f = f"{field}.matchExpressions[{i}]"
        if not isinstance(e, dict) or not isinstance(e.get("key"), str) or not e["key"]:
            raise ValidationError(f"{f}.key", "is required", source)
        if label_key_problem(e["key"]):
            raise ValidationError(f"{f}.key", label_key_problem(e["key"]), source)
        op = e.get("operator")
        if op not in OPERATORS:
            raise ValidationError(f"{f}.operator", f"must be one of {', '.join(OPERATORS)}, not {op!r}", source)
        values = e.get("values") or []
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ValidationError(f"{f}.values", "must be a list of strings", source)
        if op in ("In", "NotIn") and not values:
            raise ValidationError(f"{f}.values", f"must not be empty for operator {op}", source)
        if op in ("Exists", "DoesNotExist") and values:
            raise ValidationError(f"{f}.values", f"must be empty for operator {op}", source)
        exprs.append({"key": e["key"], "operator": op, "values": list(values)})
    return {"matchLabels": labels, "matchExpressions": exprs}


def _ports(raw: object, field: str, source: str) -> list[dict]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValidationError(field, "must be a list", source)
    out = []
    for i, p in enumerate(raw):
        f = f"{field}[{i}]"
        if not isinstance(p, dict):
            raise ValidationError(f, "must be a mapping", source)
        proto = p.get("protocol", "TCP")
        if proto not in PROTOCOLS:
            raise ValidationError(f"{f}.protocol", f"must be TCP, UDP or SCTP, not {proto!r}", source)
        port = p.get("port")
        if port is not None and not (isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536
                                     or isinstance(port, str) and DNS_LABEL.match(port) and len(port) <= 15):
            raise ValidationError(f"{f}.port", f"must be a port number or a named port, not {port!r}", source)
        end = p.get("endPort")
        if end is not None:
            if not isinstance(port, int):
                raise ValidationError(f"{f}.endPort", "needs a numeric port", source)
            if not isinstance(end, int) or isinstance(end, bool) or not port <= end < 65536:
                raise ValidationError(f"{f}.endPort", f"must be a port number >= port ({port}), not {end!r}", source)
        out.append({"protocol": proto, "port": port, "endPort": end})
    return out


def _peers(raw: object, field: str, source: str) -> list[dict] | None:
    """None when absent or empty (all peers), else the list of peers."""
    if raw is None or raw == []:
        return None
    if not isinstance(raw, list):
        raise ValidationError(field, "must be a list of peers", source)
    out = []
    for i, p in enumerate(raw):
        f = f"{field}[{i}]"
        if not isinstance(p, dict) or not p:
            raise ValidationError(f, "a peer needs podSelector, namespaceSelector or ipBlock", source)
        if "ipBlock" in p:
            if set(p) != {"ipBlock"}:
                raise ValidationError(f, "ipBlock cannot be combined with selectors in one peer", source)
            block = p["ipBlock"]
            if not isinstance(block, dict):
                raise ValidationError(f"{f}.ipBlock", "must be a mapping with cidr (and optionally except)", source)
            raw_cidr = block.get("cidr")
            if raw_cidr is None:
                raise ValidationError(f"{f}.ipBlock.cidr", "is required, e.g. 10.0.0.0/8", source)
            try:
                cidr = ipaddress.ip_network(raw_cidr, strict=False) if isinstance(raw_cidr, str) else None
            except ValueError:
                cidr = None
            if cidr is None:
                raise ValidationError(f"{f}.ipBlock.cidr", f"must be a CIDR such as 10.0.0.0/8, not {_show(raw_cidr)}", source)
            raw_excepts = block.get("except") or []
            if not isinstance(raw_excepts, list):
                raise ValidationError(f"{f}.ipBlock.except", "must be a list of CIDRs", source)
            excepts = []
            for j, e in enumerate(raw_excepts):
                try:
                    net = ipaddress.ip_network(e, strict=False) if isinstance(e, str) else None
                except ValueError:
                    net = None
                if net is None:
                    raise ValidationError(f"{f}.ipBlock.except[{j}]", f"must be a CIDR such as 10.1.0.0/16, not {_show(e)}",
                                          source)
                if net.version != cidr.version or not net.subnet_of(cidr) or net == cidr:
                    raise ValidationError(f"{f}.ipBlock.except[{j}]", f"{net} must be strictly inside {cidr}", source)
                excepts.append(str(net))
            out.append({"ipBlock": {"cidr": str(cidr), "except": excepts}})
            continue
        peer = {}
        if "podSelector" in p:
            peer["podSelector"] = parse_selector(p["podSelector"], f"{f}.podSelector", source)
        if "namespaceSelector" in p:
            peer["namespaceSelector"] = parse_selector(p["namespaceSelector"], f"{f}.namespaceSelector", source)
        if not peer:
            raise ValidationError(f, "a peer needs podSelector, namespaceSelector or ipBlock", source)
        out.append(peer)
    return out


def _show(value: object) -> str:
    """A value as the user wrote it in YAML, for error messages (not a Python repr)."""
    import json

    return json.dumps(value) if not isinstance(value, str) else f'"{value}"'


def parse_network_policy(doc: dict, source: str, default_namespace: str = "default") -> dict:
    name, namespace, labels, spec = parse_header(doc, source, default_namespace, "NetworkPolicy",
                                                 "networking.k8s.io/v1", DNS_LABEL, 253)
    if "podSelector" not in spec:
        raise ValidationError("spec.podSelector", "is required ({} selects every pod of the namespace)", source)
    types = spec.get("policyTypes")
    if types is None:
        types = ["Ingress"] + (["Egress"] if "egress" in spec else [])
    if not isinstance(types, list) or not types or any(t not in ("Ingress", "Egress") for t in types):
        raise ValidationError("spec.policyTypes", f"must list Ingress and/or Egress, not {types!r}", source)
    rules = {}
    for direction, peer_key in (("ingress", "from"), ("egress", "to")):
        raw = spec.get(direction) or []
        if not isinstance(raw, list):
            raise ValidationError(f"spec.{direction}", "must be a list of rules", source)
        rules[direction] = [_rule(_peers(r.get(peer_key), f"spec.{direction}[{i}].{peer_key}", source), peer_key,
                                  _ports(r.get("ports"), f"spec.{direction}[{i}].ports", source))
                            for i, r in enumerate(raw) if isinstance(r, dict) or _bad_rule(direction, i, source)]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"podSelector": parse_selector(spec["podSelector"], "spec.podSelector", source),
                     "policyTypes": sorted(set(types)), **rules}}


def _rule(peers: list[dict] | None, peer_key: str, ports: list[dict]) -> dict:
    """A rule as the API server stores it: `from`/`to` only when it names peers, each port with
    only the fields it has (so what `get -o yaml` prints applies back unchanged)."""
    out: dict = {}
    if peers is not None:
        out[peer_key] = peers
    if ports:
        out["ports"] = [{k: v for k, v in p.items() if v is not None} for p in ports]
    return out


def rules(policy: dict, direction: str) -> list[tuple[list[dict] | None, list[dict]]]:
    """A stored policy's rules for "ingress" or "egress" as (peers, ports): peers None means
    every peer; each port has protocol, port (None: every port) and endPort (None: one port)."""
    peer_key = "from" if direction.lower() == "ingress" else "to"
    return [(r.get(peer_key) or None,
             [{"protocol": p.get("protocol", "TCP"), "port": p.get("port"), "endPort": p.get("endPort")} for p in r.get("ports") or []])
            for r in policy["spec"].get(direction.lower()) or []]


def _bad_rule(direction: str, i: int, source: str) -> bool:
    raise ValidationError(f"spec.{direction}[{i}]", "must be a mapping", source)


def parse_namespace(doc: dict, source: str) -> dict:
    if doc.get("apiVersion") != "v1":
        raise ValidationError("apiVersion", f"a Namespace needs apiVersion: v1, not {doc.get('apiVersion')!r}", source)
    meta = doc.get("metadata")
    if not isinstance(meta, dict):
        raise ValidationError("metadata", "is required (with a name)", source)
    from .pod import check_name

    name = check_name(meta.get("name"), "metadata.name", source, DNS_LABEL, 63)
    labels = check_labels(meta.get("labels"), "metadata.labels", source)
    labels.setdefault("kubernetes.io/metadata.name", name)  # as the API server adds it
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}
