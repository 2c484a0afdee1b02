"""The Pod resource: what podnet reads from a manifest, validated with the field named."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import ValidationError, listing
from .keys import PODS

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # RFC 1123 label
DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")  # starts with a letter (Service names)
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
RESTART_POLICIES = ("Always", "OnFailure", "Never")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


@dataclass
class Container:
    name: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    ports: list[dict] = field(default_factory=list)


@dataclass
class Pod:
    name: str
    namespace: str
    labels: dict[str, str]
    node_name: str
    containers: list[Container]
    raw: dict
    restart_policy: str = "Always"

    @property
    def key(self) -> str:
        return f"{PODS}{self.namespace}/{self.name}"

    def to_object(self) -> dict:
        """The Pod as it is stored: the validated spec as written (nodeName, restartPolicy, ...
        included), no status yet (the kubelet writes it)."""
        meta = {"name": self.name, "namespace": self.namespace, "labels": dict(self.labels)}
        annotations = (self.raw.get("metadata") or {}).get("annotations")
        if isinstance(annotations, dict) and annotations and all(isinstance(v, str) for v in annotations.values()):
            meta["annotations"] = {k: v for k, v in annotations.items() if not str(k).startswith("podnet.io/")}
        spec = dict(self.raw.get("spec") or {})
        spec["restartPolicy"] = self.restart_policy
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def check_name(value: object, field_: str, source: str, pattern=DNS_SUBDOMAIN, limit: int = 253) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError(field_, "is required and must be a non-empty string", source)
    if len(value) > limit or not pattern.match(value):
        first = " starting with a letter" if pattern is DNS_1035_LABEL else ""
        raise ValidationError(field_, f"{value!r} must be a lowercase DNS name{first} (a-z, 0-9, '-'; at most {limit} "
                                      "characters)", source)
    return value


def label_key_problem(key: object) -> str:
    """Why `key` is not a valid label key ('' when it is): an optional DNS subdomain prefix
    and '/', then a name of at most 63 alphanumerics, '-', '_' or '.', as Kubernetes has it."""
    if not isinstance(key, str) or not key:
        return "label keys must be non-empty strings"
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix)):
        return f"label key {key!r}: the prefix before '/' must be a lowercase DNS subdomain (e.g. example.com)"
    if not name or len(name) > 63 or not QUALIFIED_NAME.match(name):
        return (f"label key {key!r}: the name must be at most 63 characters, alphanumerics, '-', '_' or '.', "
                "beginning and ending with an alphanumeric")
    return ""


def check_labels(labels: object, field_: str, source: str) -> dict[str, str]:
    if labels is None:
        return {}
    if not isinstance(labels, dict):
        raise ValidationError(field_, "must be a mapping of strings", source)
    for k, v in labels.items():
        problem = label_key_problem(k)
        if problem:
            raise ValidationError(f"{field_}.{k}", problem, source)
        if not isinstance(v, str) or len(v) > 63 or not LABEL_VALUE.match(v):
            raise ValidationError(f"{field_}.{k}", f"label value {v!r} must be a string of at most 63 characters "
                                                   "(alphanumerics, '-', '_', '.')", source)
    return dict(labels)


def parse_header(doc: dict, source: str, default_namespace: str, kind: str, api_version: str,
                 name_pattern=DNS_SUBDOMAIN, name_limit: int = 253) -> tuple[str, str, dict[str, str], dict]:
    """apiVersion, metadata (name, namespace, labels) and spec of any resource: (name, ns, labels, spec)."""
    if doc.get("apiVersion") != api_version:
        raise ValidationError("apiVersion", f"a {kind} needs apiVersion: {api_version}, not {doc.get('apiVersion')!r}", source)
    meta = doc.get("metadata")
    if not isinstance(meta, dict):
        raise ValidationError("metadata", "is required (with at least a name)", source)
    name = check_name(meta.get("name"), "metadata.name", source, name_pattern, name_limit)
    namespace = check_name(meta.get("namespace") or default_namespace, "metadata.namespace", source, DNS_LABEL, 63)
    labels = check_labels(meta.get("labels"), "metadata.labels", source)
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        raise ValidationError("spec", "is required", source)
    return name, namespace, labels, spec


def parse_pod(doc: dict, source: str, default_namespace: str = "default") -> Pod:
    name, namespace, labels, spec = parse_header(doc, source, default_namespace, "Pod", "v1")
    node_name = spec.get("nodeName") or ""
    if node_name:
        check_name(node_name, "spec.nodeName", source)
    raw_containers = spec.get("containers")
    if not isinstance(raw_containers, list) or not raw_containers:
        raise ValidationError("spec.containers", "must list at least one container", source)
    if len(raw_containers) > 1:
        raise ValidationError("spec.containers", "podnet runs one process per pod: give one container", source)
    containers = []
    for i, c in enumerate(raw_containers):
        f = f"spec.containers[{i}]"
        if not isinstance(c, dict):
            raise ValidationError(f, "must be a mapping", source)
        cname = check_name(c.get("name"), f"{f}.name", source, DNS_LABEL, 63)
        command = c.get("command")
        args = c.get("args") or []
        if not isinstance(command, list) or not command or not all(isinstance(x, str) for x in command):
            raise ValidationError(f"{f}.command", "must be a non-empty list of strings, e.g. [\"sleep\", \"3600\"] "
                                                  "(pods are processes here: there are no images)", source)
        if not isinstance(args, list) or not all(isinstance(x, str) for x in args):
            raise ValidationError(f"{f}.args", "must be a list of strings", source)
        env = {}
        for j, e in enumerate(listing(c.get("env"), f"{f}.env", source)):
            if not isinstance(e, dict) or not isinstance(e.get("name"), str) or not e["name"]:
                raise ValidationError(f"{f}.env[{j}].name", "is required", source)
            value = e.get("value", "")
            if not isinstance(value, str):
                raise ValidationError(f"{f}.env[{j}].value", f"must be a string (quote numbers and booleans), not {value!r}",
                                      source)
            env[e["name"]] = value
        ports = []
        for j, p in enumerate(listing(c.get("ports"), f"{f}.ports", source)):
            pf = f"{f}.ports[{j}]"
            if not isinstance(p, dict):
                raise ValidationError(pf, "must be a mapping", source)
            port = p.get("containerPort")
            if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
                raise ValidationError(f"{pf}.containerPort", f"must be a port number (1-65535), not {port!r}", source)
            proto = p.get("protocol", "TCP")
            if proto not in ("TCP", "UDP", "SCTP"):
                raise ValidationError(f"{pf}.protocol", f"must be TCP, UDP or SCTP, not {proto!r}", source)
            if "name" in p:
                check_name(p["name"], f"{pf}.name", source, DNS_LABEL, 15)
            ports.append({k: v for k, v in (("name", p.get("name")), ("containerPort", port), ("protocol", proto)) if v})
        containers.append(Container(cname, list(command) + list(args), env, ports))
    restart = spec.get("restartPolicy", "Always")
    if restart not in RESTART_POLICIES:
        raise ValidationError("spec.restartPolicy", f"must be one of {', '.join(RESTART_POLICIES)}, not {restart!r}", source)
    return Pod(name, namespace, labels, node_name, containers, doc, restart)


def is_ready(pod: dict) -> bool:
    """Ready to serve, as endpoints see it: the kubelet reports the Ready condition True, the
    pod has an IP and is not being deleted."""
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return False
    status = pod.get("status") or {}
    return bool(status.get("podIP")) and any(isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True"
                                             for c in status.get("conditions") or [])
