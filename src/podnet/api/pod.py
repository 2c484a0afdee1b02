"""The Pod resource: what podnet reads from a manifest, validated with the field named."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from .errors import ValidationError, listing, mapping
from .keys import PODS

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # RFC 1123 label
DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")  # starts with a letter (Service names)
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
RESTART_POLICIES = ("Always", "OnFailure", "Never")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
HTTP_TOKEN = re.compile(r"^[-!#$%&'*+.^_`|~0-9A-Za-z]+$")  # an HTTP header name (RFC 7230 token)
DNS_POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")
MAX_NAMESERVERS, MAX_SEARCHES, MAX_SEARCH_CHARS = 3, 32, 2048  # Kubernetes' limits on spec.dnsConfig
PROBES = ("readinessProbe", "livenessProbe", "startupProbe")
PROBE_HANDLERS = ("exec", "httpGet", "tcpSocket")  # grpc is a Kubernetes handler podnet does not run
# the probe's numeric fields: (default, least allowed value)
PROBE_DEFAULTS = {"initialDelaySeconds": (0, 0), "periodSeconds": (10, 1), "timeoutSeconds": (1, 1),
                  "successThreshold": (1, 1), "failureThreshold": (3, 1)}
HOOKS = ("postStart", "preStop")
HOOK_HANDLERS = ("exec", "httpGet", "tcpSocket", "sleep")  # podnet runs exec and sleep


@dataclass
class Container:
    name: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    ports: list[dict] = field(default_factory=list)
    # "readinessProbe" / "livenessProbe" / "startupProbe" -> the probe in the Kubernetes shape with
    # every default filled in and named ports resolved to numbers (the runtime reads no names)
    probes: dict[str, dict] = field(default_factory=dict)
    pre_stop: list[str] = field(default_factory=list)    # argv of the preStop hook ([] when none)
    post_start: list[str] = field(default_factory=list)  # argv of the postStart hook ([] when none)


@dataclass
class Pod:
    name: str
    namespace: str
    labels: dict[str, str]
    node_name: str
    containers: list[Container]
    raw: dict
    restart_policy: str = "Always"
    init_containers: list[Container] = field(default_factory=list)
    hostname: str = ""
    subdomain: str = ""
    host_network: bool = False
    dns_policy: str = "ClusterFirst"
    dns_config: dict = field(default_factory=dict)  # {} or {"nameservers": [...], "searches": [...], "options": [...]}
    host_aliases: list[tuple[str, list[str]]] = field(default_factory=list)
    grace: float = 30.0  # spec.terminationGracePeriodSeconds

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
    host_network = spec.get("hostNetwork", False)
    if not isinstance(host_network, bool):
        raise ValidationError("spec.hostNetwork", f"must be true or false, not {host_network!r}", source)
    grace = _whole(spec.get("terminationGracePeriodSeconds", 30), "spec.terminationGracePeriodSeconds", source, 0)
    raw_containers = spec.get("containers")
    if not isinstance(raw_containers, list) or not raw_containers:
        raise ValidationError("spec.containers", "must list at least one container", source)
    names: set[str] = set()  # container names are unique across initContainers and containers
    init_containers = [_container(c, f"spec.initContainers[{i}]", source, names, init=True, host_network=host_network,
                                  grace=grace)
                       for i, c in enumerate(listing(spec.get("initContainers"), "spec.initContainers", source))]
    containers = [_container(c, f"spec.containers[{i}]", source, names, init=False, host_network=host_network, grace=grace)
                  for i, c in enumerate(raw_containers)]
    restart = spec.get("restartPolicy", "Always")
    if restart not in RESTART_POLICIES:
        raise ValidationError("spec.restartPolicy", f"must be one of {', '.join(RESTART_POLICIES)}, not {restart!r}", source)
    hostname = _optional_label(spec, "hostname", source)
    subdomain = _optional_label(spec, "subdomain", source)
    dns_policy = spec.get("dnsPolicy", "ClusterFirst")
    if dns_policy not in DNS_POLICIES:
        raise ValidationError("spec.dnsPolicy", f"must be one of {', '.join(DNS_POLICIES)}, not {dns_policy!r}", source)
    dns_config = _dns_config(spec.get("dnsConfig"), source)
    if dns_policy == "None" and not dns_config.get("nameservers"):
        raise ValidationError("spec.dnsConfig.nameservers", "dnsPolicy None needs at least one nameserver", source)
    return Pod(name, namespace, labels, node_name, containers, doc, restart, init_containers, hostname, subdomain,
               host_network, dns_policy, dns_config, _host_aliases(spec.get("hostAliases"), source), float(grace))


# -- containers -----------------------------------------------------------------------------------
def _container(c: object, f: str, source: str, names: set[str], *, init: bool, host_network: bool,
               grace: int) -> Container:
    """One entry of spec.containers or spec.initContainers (`f` is its field path). `names` holds
    the names of the pod's containers parsed so far, and gets this one's."""
    if not isinstance(c, dict):
        raise ValidationError(f, "must be a mapping", source)
    cname = check_name(c.get("name"), f"{f}.name", source, DNS_LABEL, 63)
    if cname in names:
        raise ValidationError(f"{f}.name", f"{cname!r} is used by another container of this pod", source)
    names.add(cname)
    command = c.get("command")
    args = c.get("args") or []
    if not isinstance(command, list) or not command or not all(isinstance(x, str) for x in command):
        raise ValidationError(f"{f}.command", "must be a non-empty list of strings, e.g. [\"sleep\", \"3600\"] "
                                              "(pods are processes here: there are no images)", source)
    if not isinstance(args, list) or not all(isinstance(x, str) for x in args):
        raise ValidationError(f"{f}.args", "must be a list of strings", source)
    env = _env(c.get("env"), f"{f}.env", source)
    ports = _ports(c.get("ports"), f"{f}.ports", source, host_network)
    if init:
        for key in (*PROBES, "lifecycle"):
            if c.get(key) is not None:
                raise ValidationError(f"{f}.{key}", "is not allowed for init containers", source)
    probes = {kind: _probe(c[kind], f"{f}.{kind}", source, kind, ports)
              for kind in PROBES if c.get(kind) is not None}
    lifecycle = mapping(c.get("lifecycle"), f"{f}.lifecycle", source)
    _known(lifecycle, HOOKS, f"{f}.lifecycle", source)
    hooks = {hook: _hook(lifecycle[hook], f"{f}.lifecycle.{hook}", source, grace)
             for hook in HOOKS if lifecycle.get(hook) is not None}
    return Container(cname, list(command) + list(args), env, ports, probes, hooks.get("preStop", []),
                     hooks.get("postStart", []))


def _env(raw: object, f: str, source: str) -> dict[str, str]:
    env = {}
    for j, e in enumerate(listing(raw, f, source)):
        if not isinstance(e, dict) or not isinstance(e.get("name"), str) or not e["name"]:
            raise ValidationError(f"{f}[{j}].name", "is required", source)
        value = e.get("value", "")
        if not isinstance(value, str):
            raise ValidationError(f"{f}[{j}].value", f"must be a string (quote numbers and booleans), not {value!r}", source)
        env[e["name"]] = value
    return env


def _ports(raw: object, f: str, source: str, host_network: bool) -> list[dict]:
    """A container's ports as {name?, containerPort, protocol, hostPort?}. On the host's network a
    host port is the container port itself, so the two may not differ."""
    ports = []
    for j, p in enumerate(listing(raw, f, source)):
        pf = f"{f}[{j}]"
        if not isinstance(p, dict):
            raise ValidationError(pf, "must be a mapping", source)
        port = _port_number(p.get("containerPort"), f"{pf}.containerPort", source)
        host_port = p.get("hostPort")
        if host_port is not None:
            _port_number(host_port, f"{pf}.hostPort", source)
            if host_network and host_port != port:
                raise ValidationError(f"{pf}.hostPort", f"must equal containerPort ({port}) when hostNetwork is true, "
                                                        f"not {host_port}", source)
        proto = p.get("protocol", "TCP")
        if proto not in ("TCP", "UDP", "SCTP"):
            raise ValidationError(f"{pf}.protocol", f"must be TCP, UDP or SCTP, not {proto!r}", source)
        if "name" in p:
            check_name(p["name"], f"{pf}.name", source, DNS_LABEL, 15)
        ports.append({k: v for k, v in (("name", p.get("name")), ("containerPort", port), ("protocol", proto),
                                        ("hostPort", host_port)) if v})
    return ports


# -- probes and lifecycle hooks -------------------------------------------------------------------
def _probe(raw: object, f: str, source: str, kind: str, ports: list[dict]) -> dict:
    """A probe in the Kubernetes shape with every default filled in; a named port becomes the
    number of the container's port of that name."""
    if not isinstance(raw, dict):
        raise ValidationError(f, "must be a mapping", source)
    _known(raw, (*PROBE_HANDLERS, "grpc", *PROBE_DEFAULTS, "terminationGracePeriodSeconds"), f, source)
    handler = _one_handler(raw, (*PROBE_HANDLERS, "grpc"), f, source, "exec, httpGet or tcpSocket")
    if handler == "grpc":
        raise ValidationError(f"{f}.grpc", "gRPC probes are not supported here: use exec, httpGet or tcpSocket", source)
    hf = f"{f}.{handler}"
    body = mapping(raw[handler], hf, source)
    if handler == "exec":
        _known(body, ("command",), hf, source)
        probe: dict = {"exec": {"command": _command(body.get("command"), f"{hf}.command", source)}}
    elif handler == "tcpSocket":
        _known(body, ("port", "host"), hf, source)
        probe = {"tcpSocket": {"port": _probe_port(body.get("port"), f"{hf}.port", source, ports),
                               **_host(body, hf, source)}}
    else:
        probe = {"httpGet": _http_get(body, hf, source, ports)}
    for key, (default, least) in PROBE_DEFAULTS.items():
        probe[key] = _whole(raw.get(key, default), f"{f}.{key}", source, least)
    if kind != "readinessProbe" and probe["successThreshold"] != 1:
        raise ValidationError(f"{f}.successThreshold", "must be 1 for liveness and startup probes", source)
    if raw.get("terminationGracePeriodSeconds") is not None:
        if kind == "readinessProbe":
            raise ValidationError(f"{f}.terminationGracePeriodSeconds", "is only allowed for liveness and startup probes",
                                  source)
        probe["terminationGracePeriodSeconds"] = _whole(raw["terminationGracePeriodSeconds"],
                                                        f"{f}.terminationGracePeriodSeconds", source, 1)
    return probe


def _http_get(body: dict, f: str, source: str, ports: list[dict]) -> dict:
    _known(body, ("path", "port", "host", "scheme", "httpHeaders"), f, source)
    path = body.get("path") or "/"
    if not isinstance(path, str):
        raise ValidationError(f"{f}.path", f"must be a string, not {path!r}", source)
    scheme = body.get("scheme", "HTTP")
    if scheme not in ("HTTP", "HTTPS"):
        raise ValidationError(f"{f}.scheme", f"must be HTTP or HTTPS, not {scheme!r}", source)
    get = {"path": path, "port": _probe_port(body.get("port"), f"{f}.port", source, ports), "scheme": scheme,
           **_host(body, f, source)}
    headers = []
    for j, h in enumerate(listing(body.get("httpHeaders"), f"{f}.httpHeaders", source)):
        hf = f"{f}.httpHeaders[{j}]"
        if not isinstance(h, dict):
            raise ValidationError(hf, "must be a mapping with name and value", source)
        if not isinstance(h.get("name"), str) or not HTTP_TOKEN.match(h["name"]):
            raise ValidationError(f"{hf}.name", f"must be an HTTP header name, not {h.get('name')!r}", source)
        if not isinstance(h.get("value", ""), str):
            raise ValidationError(f"{hf}.value", f"must be a string, not {h['value']!r}", source)
        headers.append({"name": h["name"], "value": h.get("value", "")})
    if headers:
        get["httpHeaders"] = headers
    return get


def _host(body: dict, f: str, source: str) -> dict:
    """{"host": ...} when the handler names a host (else the pod's IP is probed), or {}."""
    host = body.get("host")
    if host is None or host == "":
        return {}
    if not isinstance(host, str):
        raise ValidationError(f"{f}.host", f"must be a string, not {host!r}", source)
    return {"host": host}


def _probe_port(port: object, f: str, source: str, ports: list[dict]) -> int:
    """A probe's port: a number, or the name of one of the container's ports (its number)."""
    if isinstance(port, str) and port:
        for p in ports:
            if p.get("name") == port:
                return p["containerPort"]
        raise ValidationError(f, f"{port!r} is not the name of a port of this container", source)
    return _port_number(port, f, source)


def _hook(raw: object, f: str, source: str, grace: int) -> list[str]:
    """A lifecycle hook as the argv the runtime runs: the exec command, or ["sleep", "N"]."""
    if not isinstance(raw, dict):
        raise ValidationError(f, "must be a mapping", source)
    _known(raw, HOOK_HANDLERS, f, source)
    handler = _one_handler(raw, HOOK_HANDLERS, f, source, "exec or sleep")
    hf = f"{f}.{handler}"
    if handler not in ("exec", "sleep"):
        raise ValidationError(hf, f"{handler} hooks are not supported here: use exec or sleep", source)
    body = mapping(raw[handler], hf, source)
    if handler == "exec":
        _known(body, ("command",), hf, source)
        return _command(body.get("command"), f"{hf}.command", source)
    _known(body, ("seconds",), hf, source)
    seconds = _whole(body.get("seconds"), f"{hf}.seconds", source, 1)
    if seconds > grace:  # as Kubernetes has it: the hook may not outlast the pod's grace period
        raise ValidationError(f"{hf}.seconds", f"must not exceed terminationGracePeriodSeconds ({grace}), not {seconds}",
                              source)
    return ["sleep", str(seconds)]


def _one_handler(raw: dict, handlers: tuple[str, ...], f: str, source: str, supported: str) -> str:
    """The one handler a probe or hook names (the key present among `handlers`)."""
    given = [h for h in handlers if raw.get(h) is not None]
    if not given:
        raise ValidationError(f, f"must have a handler: {supported}", source)
    if len(given) > 1:
        raise ValidationError(f, f"may not specify more than 1 handler type (has {' and '.join(given)})", source)
    return given[0]


def _command(command: object, f: str, source: str) -> list[str]:
    if not isinstance(command, list) or not command or not all(isinstance(x, str) for x in command):
        raise ValidationError(f, "must be a non-empty list of strings", source)
    return list(command)


# -- pod-level fields -----------------------------------------------------------------------------
def _optional_label(spec: dict, key: str, source: str) -> str:
    """spec.hostname or spec.subdomain: '' when absent, else an RFC 1123 DNS label."""
    value = spec.get(key)
    if value is None or value == "":
        return ""
    return check_name(value, f"spec.{key}", source, DNS_LABEL, 63)


def _dns_config(raw: object, source: str) -> dict:
    """spec.dnsConfig as {nameservers, searches, options} ({} when absent), with the limits
    Kubernetes puts on them (they end up in the pod's resolv.conf)."""
    f = "spec.dnsConfig"
    if raw is None:
        return {}
    config = mapping(raw, f, source)
    _known(config, ("nameservers", "searches", "options"), f, source)
    nameservers = []
    for j, ns in enumerate(listing(config.get("nameservers"), f"{f}.nameservers", source)):
        if j >= MAX_NAMESERVERS:
            raise ValidationError(f"{f}.nameservers[{j}]", f"at most {MAX_NAMESERVERS} nameservers are allowed", source)
        nameservers.append(_ip(ns, f"{f}.nameservers[{j}]", source))
    searches = []
    for j, s in enumerate(listing(config.get("searches"), f"{f}.searches", source)):
        if j >= MAX_SEARCHES:
            raise ValidationError(f"{f}.searches[{j}]", f"at most {MAX_SEARCHES} search domains are allowed", source)
        name = s[:-1] if isinstance(s, str) and s.endswith(".") else s  # a trailing dot (fully qualified) is fine
        check_name(name, f"{f}.searches[{j}]", source)
        searches.append(s)
    if len(" ".join(searches)) > MAX_SEARCH_CHARS:
        raise ValidationError(f"{f}.searches", f"must be at most {MAX_SEARCH_CHARS} characters in all", source)
    options = []
    for j, o in enumerate(listing(config.get("options"), f"{f}.options", source)):
        of = f"{f}.options[{j}]"
        if not isinstance(o, dict) or not isinstance(o.get("name"), str) or not o["name"]:
            raise ValidationError(f"{of}.name", "is required and must be a non-empty string", source)
        if "value" in o and not isinstance(o["value"], str):
            raise ValidationError(f"{of}.value", f"must be a string (quote numbers), not {o['value']!r}", source)
        options.append({k: o[k] for k in ("name", "value") if k in o})
    return {"nameservers": nameservers, "searches": searches, "options": options}


def _host_aliases(raw: object, source: str) -> list[tuple[str, list[str]]]:
    """spec.hostAliases as (ip, hostnames) pairs: extra lines of the pod's /etc/hosts."""
    aliases = []
    for j, a in enumerate(listing(raw, "spec.hostAliases", source)):
        f = f"spec.hostAliases[{j}]"
        if not isinstance(a, dict):
            raise ValidationError(f, "must be a mapping with ip and hostnames", source)
        ip = _ip(a.get("ip"), f"{f}.ip", source)
        hostnames = a.get("hostnames")
        if not isinstance(hostnames, list) or not hostnames:
            raise ValidationError(f"{f}.hostnames", "must be a non-empty list of host names", source)
        for k, h in enumerate(hostnames):
            if not isinstance(h, str) or not h or any(ch.isspace() for ch in h):
                raise ValidationError(f"{f}.hostnames[{k}]", f"must be a non-empty host name without spaces, not {h!r}",
                                      source)
        aliases.append((ip, list(hostnames)))
    return aliases


# -- values ---------------------------------------------------------------------------------------
def _whole(value: object, f: str, source: str, least: int) -> int:
    """An integer of at least `least` (a bool is not an integer here, though Python says so)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError(f, f"must be a whole number, not {value!r}", source)
    if value < least:
        raise ValidationError(f, f"must be at least {least}, not {value}", source)
    return value


def _port_number(port: object, f: str, source: str) -> int:
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ValidationError(f, f"must be a port number (1-65535), not {port!r}", source)
    return port


def _ip(value: object, f: str, source: str) -> str:
    if isinstance(value, str):
        try:
            ipaddress.ip_address(value)
            return value
        except ValueError:
            pass
    raise ValidationError(f, f"must be an IPv4 or IPv6 address, not {value!r}", source)


def _known(raw: dict, allowed: tuple[str, ...], f: str, source: str) -> None:
    """Refuse a key outside `allowed`: in these small fixed schemas an unknown key is a typo
    (periodSecond, prestop) that would otherwise silently fall back to a default."""
    for key in raw:
        if key not in allowed:
            raise ValidationError(f"{f}.{key}", f"is not a known field (known: {', '.join(allowed)})", source)


def is_ready(pod: dict) -> bool:
    """Ready to serve, as endpoints see it: the kubelet reports the Ready condition True, the
    pod has an IP and is not being deleted."""
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return False
    status = pod.get("status") or {}
    return bool(status.get("podIP")) and any(isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True"
                                             for c in status.get("conditions") or [])
