"""Ingress and IngressClass (networking.k8s.io/v1): parsing with the field named on error, and
which class an Ingress belongs to.

An Ingress is stored as written (the spec as given, with the one default the API has: a path
of pathType ImplementationSpecific without `path` gets "/"), plus an empty status the
controller fills in. Validation is Kubernetes' (pkg/apis/networking/validation), with two
additions for the controller that renders these paths into nginx.conf: characters that would
break that file (whitespace, quotes, ';', '{', '}', '\\', '#', control characters) are refused
in every path, and backends must be Services (`resource` backends have no meaning here).

Which controller serves an Ingress is decided by `class_of`: its spec.ingressClassName, else the
deprecated annotation kubernetes.io/ingress.class, else the default IngressClass (annotation
ingressclass.kubernetes.io/is-default-class: "true"), as the DefaultIngressClass admission
plugin and ingress-nginx decide it together.
"""

from __future__ import annotations

import copy
import datetime
import ipaddress
import re

from .errors import ValidationError, listing, mapping
from .pod import DNS_1035_LABEL, DNS_LABEL, DNS_SUBDOMAIN, check_name
from .secret import check_known, object_meta

API_VERSION = "networking.k8s.io/v1"
PATH_TYPES = ("Exact", "Prefix", "ImplementationSpecific")
CLASS_ANNOTATION = "kubernetes.io/ingress.class"                     # deprecated: spec.ingressClassName
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
# Kubernetes refuses these in Exact and Prefix paths (path traversal, encoded slashes)
INVALID_PATH_SEQUENCES = ("//", "/./", "/../", "%2f", "%2F")
INVALID_PATH_SUFFIXES = ("/..", "/.")
NGINX_UNSAFE = frozenset(";{}\"'\\#")  # with whitespace and control characters: see _path_char_problem
PORT_NAME = re.compile(r"^[-a-z0-9]+$")                   # IANA service name characters (IsValidPortName)
CONTROLLER_PATH = re.compile(r"^[A-Za-z0-9/\-._~%!$&'()*+,;=:]+$")  # after the domain (IsDomainPrefixedPath)
MAX_CONTROLLER = 250
PARAMETER_SCOPES = ("Cluster", "Namespace")
HOST_RULE = ("must be a lowercase DNS name (labels of a-z, 0-9 and '-' separated by '.'; at most 253 characters), "
             "or a wildcard such as *.example.com")


# -- Ingress --------------------------------------------------------------------------------------
def parse_ingress(doc: dict, source: str, default_namespace: str = "default") -> dict:
    """The Ingress as stored: {apiVersion, kind, metadata {name, namespace, labels, annotations},
    spec (as written, paths defaulted), status: {loadBalancer: {}}}."""
    meta = object_meta(doc, source, "Ingress", API_VERSION, default_namespace)
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        raise ValidationError("spec", "is required: rules and/or a defaultBackend", source)
    check_known(spec, ("ingressClassName", "defaultBackend", "rules", "tls"), "spec", source)
    spec = copy.deepcopy(spec)
    rules = listing(spec.get("rules"), "spec.rules", source)
    if not rules and spec.get("defaultBackend") is None:
        raise ValidationError("spec", "must have rules or a defaultBackend (the Service that gets every request no rule "
                                      "matches)", source)
    if spec.get("ingressClassName") is not None:
        check_name(spec["ingressClassName"], "spec.ingressClassName", source, DNS_SUBDOMAIN, 253)
    if spec.get("defaultBackend") is not None:
        check_backend(spec["defaultBackend"], "spec.defaultBackend", source)
    for i, rule in enumerate(rules):
        _rule(rule, f"spec.rules[{i}]", source)
    for k, tls in enumerate(listing(spec.get("tls"), "spec.tls", source)):
        _tls(tls, f"spec.tls[{k}]", source)
    return {"apiVersion": API_VERSION, "kind": "Ingress", "metadata": meta, "spec": spec, "status": {"loadBalancer": {}}}


def _rule(rule: object, f: str, source: str) -> None:
    if not isinstance(rule, dict):
        raise ValidationError(f, "must be a mapping (host, http)", source)
    check_known(rule, ("host", "http"), f, source)
    if rule.get("host") not in (None, ""):
        problem = host_problem(rule["host"])
        if problem:
            raise ValidationError(f"{f}.host", problem, source)
    if rule.get("http") is None:
        return
    http = mapping(rule["http"], f"{f}.http", source)
    check_known(http, ("paths",), f"{f}.http", source)
    paths = http.get("paths")
    if not isinstance(paths, list) or not paths:
        raise ValidationError(f"{f}.http.paths", "must list at least one path (path, pathType, backend)", source)
    for j, path in enumerate(paths):
        _path(path, f"{f}.http.paths[{j}]", source)


def _path(path: object, f: str, source: str) -> None:
    """One HTTPIngressPath, checked and defaulted in place (ImplementationSpecific: path "/")."""
    if not isinstance(path, dict):
        raise ValidationError(f, "must be a mapping (path, pathType, backend)", source)
    check_known(path, ("path", "pathType", "backend"), f, source)
    ptype = path.get("pathType")
    if ptype is None:
        raise ValidationError(f"{f}.pathType", f"is required: one of {', '.join(PATH_TYPES)}", source)
    if ptype not in PATH_TYPES:
        raise ValidationError(f"{f}.pathType", f"must be one of {', '.join(PATH_TYPES)}, not {ptype!r}", source)
    if ptype == "ImplementationSpecific" and path.get("path") in (None, ""):
        path["path"] = "/"
    value = path.get("path")
    if value is None:
        raise ValidationError(f"{f}.path", f"is required for pathType {ptype}: an absolute path such as /api", source)
    if not isinstance(value, str) or not value.startswith("/"):
        raise ValidationError(f"{f}.path", f"must be an absolute path starting with '/' for pathType {ptype}, not {value!r}",
                              source)
    problem = path_problem(value, ptype)
    if problem:
        raise ValidationError(f"{f}.path", problem, source)
    if path.get("backend") is None:
        raise ValidationError(f"{f}.backend", "is required: service: {name: NAME, port: {number: PORT}}", source)
    check_backend(path["backend"], f"{f}.backend", source)


def path_problem(path: str, path_type: str) -> str:
    """Why an absolute `path` cannot be served ('' when it can)."""
    for ch in path:
        problem = _path_char_problem(ch)
        if problem:
            return problem
    if path_type in ("Exact", "Prefix"):
        for seq in INVALID_PATH_SEQUENCES:
            if seq in path:
                return f"must not contain '{seq}' (Kubernetes refuses it in pathType {path_type}), not {path!r}"
        for suffix in INVALID_PATH_SUFFIXES:
            if path.endswith(suffix):
                return f"cannot end with '{suffix}' (Kubernetes refuses it in pathType {path_type}), not {path!r}"
    return ""


def _path_char_problem(ch: str) -> str:
    if ch in NGINX_UNSAFE:
        what = repr(ch)
    elif ch == " ":
        what = "a space"
    elif ch.isspace() or not ch.isprintable():
        what = f"the character {ch!r}"
    else:
        return ""
    return (f"must not contain {what}: whitespace, quotes, ';', '{{', '}}', '\\', '#' and control characters would break "
            "the nginx configuration (percent-encode them in the URL, e.g. %20 for a space)")


def check_backend(backend: object, f: str, source: str) -> None:
    """An IngressBackend: exactly one of `service` (supported) or `resource` (refused here);
    a service has a DNS-1035 name and a port given by number or by name, never both."""
    if not isinstance(backend, dict):
        raise ValidationError(f, "must be a mapping: service: {name: NAME, port: {number: PORT}}", source)
    check_known(backend, ("service", "resource"), f, source)
    service, resource = backend.get("service"), backend.get("resource")
    if service is not None and resource is not None:
        raise ValidationError(f, "cannot set both resource and service backends", source)
    if resource is not None:
        raise ValidationError(f"{f}.resource", "only service backends are supported here: "
                                               "service: {name: NAME, port: {number: PORT}}", source)
    if service is None:
        raise ValidationError(f, "needs a service backend: service: {name: NAME, port: {number: PORT}}", source)
    service = mapping(service, f"{f}.service", source)
    check_known(service, ("name", "port"), f"{f}.service", source)
    check_name(service.get("name"), f"{f}.service.name", source, DNS_1035_LABEL, 63)
    if service.get("port") is None:
        raise ValidationError(f"{f}.service.port", "is required: {number: 80} or {name: http} (a port of the Service)",
                              source)
    port = mapping(service["port"], f"{f}.service.port", source)
    check_known(port, ("number", "name"), f"{f}.service.port", source)
    number, name = port.get("number"), port.get("name")
    if number is not None and name not in (None, ""):
        raise ValidationError(f"{f}.service.port", "must have a number or a name, not both", source)
    if number is None and name in (None, ""):
        raise ValidationError(f"{f}.service.port", "needs a number (1-65535) or a name (the name of a port of the Service)",
                              source)
    if number is not None:
        if not isinstance(number, int) or isinstance(number, bool) or not 0 < number < 65536:
            raise ValidationError(f"{f}.service.port.number", f"must be a port number (1-65535), not {number!r}", source)
    else:
        problem = port_name_problem(name)
        if problem:
            raise ValidationError(f"{f}.service.port.name", problem, source)


def port_name_problem(name: object) -> str:
    """Why `name` is not a port name (an IANA service name, as Kubernetes' IsValidPortName), or ''."""
    if (not isinstance(name, str) or len(name) > 15 or not PORT_NAME.match(name) or not re.search("[a-z]", name)
            or "--" in name or name.startswith("-") or name.endswith("-")):
        return (f"must be a port name: at most 15 characters of a-z, 0-9 and '-', with at least one letter, not beginning "
                f"or ending with '-' nor holding '--', not {name!r}")
    return ""


def host_problem(host: object) -> str:
    """Why `host` cannot be an Ingress host or TLS host ('' when it can): a lowercase DNS name
    or a wildcard whose whole first label is '*', never an IP address or a port."""
    if not isinstance(host, str) or not host:
        return "must be a DNS name such as foo.example.com"
    try:
        ipaddress.ip_address(host.strip("[]"))
        return "must be a DNS name, not an IP address"
    except ValueError:
        pass
    if ":" in host:
        return f"must not include a port ({host!r}): an Ingress serves its hosts on ports 80 and 443"
    name = host
    if "*" in host:
        if not host.startswith("*.") or "*" in host[2:]:
            return f"a wildcard is '*' as the whole first label, as in *.example.com, not {host!r}"
        name = host[2:]
    if len(host) > 253 or not DNS_SUBDOMAIN.match(name):
        return f"{host!r} {HOST_RULE}"
    return ""


def _tls(tls: object, f: str, source: str) -> None:
    if not isinstance(tls, dict):
        raise ValidationError(f, "must be a mapping (hosts, secretName)", source)
    check_known(tls, ("hosts", "secretName"), f, source)
    for i, host in enumerate(listing(tls.get("hosts"), f"{f}.hosts", source)):
        problem = host_problem(host)
        if problem:
            raise ValidationError(f"{f}.hosts[{i}]", problem, source)
    if tls.get("secretName") not in (None, ""):
        check_name(tls["secretName"], f"{f}.secretName", source, DNS_SUBDOMAIN, 253)


# -- IngressClass ---------------------------------------------------------------------------------
def parse_ingress_class(doc: dict, source: str) -> dict:
    """The IngressClass as stored (cluster-scoped): {apiVersion, kind, metadata {name, labels,
    annotations}, spec {controller[, parameters as given]}}."""
    meta = object_meta(doc, source, "IngressClass", API_VERSION, None)
    spec = mapping(doc.get("spec"), "spec", source)
    check_known(spec, ("controller", "parameters"), "spec", source)
    problem = controller_problem(spec.get("controller"))
    if problem:
        raise ValidationError("spec.controller", problem, source)
    out = {"controller": spec["controller"]}
    if spec.get("parameters") is not None:
        _parameters(spec["parameters"], "spec.parameters", source)
        out["parameters"] = copy.deepcopy(spec["parameters"])
    return {"apiVersion": API_VERSION, "kind": "IngressClass", "metadata": meta, "spec": out}


def controller_problem(controller: object) -> str:
    """Why `controller` is not a controller name (a domain-prefixed path), or ''."""
    if not isinstance(controller, str) or not controller:
        return "is required: the name of the controller that serves this class, such as k8s.io/ingress-nginx"
    if len(controller) > MAX_CONTROLLER:
        return f"must be at most {MAX_CONTROLLER} characters, not {len(controller)}"
    domain, slash, path = controller.partition("/")
    if not slash or not domain or not path:
        return f"must be a domain-prefixed path such as k8s.io/ingress-nginx, not {controller!r}"
    if len(domain) > 253 or not DNS_SUBDOMAIN.match(domain):
        return f"{controller!r}: the domain before '/' must be a lowercase DNS name such as k8s.io"
    if not CONTROLLER_PATH.match(path):
        return f"{controller!r}: after the domain only letters, digits, '/' and -._~%!$&'()*+,;=: may follow"
    return ""


def _parameters(params: object, f: str, source: str) -> None:
    """A reference to the class's configuration object: kind and name, optional apiGroup, and
    scope (Cluster, the default, or Namespace with a namespace). Kept as given."""
    params = mapping(params, f, source)
    check_known(params, ("apiGroup", "kind", "name", "namespace", "scope"), f, source)
    if params.get("apiGroup") is not None:
        check_name(params["apiGroup"], f"{f}.apiGroup", source, DNS_SUBDOMAIN, 253)
    for key in ("kind", "name"):
        value = params.get(key)
        if not isinstance(value, str) or not value or value in (".", "..") or "/" in value or "%" in value:
            raise ValidationError(f"{f}.{key}", f"is required: a name without '/' or '%', not {value!r}", source)
    scope = params.get("scope", "Cluster")
    if scope not in PARAMETER_SCOPES:
        raise ValidationError(f"{f}.scope", f"must be Cluster or Namespace, not {scope!r}", source)
    if scope == "Namespace":
        check_name(params.get("namespace"), f"{f}.namespace", source, DNS_LABEL, 63)
    elif params.get("namespace") is not None:
        raise ValidationError(f"{f}.namespace", "is only allowed with scope: Namespace", source)


# -- which class serves an Ingress ----------------------------------------------------------------
def is_default_class(cls: dict) -> bool:
    return ((cls.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true"


def _created(obj: dict) -> float:
    """creationTimestamp in seconds (0 when absent or unreadable: the oldest)."""
    try:
        return datetime.datetime.fromisoformat(obj["metadata"]["creationTimestamp"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return 0.0


def default_class(classes: list[dict]) -> dict | None:
    """The class marked default; of several, the newest, and of those created at the same time
    (or without timestamps) the first by name, as Kubernetes' DefaultIngressClass admission picks."""
    marked = [c for c in classes if is_default_class(c)]
    return min(marked, key=lambda c: (-_created(c), c["metadata"]["name"])) if marked else None


def class_of(ingress: dict, classes: list[dict]) -> dict | None:
    """The IngressClass that serves `ingress`, or None. spec.ingressClassName decides when set,
    else the deprecated annotation kubernetes.io/ingress.class; a class either names that does
    not exist means no class (the Ingress is left alone, as every controller leaves it, rather
    than served by the default). Only an Ingress naming no class gets the default class."""
    by_name = {c["metadata"]["name"]: c for c in classes}
    named = (ingress.get("spec") or {}).get("ingressClassName")
    if named:
        return by_name.get(named)
    annotated = ((ingress.get("metadata") or {}).get("annotations") or {}).get(CLASS_ANNOTATION)
    if annotated:
        return by_name.get(annotated)
    return default_class(classes)
