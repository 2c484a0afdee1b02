"""The routing model: which backend answers (the Kubernetes docs' pathType examples table and
hostname wildcards, as data shared with the live nginx test), what is reported as a problem,
and who wins a conflict."""

from __future__ import annotations

import base64
import random

import pytest

from podnet.ingress import model
from podnet.ingress.model import build

T0 = "2024-01-01T00:00:00Z"


# -- builders (also used by test_nginx and test_matching_live) -------------------------------------
def backend(svc: str, port: int | str = 80) -> dict:
    return {"service": {"name": svc, "port": {"number": port} if isinstance(port, int) else {"name": port}}}


def path(p: str, ptype: str, svc: str, port: int | str = 80) -> dict:
    return {"path": p, "pathType": ptype, "backend": backend(svc, port)}


def rule(host: str | None, *paths: dict) -> dict:
    out = {"http": {"paths": list(paths)}}
    if host:
        out["host"] = host
    return out


def ingress(name: str, *rules: dict, ns: str = "default", created: str | None = T0, default: dict | None = None,
            tls: list | None = None, annotations: dict | None = None) -> dict:
    meta = {"name": name, "namespace": ns, "annotations": annotations or {}}
    if created:
        meta["creationTimestamp"] = created
    spec: dict = {}
    if rules:
        spec["rules"] = list(rules)
    if default:
        spec["defaultBackend"] = default
    if tls:
        spec["tls"] = tls
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}


def service(name: str, ns: str = "default", ports: list | None = None) -> dict:
    ports = ports if ports is not None else [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10", "ports": ports}}


def endpoint(ip: str, ready: bool | None = True, serving: bool | None = None, terminating: bool | None = None) -> dict:
    cond = {}
    if ready is not None:
        cond["ready"] = ready
    if serving is not None:
        cond["serving"] = serving
    if terminating is not None:
        cond["terminating"] = terminating
    return {"addresses": [ip], "conditions": cond}


def slice_list(*slices: tuple[list[dict], list[dict]]) -> dict:
    """{"items": [...]} of (endpoints, ports) pairs."""
    return {"items": [{"addressType": "IPv4", "endpoints": eps, "ports": ports} for eps, ports in slices]}


def world(ports: dict[str, int], ip: str = "127.0.0.1", ns: str = "default") -> tuple[dict, dict]:
    """Services named after `ports`' keys (port 80, named http), each with one ready endpoint
    `ip`:port."""
    services = {(ns, name): service(name, ns) for name in ports}
    slices = {(ns, name): slice_list(([endpoint(ip)], [{"name": "http", "port": port, "protocol": "TCP"}]))
              for name, port in ports.items()}
    return services, slices


def tls_secret(name: str, crt: bytes = b"-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n",
               key: bytes = b"-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n", ns: str = "default",
               stype: str = "kubernetes.io/tls") -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}, "type": stype,
            "data": {"tls.crt": base64.b64encode(crt).decode(), "tls.key": base64.b64encode(key).decode()}}


# -- the Kubernetes docs' "Examples" table (Ingress, path types), one host per row ------------------
# (rules as (path, pathType); [(request path, index of the rule that answers, None: nothing)])
DOCS_TABLE = [
    ([("/", "Prefix")], [("/", 0), ("/anything", 0), ("/a/b/c", 0)]),
    ([("/foo", "Exact")], [("/foo", 0), ("/bar", None), ("/foo/", None), ("/FOO", None)]),
    ([("/foo/", "Exact")], [("/foo", None), ("/foo/", 0)]),
    ([("/", "Prefix"), ("/foo/", "Exact")], [("/foo", 0), ("/foo/", 1), ("/foo/x", 0)]),
    ([("/foo", "Prefix")], [("/foo", 0), ("/foo/", 0), ("/foo/bar", 0), ("/foobar", None), ("/Foo", None)]),
    ([("/foo/", "Prefix")], [("/foo", 0), ("/foo/", 0), ("/foo/bar", 0), ("/foobar", None)]),
    ([("/aaa/bb", "Prefix")], [("/aaa/bbb", None), ("/aaa/bb", 0)]),
    ([("/aaa/bbb", "Prefix")], [("/aaa/bbb", 0), ("/aaa/bbb/", 0), ("/aaa/bbb/ccc", 0), ("/aaa/bbbxyz", None)]),
    ([("/aaa/bbb/", "Prefix")], [("/aaa/bbb", 0)]),
    ([("/", "Prefix"), ("/aaa", "Prefix")], [("/aaa/ccc", 1), ("/aaa", 1), ("/aaaa", 0), ("/ccc", 0)]),
    ([("/", "Prefix"), ("/aaa", "Prefix"), ("/aaa/bbb", "Prefix")], [("/aaa/bbb", 2), ("/ccc", 0), ("/aaa/bb", 1)]),
    ([("/aaa", "Prefix")], [("/ccc", None)]),
    ([("/foo", "Prefix"), ("/foo", "Exact")], [("/foo", 1), ("/foo/", 0), ("/foo/x", 0)]),
    ([("/foo", "Exact"), ("/foo", "Prefix")], [("/foo", 0), ("/foo/x", 1)]),
    ([("/foo/", "Exact"), ("/foo", "Prefix")], [("/foo/", 0), ("/foo", 1), ("/foo/x", 1)]),
    ([("/", "Exact"), ("/", "Prefix")], [("/", 0), ("/x", 1)]),
    ([("/", "Exact")], [("/", 0), ("/x", None)]),
    ([("/foo", "ImplementationSpecific")], [("/foo", 0), ("/foo/bar", 0), ("/foobar", None)]),
    ([("/a", "Prefix"), ("/a/b", "Exact"), ("/a/b/c", "Prefix")], [("/a/b", 1), ("/a/b/", 0), ("/a/b/c/d", 2),
                                                                   ("/a/bc", 0)]),
]
BACKENDS = ("b0", "b1", "b2")   # rule i of a row is served by BACKENDS[i]


def docs_host(row: int) -> str:
    return f"ex{row}.example.com"


def docs_ingresses() -> list[dict]:
    rules = [rule(docs_host(i), *(path(p, t, BACKENDS[j]) for j, (p, t) in enumerate(paths)))
             for i, (paths, _) in enumerate(DOCS_TABLE)]
    return [ingress("docs", *rules)]


def docs_cases() -> list[tuple[str, str, str | None]]:
    """(host, path, backend Service or None for 404)."""
    return [(docs_host(i), req, None if want is None else BACKENDS[want])
            for i, (_, requests) in enumerate(DOCS_TABLE) for req, want in requests]


# hostname wildcards (docs: "Hostname wildcards"), host-less rules and the default backend
def hosts_ingresses(with_default: bool) -> list[dict]:
    ings = [
        ingress("wild", rule("*.foo.com", path("/", "Prefix", "wild")),
                rule("exact.foo.com", path("/", "Prefix", "exact")),
                rule("only.example.com", path("/only", "Exact", "exact"))),
        ingress("catch", rule(None, path("/catch", "Prefix", "catch")), created="2024-01-02T00:00:00Z",
                default=backend("dflt") if with_default else None),
    ]
    return ings


def hosts_cases(with_default: bool) -> list[tuple[str, str, str | None]]:
    miss = "dflt" if with_default else None
    return [
        ("bar.foo.com", "/x", "wild"),
        ("BAR.Foo.com", "/x", "wild"),
        ("bar.foo.com:8080", "/x", "wild"),
        ("exact.foo.com", "/x", "exact"),          # an exact host beats the wildcard
        ("baz.bar.foo.com", "/catch/x", "catch"),  # two labels: not the wildcard, so the catch-all
        ("foo.com", "/catch", "catch"),            # no label: neither
        ("baz.bar.foo.com", "/x", miss),
        ("unknown.example", "/catch/y", "catch"),
        ("unknown.example", "/catchy", miss),
        ("only.example.com", "/only", "exact"),
        ("only.example.com", "/catch", miss),      # a known host uses only its own paths
        ("only.example.com", "/only/x", miss),
    ]


HOSTS_BACKENDS = ("wild", "exact", "catch", "dflt")


def route_backend(m: model.Model, host: str, req: str) -> str | None:
    loc = m.route(host, req)
    if loc.upstream is None:
        assert loc.status == 404, loc
        return None
    return loc.backend.split("/")[1].split(":")[0]


# -- tests ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("host,req,want", docs_cases())
def test_docs_examples_table(host, req, want):
    services, slices = world({b: 9000 + i for i, b in enumerate(BACKENDS)})
    m = build(docs_ingresses(), services, slices, {})
    assert not m.problems and not m.warnings
    assert route_backend(m, host, req) == want


@pytest.mark.parametrize("with_default", [False, True])
def test_hosts_wildcards_and_default_backend(with_default):
    services, slices = world({b: 9000 + i for i, b in enumerate(HOSTS_BACKENDS)})
    m = build(hosts_ingresses(with_default), services, slices, {})
    assert not m.problems and not m.warnings
    for host, req, want in hosts_cases(with_default):
        assert route_backend(m, host, req) == want, (host, req)


def test_host_matching():
    assert model.host_matches("*.foo.com", "bar.foo.com")
    assert not model.host_matches("*.foo.com", "baz.bar.foo.com")
    assert not model.host_matches("*.foo.com", "foo.com")
    assert not model.host_matches("*.foo.com", ".foo.com")
    assert model.normal_host("Bar.Foo.COM:8443") == "bar.foo.com"
    assert model.normal_host("[::1]:80") == "[::1]"


def test_servers_order_and_upstreams():
    services, slices = world({"wild": 9001, "exact": 9002, "catch": 9003, "dflt": 9004}, ip="10.244.1.5")
    m = build(hosts_ingresses(True), services, slices, {})
    assert [s.host for s in m.servers] == ["exact.foo.com", "only.example.com", "*.foo.com", ""]
    assert m.upstreams == {"default_catch_80": ["10.244.1.5:9003"], "default_dflt_80": ["10.244.1.5:9004"],
                           "default_exact_80": ["10.244.1.5:9002"], "default_wild_80": ["10.244.1.5:9001"]}
    assert m.default_backend.upstream == "default_dflt_80" and m.default_backend.ingress == ("default", "catch")


def test_missing_service_port_and_endpoints_answer_503_and_are_reported():
    services = {("default", "web"): service("web", ports=[{"name": "http", "port": 80, "targetPort": 8080,
                                                           "protocol": "TCP"}]),
                ("default", "empty"): service("empty")}
    slices = {("default", "web"): slice_list(([endpoint("10.0.0.1")], [{"name": "http", "port": 8080}])),
              ("default", "empty"): slice_list(([endpoint("10.0.0.2", ready=False)], [{"name": "http", "port": 8080}]))}
    ing = ingress("a", rule("a.com", path("/nope", "Prefix", "nope"), path("/port", "Prefix", "web", 8081),
                            path("/named", "Prefix", "web", "grpc"), path("/empty", "Prefix", "empty"),
                            path("/empty2", "Exact", "empty"), path("/ok", "Prefix", "web", "http")))
    m = build([ing], services, slices, {})
    assert m.problems == {("default", "a"): [
        "service default/nope not found",
        "service default/web has no port 8081",
        "service default/web has no port named grpc",
        "service default/empty has no ready endpoints",   # once, though two paths use it
    ]}
    server = m.server("a.com")
    by_path = {loc.path: loc for loc in server.locations}
    assert by_path["/nope"].status == 503 and by_path["/nope"].upstream is None
    assert by_path["/nope"].body == "service default/nope not found"
    assert by_path["/empty"].status == 503 and by_path["/empty2"].status == 503
    assert by_path["/ok"].upstream == "default_web_80"
    assert m.upstreams == {"default_web_80": ["10.0.0.1:8080"]}


def test_named_ports_follow_the_slice_port_of_the_same_name():
    services = {("default", "web"): service("web", ports=[
        {"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"},
        {"name": "admin", "port": 9000, "targetPort": 9090, "protocol": "TCP"},
        {"name": "dns", "port": 53, "targetPort": 53, "protocol": "UDP"}])}
    # two slices (e.g. during a rollout the named target port moved): each endpoint with its slice's port
    slices = {("default", "web"): slice_list(
        ([endpoint("10.0.0.1")], [{"name": "http", "port": 8080, "protocol": "TCP"},
                                  {"name": "admin", "port": 9090, "protocol": "TCP"}]),
        ([endpoint("10.0.0.2")], [{"name": "http", "port": 8081, "protocol": "TCP"}]))}
    ing = ingress("a", rule("a.com", path("/n", "Prefix", "web", "http"), path("/p", "Prefix", "web", 80),
                            path("/admin", "Prefix", "web", "admin"), path("/dns", "Prefix", "web", 53)))
    m = build([ing], services, slices, {})
    locs = {loc.path: loc for loc in m.server("a.com").locations}
    assert locs["/n"].upstream == locs["/p"].upstream == "default_web_80"   # by name or number: one upstream
    assert m.upstreams["default_web_80"] == ["10.0.0.1:8080", "10.0.0.2:8081"]
    assert m.upstreams["default_web_9000"] == ["10.0.0.1:9090"]
    assert m.problems == {("default", "a"): ["service default/web has no port 53"]}  # UDP only


def test_unnamed_port_and_ready_conditions():
    services = {("default", "web"): service("web", ports=[{"port": 80, "targetPort": 8080, "protocol": "TCP"}])}
    eps = [endpoint("10.0.0.3", ready=None),                                 # missing: counts as ready
           endpoint("10.0.0.1"),
           endpoint("10.0.0.2", ready=False, serving=True, terminating=True),  # not used while others are ready
           endpoint("10.0.0.4", ready=False)]
    slices = {("default", "web"): slice_list((eps, [{"name": "", "port": 8080, "protocol": "TCP"}]))}
    m = build([ingress("a", rule(None, path("/", "Prefix", "web")))], services, slices, {})
    assert m.upstreams == {"default_web_80": ["10.0.0.1:8080", "10.0.0.3:8080"]}


def test_terminating_endpoints_are_the_fallback():
    services = {("default", "web"): service("web")}
    eps = [endpoint("10.0.0.2", ready=False, serving=True, terminating=True),
           endpoint("10.0.0.3", ready=False, serving=False, terminating=True),
           endpoint("10.0.0.4", ready=False, serving=True, terminating=False)]
    slices = {("default", "web"): slice_list((eps, [{"name": "http", "port": 8080}]))}
    m = build([ingress("a", rule(None, path("/", "Prefix", "web")))], services, slices, {})
    assert m.upstreams == {"default_web_80": ["10.0.0.2:8080"]}
    assert not m.problems


def test_ipv6_endpoints_are_bracketed():
    services = {("default", "web"): service("web")}
    slices = {("default", "web"): slice_list(([endpoint("fd00::2"), endpoint("10.0.0.1")],
                                              [{"name": "http", "port": 8080}]))}
    m = build([ingress("a", rule(None, path("/", "Prefix", "web")))], services, slices, {})
    assert m.upstreams["default_web_80"] == ["10.0.0.1:8080", "[fd00::2]:8080"]


def test_conflicts_go_to_the_oldest_ingress():
    services, slices = world({"old": 1, "new": 2, "tie": 3})
    newer = ingress("newer", rule("a.com", path("/foo/", "Prefix", "new"), path("/bar", "Exact", "new")),
                    created="2024-02-01T00:00:00Z")
    older = ingress("older", rule("a.com", path("/foo", "Prefix", "old"), path("/bar", "Prefix", "old")),
                    created="2024-01-01T00:00:00Z")
    # the same timestamp: namespace/name decides (a/zzz before b/aaa)
    tie1 = ingress("zzz", rule("b.com", path("/", "Prefix", "tie")), ns="a", created=T0)
    tie2 = ingress("aaa", rule("b.com", path("/", "Prefix", "tie")), ns="b", created=T0)
    services.update({("a", "tie"): service("tie", "a"), ("b", "tie"): service("tie", "b")})
    slices.update({("a", "tie"): slices[("default", "tie")], ("b", "tie"): slices[("default", "tie")]})
    m = build([newer, tie2, older, tie1], services, slices, {})
    locs = m.server("a.com").locations
    assert [(loc.path, loc.path_type, loc.ingress[1]) for loc in locs] == [
        ("/bar", "Exact", "newer"), ("/bar", "Prefix", "older"), ("/foo", "Prefix", "older")]
    assert m.route("a.com", "/foo/x").backend == "default/old:80"
    assert m.server("b.com").locations[0].ingress == ("a", "zzz")
    assert len(m.warnings) == 2
    assert any("default/newer" in w and "default/older" in w and "/foo/" in w for w in m.warnings)
    assert any("b/aaa" in w and "a/zzz" in w for w in m.warnings)
    assert not m.problems   # the ignored path's backend is not even looked at


def test_timestamps_compare_as_times_and_missing_is_newest():
    services, slices = world({"x": 1, "y": 2})
    a = ingress("a", rule(None, path("/", "Prefix", "x")), created=None)
    b = ingress("b", rule(None, path("/", "Prefix", "y")), created="2030-01-01T00:00:00Z")
    m = build([a, b], services, slices, {})
    assert m.route("any", "/").backend == "default/y:80"
    m = build([a, b], services, slices, {}, now_order="2020-01-01T00:00:00Z")
    assert m.route("any", "/").backend == "default/x:80"
    c = ingress("c", rule(None, path("/", "Prefix", "x")), created="2024-01-01T10:00:00+02:00")  # 08:00 UTC
    d = ingress("d", rule(None, path("/", "Prefix", "y")), created="2024-01-01T09:00:00Z")
    assert build([d, c], services, slices, {}).route("h", "/").backend == "default/x:80"


def test_default_backend_of_the_oldest_and_404_without():
    services, slices = world({"d1": 1, "d2": 2, "web": 3})
    ing1 = ingress("one", created="2024-03-01T00:00:00Z", default=backend("d1"))
    ing2 = ingress("two", rule("a.com", path("/web", "Prefix", "web")), created="2024-02-01T00:00:00Z",
                   default=backend("d2"))
    m = build([ing1, ing2], services, slices, {})
    assert m.default_backend.upstream == "default_d2_80"
    assert m.route("a.com", "/other").upstream == "default_d2_80"
    assert m.route("nothing.example", "/").upstream == "default_d2_80"
    assert any("default/one" in w and "default/two" in w for w in m.warnings)
    m = build([ingress("three", rule("a.com", path("/web", "Prefix", "web")))], services, slices, {})
    assert m.default_backend.upstream is None and m.default_backend.status == 404
    assert m.route("a.com", "/x").status == 404
    # a default backend without endpoints answers 503 and is reported
    m = build([ingress("four", default=backend("gone"))], services, slices, {})
    assert m.default_backend.status == 503
    assert m.problems == {("default", "four"): ["service default/gone not found"]}


def test_tls_secrets_and_ssl_redirect():
    services, slices = world({"web": 1})
    secrets = {("default", "good"): tls_secret("good"),
               ("default", "opaque"): {"metadata": {"name": "opaque", "namespace": "default"}, "type": "Opaque",
                                       "data": {"x": "eA=="}},
               ("default", "good2"): tls_secret("good2")}
    ings = [
        ingress("a", rule("a.com", path("/", "Prefix", "web")), rule("b.com", path("/", "Prefix", "web")),
                tls=[{"hosts": ["a.com"], "secretName": "good"}, {"hosts": ["b.com"], "secretName": "missing"}]),
        ingress("c", rule("c.com", path("/", "Prefix", "web")), tls=[{"hosts": ["c.com"], "secretName": "opaque"}]),
        ingress("d", rule("d.com", path("/", "Prefix", "web")), tls=[{"hosts": ["d.com", "nowhere.com"],
                                                                       "secretName": "good2"}],
                annotations={model.SSL_REDIRECT: "false"}),
        ingress("e", rule("a.com", path("/e", "Prefix", "web")), created="2024-06-01T00:00:00Z",
                tls=[{"hosts": ["a.com"], "secretName": "good2"}], annotations={model.SSL_REDIRECT: "false"}),
    ]
    m = build(ings, services, slices, secrets)
    a, b, c, d = (m.server(h) for h in ("a.com", "b.com", "c.com", "d.com"))
    assert (a.tls_secret, a.ssl_redirect) == (("default", "good"), True)
    assert (b.tls_secret, b.ssl_redirect) == (None, False)
    assert (c.tls_secret, c.ssl_redirect) == (None, False)
    assert (d.tls_secret, d.ssl_redirect) == (("default", "good2"), False)
    # each location redirects as its own Ingress says (ingress-nginx decides per location)
    assert [(loc.path, loc.ssl_redirect) for loc in a.locations] == [("/", True), ("/e", False)]
    assert m.problems == {("default", "a"): ["secret default/missing not found"],
                          ("default", "c"): [("secret default/opaque is not a kubernetes.io/tls secret "
                                             "(it needs tls.crt and tls.key)")]}
    assert any("nowhere.com" in w for w in m.warnings)
    assert any("default/e" in w and "default/good2" in w and "default/a" in w for w in m.warnings)


def test_tls_without_hosts_is_the_catch_all():
    services, slices = world({"web": 1})
    m = build([ingress("a", rule(None, path("/", "Prefix", "web")), tls=[{"secretName": "good"}])], services, slices,
              {("default", "good"): tls_secret("good")})
    assert m.servers[-1].host == "" and m.servers[-1].tls_secret == ("default", "good")


def test_deterministic_whatever_the_input_order():
    from podnet.ingress.nginx import render

    services, slices = world({b: 9000 + i for i, b in enumerate(BACKENDS + HOSTS_BACKENDS)})
    ings = docs_ingresses() + hosts_ingresses(True)
    first = render(build(ings, services, slices, {}), "/certs")
    rnd = random.Random(7)
    for _ in range(5):
        shuffled = ings[:]
        rnd.shuffle(shuffled)
        svc = dict(rnd.sample(list(services.items()), len(services)))
        assert render(build(shuffled, svc, slices, {}), "/certs") == first


def test_prefix_matching_function():
    assert model.path_matches("/", "Prefix", "/anything")
    assert model.path_matches("/foo/", "Prefix", "/foo")
    assert model.path_matches("/foo", "ImplementationSpecific", "/foo/x")
    assert not model.path_matches("/foo", "Prefix", "/foobar")
    assert not model.path_matches("/foo", "Exact", "/foo/")
