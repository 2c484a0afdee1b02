"""The routing model of an ingress-nginx-style controller: Ingresses, Services, EndpointSlices
and Secrets in, servers (one per host), locations and upstreams out. Pure: no I/O.

What a request reaches, as Kubernetes documents it (the "Examples" table of the Ingress page)
and ingress-nginx serves it:

- The Host header (its port ignored, case-insensitive) picks one server: an exact host first,
  else a wildcard `*.foo.com`, which covers exactly one more label (`bar.foo.com`, neither
  `foo.com` nor `baz.bar.foo.com`), else the catch-all server of the rules without a host.
  Only the chosen server's paths are considered: a request for a known host never falls back
  to the host-less rules (ingress-nginx keeps one nginx `server` per host).
- Within it, `Exact` matches the whole path, case-sensitively. `Prefix` matches by
  '/'-separated elements: `/foo` matches `/foo`, `/foo/` and `/foo/bar`, never `/foobar`; a
  trailing '/' in the rule changes nothing (`/foo/` is `/foo`), and `/` matches every path.
  `ImplementationSpecific` is matched as `Prefix` here (ingress-nginx matches it as a plain
  string prefix; element-wise is the stricter of the two and the one Kubernetes defines).
- Of several matching paths the longest wins (a Prefix path measured without its trailing
  '/'), and Exact beats Prefix on a tie.
- What matches nothing goes to the default backend: `spec.defaultBackend` of the oldest Ingress
  that has one, in every server; with none it is answered 404. (ingress-nginx is finer: a
  host's unmatched paths go to the defaultBackend of the Ingress that first defined the host,
  and the catch-all's to one of an Ingress without rules; one default for all is simpler to
  reason about, and the same whenever only one Ingress has a defaultBackend.)

Which Ingress wins a conflict: the same host, path and path type in two Ingresses (a Prefix
`/foo` and `/foo/` being the same path) is served by the oldest (creationTimestamp, then
namespace/name, as ingress-nginx sorts them); the other is named in a warning. The same goes
for two different TLS Secrets for one host, and for default backends.

Upstreams are the pods, not the ClusterIP (as ingress-nginx does it, so nginx balances and
retries itself): the Ingress names a Service port by number or by name, that port's name
finds the EndpointSlice port of the same name ('' when unnamed), whose number is the target
port on the pods. Endpoints that are ready (a missing condition counts as ready) are used; if
none is, those serving while terminating are (as kube-proxy falls back). A path whose Service,
port or endpoints are missing answers 503 with the reason, and the reason is reported as a
problem of its Ingress. A TLS Secret that is missing or holds no tls.crt/tls.key is reported
too, and that host is then served without TLS of its own. A TLS entry without hosts is taken
for the catch-all server ("the wildcard host of the load balancer", as the API puts it).

`Model.route(host, path)` is the reference matcher: what the rendered nginx.conf must do (the
unit tests check the model against the docs' table, the live test nginx against both).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass, field, replace

from ..api.errors import ValidationError
from ..api.secret import TLS, tls_pair

EXACT, PREFIX, IMPL = "Exact", "Prefix", "ImplementationSpecific"
SSL_REDIRECT = "nginx.ingress.kubernetes.io/ssl-redirect"
FALSE_WORDS = ("0", "f", "F", "false", "False", "FALSE")   # what Go's strconv.ParseBool reads as false
NEWEST = datetime.datetime.max.replace(tzinfo=datetime.UTC)

Ident = tuple[str, str]  # (namespace, name)


# -- the model ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Location:
    """One path of one server, and what answers it: the upstream to proxy to, or a fixed
    response (`status` with `body`) when there is nothing to proxy to."""

    path: str                         # as the rule wrote it
    path_type: str                    # Exact, Prefix or ImplementationSpecific (matched as Prefix)
    upstream: str | None = None       # a key of Model.upstreams; None: answer `status`
    status: int = 0                   # 503 (no Service, port or ready endpoint) or 404 (no default backend)
    body: str = ""                    # the reason given with `status`
    ingress: Ident = ("", "")         # the Ingress that produced it (("", "") for the built-in 404)
    backend: str = ""                 # "ns/service:port" as the Ingress named it
    ssl_redirect: bool = False        # plain HTTP is redirected to HTTPS (the server has TLS)

    @property
    def exact(self) -> bool:
        return self.path_type == EXACT

    @property
    def key(self) -> str:
        """The path as matched: a Prefix path without its trailing '/' ('/' stays '/')."""
        return self.path if self.exact else prefix_key(self.path)

    def matches(self, path: str) -> bool:
        return path_matches(self.path, self.path_type, path)


@dataclass
class Server:
    """One host (exact, `*.` wildcard, or '' for the catch-all) and its locations, sorted by
    (matched path, Exact first)."""

    host: str
    locations: list[Location] = field(default_factory=list)
    tls_secret: Ident | None = None   # the Secret (namespace, name) holding its certificate
    ssl_redirect: bool = False        # unmatched paths over plain HTTP are redirected too

    @property
    def wildcard(self) -> bool:
        return self.host.startswith("*.")

    def serves(self, host: str) -> bool:
        """Whether a request for `host` (normalised: lowercase, no port) picks this server by
        name (the catch-all answers what no server names; see Model.server_for)."""
        return host_matches(self.host, host) if self.host else False

    def route(self, path: str) -> Location | None:
        """The location serving `path`, None when none matches (the default backend does)."""
        best = None
        for loc in self.locations:
            if loc.matches(path) and (best is None or (len(loc.key), loc.exact) > (len(best.key), best.exact)):
                best = loc
        return best


@dataclass
class Model:
    servers: list[Server]                   # exact hosts, then wildcards (each by name), then the catch-all ''
    upstreams: dict[str, list[str]]         # name -> sorted "ip:port" ("[v6]:port") of ready pods
    default_backend: Location               # answers what no location matches (404 when no Ingress gives one)
    problems: dict[Ident, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def server(self, host: str) -> Server | None:
        return next((s for s in self.servers if s.host == host), None)

    def server_for(self, host: str) -> Server:
        """The server a request with this Host header reaches: exact name, else wildcard, else
        the catch-all."""
        host = normal_host(host)
        for want_wildcard in (False, True):
            for s in self.servers:
                if s.host and s.wildcard == want_wildcard and s.serves(host):
                    return s
        return self.servers[-1]

    def route(self, host: str, path: str) -> Location:
        """What answers a request for (Host header, path): the reference semantics that the
        rendered nginx.conf implements (tests compare the two)."""
        server = self.server_for(host)
        return server.route(path) or self.default_backend


# -- matching -------------------------------------------------------------------------------------
def prefix_key(path: str) -> str:
    return path.rstrip("/") or "/"


def path_matches(rule_path: str, path_type: str, path: str) -> bool:
    if path_type == EXACT:
        return path == rule_path
    key = prefix_key(rule_path)
    return key == "/" or path == key or path.startswith(key + "/")


def normal_host(host: str) -> str:
    """A Host header as nginx matches it: lowercase, without the port and a trailing dot."""
    host = (host or "").strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.partition(":")[0].rstrip(".")


def host_matches(rule_host: str, host: str) -> bool:
    if rule_host.startswith("*."):
        label, dot, rest = host.partition(".")
        return bool(label) and bool(dot) and rest == rule_host[2:]
    return host == rule_host


# -- building -------------------------------------------------------------------------------------
def build(ingresses: list[dict], services: dict[Ident, dict], slices: dict[Ident, dict],
          secrets: dict[Ident, dict], now_order: str | None = None) -> Model:
    """The model of these Ingresses (already those of this controller's class).

    services, slices and secrets are keyed by (namespace, name); slices[(ns, svc)] is the list of
    that Service's EndpointSlices as stored ({"items": [...]}). `now_order` is the
    creationTimestamp assumed for an Ingress without one (default: newer than any other)."""
    b = _Builder(services, slices, secrets)
    ordered = sorted(ingresses, key=lambda i: _age(i, now_order))
    for ing in ordered:
        b.add_rules(ing)
    for ing in ordered:
        b.add_tls(ing)
    for ing in ordered:
        b.add_default(ing)
    return b.finish()


def ident(ing: dict) -> Ident:
    meta = ing.get("metadata") or {}
    return meta.get("namespace") or "default", meta.get("name") or ""


def _age(ing: dict, now_order: str | None) -> tuple:
    """Oldest first: creationTimestamp, then namespace/name."""
    ts = (ing.get("metadata") or {}).get("creationTimestamp") or now_order
    when = NEWEST
    if ts:
        try:
            when = datetime.datetime.fromisoformat(ts)
            if when.tzinfo is None:
                when = when.replace(tzinfo=datetime.UTC)
        except (TypeError, ValueError, AttributeError):
            when = NEWEST
    return (when, *ident(ing))


def _name(i: Ident) -> str:
    return f"{i[0]}/{i[1]}"


def ssl_redirect_of(ing: dict) -> bool:
    value = ((ing.get("metadata") or {}).get("annotations") or {}).get(SSL_REDIRECT)
    return not (isinstance(value, str) and value.strip() in FALSE_WORDS)


class _Builder:
    def __init__(self, services: dict, slices: dict, secrets: dict) -> None:
        self.services, self.slices, self.secrets = services, slices, secrets
        self.servers: dict[str, dict[tuple[str, str], Location]] = {"": {}}
        self.owner: dict[tuple[str, str, str], Ident] = {}   # (host, type, key) -> Ingress that has it
        self.tls: dict[str, tuple[Ident, Ident]] = {}        # host -> (Ingress, Secret)
        self.tls_redirect: dict[str, bool] = {}
        self.upstreams: dict[str, list[str]] = {}
        self.problems: dict[Ident, list[str]] = {}
        self.warnings: list[str] = []
        self.default: Location | None = None
        self.redirect_of: dict[Ident, bool] = {}

    def problem(self, ing: Ident, text: str) -> None:
        got = self.problems.setdefault(ing, [])
        if text not in got:
            got.append(text)

    def warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)

    # -- rules --------------------------------------------------------------------------------------
    def add_rules(self, ing: dict) -> None:
        who = ident(ing)
        self.redirect_of[who] = ssl_redirect_of(ing)
        for rule in (ing.get("spec") or {}).get("rules") or []:
            host = (rule.get("host") or "").lower()
            locations = self.servers.setdefault(host, {})
            for p in ((rule.get("http") or {}).get("paths") or []):
                path, ptype = p.get("path") or "/", p.get("pathType") or IMPL
                match_type = EXACT if ptype == EXACT else PREFIX
                key = path if match_type == EXACT else prefix_key(path)
                slot = (key, match_type)
                if slot in locations:
                    first = locations[slot].ingress
                    where = f"host {host!r}" if host else "the rules without host"
                    if first == who:
                        self.warn(f"{_name(who)}: path {path} ({ptype}) of {where} is given twice; the first one is used")
                    else:
                        self.warn(f"{_name(who)}: path {path} ({ptype}) of {where} is already served by "
                                  f"{_name(first)} (the older Ingress), so {_name(who)}'s is ignored")
                    continue
                locations[slot] = self.location(who, path, ptype, p.get("backend") or {})

    def location(self, who: Ident, path: str, ptype: str, backend: dict) -> Location:
        upstream, status, body, label = self.resolve(who, backend)
        return Location(path=path, path_type=ptype, upstream=upstream, status=status, body=body, ingress=who,
                        backend=label)

    def resolve(self, who: Ident, backend: dict) -> tuple[str | None, int, str, str]:
        """(upstream, status, body, label) of an IngressBackend: an upstream of ready pods, or
        503 with the reason (which is also a problem of the Ingress)."""
        svc_ref = backend.get("service") or {}
        ns, name = who[0], svc_ref.get("name") or ""
        port_ref = svc_ref.get("port") or {}
        number, pname = port_ref.get("number"), port_ref.get("name")
        wanted = str(number) if number is not None else (pname or "")
        label = f"{ns}/{name}:{wanted}"
        svc = self.services.get((ns, name))
        reason = ""
        if svc is None:
            reason = f"service {ns}/{name} not found"
        else:
            spec = svc.get("spec") or {}
            if spec.get("type") == "ExternalName":
                reason = f"service {ns}/{name} is of type ExternalName, which this controller does not proxy to"
            port = _service_port(spec, number, pname)
            if not reason and port is None:
                reason = (f"service {ns}/{name} has no port {number}" if number is not None
                          else f"service {ns}/{name} has no port named {pname}")
            if not reason:
                addrs = endpoints(self.slices.get((ns, name)), port.get("name") or "")
                if not addrs:
                    reason = f"service {ns}/{name} has no ready endpoints"
                else:
                    up = upstream_name(ns, name, port.get("port"))
                    self.upstreams[up] = addrs
                    return up, 0, "", label
        self.problem(who, reason)
        return None, 503, reason, label

    # -- TLS ----------------------------------------------------------------------------------------
    def add_tls(self, ing: dict) -> None:
        who = ident(ing)
        for entry in (ing.get("spec") or {}).get("tls") or []:
            secret_name = entry.get("secretName")
            if not secret_name:
                continue  # SNI routing only: no certificate of its own
            hosts = [h.lower() for h in entry.get("hosts") or []] or [""]  # no hosts: the catch-all
            secret = (who[0], secret_name)
            usable = None
            for host in hosts:
                if host not in self.servers:
                    self.warn(f"{_name(who)}: TLS host {host!r} has no rule in any Ingress, so nothing serves it")
                    continue
                if host in self.tls:
                    first_ing, first_secret = self.tls[host]
                    if first_secret != secret:
                        shown = repr(host) if host else "(the catch-all)"
                        self.warn(f"{_name(who)}: TLS for host {shown} already comes from secret {_name(first_secret)} "
                                  f"of {_name(first_ing)} (the older Ingress), so secret {_name(secret)} is ignored")
                    continue
                if usable is None:
                    usable = self.secret_problem(secret)
                    if usable:
                        self.problem(who, usable)
                if usable:
                    continue
                self.tls[host] = (who, secret)
                self.tls_redirect[host] = self.redirect_of.get(who, True)

    def secret_problem(self, secret: Ident) -> str:
        obj = self.secrets.get(secret)
        if obj is None:
            return f"secret {_name(secret)} not found"
        try:
            crt, key = tls_pair(obj)
        except ValidationError:
            return f"secret {_name(secret)} is not a {TLS} secret (it needs tls.crt and tls.key)"
        if b"-----BEGIN CERTIFICATE-----" not in crt or b"PRIVATE KEY-----" not in key:
            return f"secret {_name(secret)} is not a {TLS} secret (tls.crt and tls.key must be PEM)"
        return ""

    # -- default backend ----------------------------------------------------------------------------
    def add_default(self, ing: dict) -> None:
        backend = (ing.get("spec") or {}).get("defaultBackend")
        if not backend:
            return
        who = ident(ing)
        if self.default is not None:
            self.warn(f"{_name(who)}: the default backend already comes from {_name(self.default.ingress)} "
                      f"(the older Ingress), so {_name(who)}'s spec.defaultBackend is ignored")
            return
        self.default = self.location(who, "/", PREFIX, backend)

    # -- the result ---------------------------------------------------------------------------------
    def finish(self) -> Model:
        servers = []
        for host, locations in self.servers.items():
            tls = self.tls.get(host)
            server = Server(host=host, tls_secret=tls[1] if tls else None,
                            ssl_redirect=bool(tls) and self.tls_redirect.get(host, True))
            for loc in sorted(locations.values(), key=lambda l: (l.key, not l.exact, l.path)):
                redirect = bool(tls) and self.redirect_of.get(loc.ingress, True)
                server.locations.append(replace(loc, ssl_redirect=redirect))
            servers.append(server)
        servers.sort(key=lambda s: (s.host == "", s.wildcard, s.host))
        default = self.default or Location(path="/", path_type=PREFIX, status=404, body="")
        upstreams = {k: self.upstreams[k] for k in sorted(self.upstreams)}
        problems = {k: self.problems[k] for k in sorted(self.problems)}
        return Model(servers=servers, upstreams=upstreams, default_backend=default, problems=problems,
                     warnings=list(self.warnings))


# -- Services and EndpointSlices ------------------------------------------------------------------
def _service_port(spec: dict, number: int | None, name: str | None) -> dict | None:
    for port in spec.get("ports") or []:
        if (port.get("protocol") or "TCP") != "TCP":
            continue
        if number is not None and port.get("port") == number:
            return port
        if number is None and name and port.get("name") == name:
            return port
    return None


def endpoints(slice_list: dict | None, port_name: str) -> list[str]:
    """Sorted, distinct "ip:port" of the endpoints behind the Service port named `port_name`
    ('' for an unnamed one): the ready ones, else those serving while terminating."""
    ready, terminating = set(), set()
    for sl in (slice_list or {}).get("items") or []:
        port = next((p.get("port") for p in sl.get("ports") or []
                     if (p.get("name") or "") == port_name and (p.get("protocol") or "TCP") == "TCP"), None)
        if not isinstance(port, int):
            continue
        for ep in sl.get("endpoints") or []:
            addrs = ep.get("addresses") or []
            if not addrs:
                continue
            hostport = _hostport(addrs[0], port)  # consumers use the first address (EndpointSlice API)
            cond = ep.get("conditions") or {}
            if cond.get("ready") is None or cond.get("ready"):
                ready.add(hostport)
            elif (cond.get("serving") is None or cond.get("serving")) and cond.get("terminating"):
                terminating.add(hostport)
    return sorted(ready or terminating, key=_addr_order)


def _hostport(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def _addr_order(hostport: str) -> tuple:
    host, _, port = hostport.rpartition(":")
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
        return (ip.version, int(ip), int(port))
    except ValueError:
        return (9, 0, hostport)


def upstream_name(namespace: str, service: str, port: object) -> str:
    """nginx-safe and unambiguous: namespaces and Service names are DNS labels, which hold no
    '_', so `default_web_80` cannot be read two ways (`default-web-80` could: a-b/c vs a/b-c)."""
    return f"{namespace}_{service}_{port}"
