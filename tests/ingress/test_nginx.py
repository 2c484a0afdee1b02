"""The rendered nginx.conf: its shape (parsed back into blocks), and `nginx -t` on it.

`nginx -t` binds the listening sockets it checks, so as root it runs in a private namespace of
its own (nothing is bound in the root namespace); without root the configs use high ports."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field

import pytest

from podnet.ingress import model
from podnet.ingress.model import build
from podnet.ingress.nginx import cert_files, render
from tests.conftest import is_root
from tests.ingress.test_model import (
    BACKENDS,
    DOCS_TABLE,
    HOSTS_BACKENDS,
    backend,
    docs_host,
    docs_ingresses,
    hosts_ingresses,
    ingress,
    path,
    rule,
    tls_secret,
    world,
)

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


# -- a small reader of nginx's configuration syntax ------------------------------------------------
@dataclass
class Directive:
    name: str
    args: list[str]
    block: list[Directive] | None = None
    comments: list[str] = field(default_factory=list)   # the comment lines just before it

    def all(self, name: str) -> list[Directive]:
        return [d for d in self.block or [] if d.name == name]

    def one(self, name: str) -> Directive:
        found = self.all(name)
        assert len(found) == 1, f"{len(found)} {name} in {self.name} {self.args}"
        return found[0]

    def values(self, name: str) -> list[list[str]]:
        return [d.args for d in self.all(name)]


def parse(text: str) -> Directive:
    tokens = _tokens(text)
    pos = 0

    def block() -> list[Directive]:
        nonlocal pos
        out: list[Directive] = []
        words: list[str] = []
        comments: list[str] = []
        while pos < len(tokens):
            kind, value = tokens[pos]
            pos += 1
            if kind == "comment":
                comments.append(value)
            elif kind == "word":
                words.append(value)
            elif value == ";":
                out.append(Directive(words[0], words[1:], None, comments))
                words, comments = [], []
            elif value == "{":
                d = Directive(words[0], words[1:], None, comments)
                d.block = block()
                out.append(d)
                words, comments = [], []
            else:  # "}"
                assert not words, words
                return out
        assert not words, words
        return out

    return Directive("main", [], block())


def _tokens(text: str) -> list[tuple[str, str]]:
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "#":
            end = text.find("\n", i)
            end = len(text) if end < 0 else end
            out.append(("comment", text[i + 1:end].strip()))
            i = end
        elif c in "{};":
            out.append(("punct", c))
            i += 1
        elif c in "\"'":
            j, buf = i + 1, []
            while text[j] != c:
                if text[j] == "\\" and text[j + 1] in "\"'\\nrt":
                    buf.append({"n": "\n", "r": "\r", "t": "\t"}.get(text[j + 1], text[j + 1]))
                    j += 2
                else:
                    buf.append(text[j])
                    j += 1
            out.append(("word", "".join(buf)))
            i = j + 1
        else:
            j = i
            while j < len(text) and not text[j].isspace() and text[j] not in "{};":
                j += 1
            out.append(("word", text[i:j]))
            i = j
    return out


def http(conf: str) -> Directive:
    return parse(conf).one("http")


def server(conf: str, name: str) -> Directive:
    found = [s for s in http(conf).all("server") if ["server_name", name] in [[d.name, *d.args] for d in s.block]]
    assert len(found) == 1, name
    return found[0]


def locations(srv: Directive) -> dict[str, Directive]:
    out = {}
    for loc in srv.all("location"):
        key = " ".join(loc.args)
        assert key not in out, f"duplicate location {key}"
        out[key] = loc
    return out


def answer(loc: Directive) -> tuple[str, ...]:
    """('proxy', upstream) or ('return', status[, text]) of a location."""
    if loc.all("proxy_pass"):
        return ("proxy", loc.one("proxy_pass").args[0].removeprefix("http://"))
    return ("return", *loc.one("return").args)


# -- certificates (openssl CLI) ----------------------------------------------------------------------
def make_cert(directory: str, cn: str) -> tuple[bytes, bytes]:
    """A self-signed EC certificate for `cn` (also its subjectAltName): (PEM cert, PEM key)."""
    crt, key = os.path.join(directory, f"{cn}.crt"), os.path.join(directory, f"{cn}.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", key, "-out", crt, "-days", "2", "-subj", f"/CN={cn}",
                    "-addext", f"subjectAltName=DNS:{cn}"], check=True, capture_output=True, timeout=60)
    with open(crt, "rb") as f1, open(key, "rb") as f2:
        return f1.read(), f2.read()


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    d = str(tmp_path_factory.mktemp("certs"))
    return {cn: make_cert(d, cn) for cn in ("a.example.com", "b.example.com", "default.invalid")}


# -- nginx -t --------------------------------------------------------------------------------------
HIGH = {"http_port": 18080, "https_port": 18443, "status_port": 18254}


@pytest.fixture
def nginx_t(tmp_path, request):
    """check(text, certs={name: bytes}) -> nginx -t's (returncode, output), run on the config
    written under tmp_path (its certificates in tmp_path/certs)."""
    if not os.path.exists(NGINX):
        pytest.skip("nginx not installed")
    prefix = ["ip", "netns", "exec", request.getfixturevalue("netns").new("ngxt")] \
        if is_root() and shutil.which("ip") else []

    def check(text: str, files: dict[str, bytes] | None = None) -> tuple[int, str]:
        (tmp_path / "certs").mkdir(exist_ok=True)
        (tmp_path / "temp").mkdir(exist_ok=True)
        for name, data in (files or {}).items():
            (tmp_path / "certs" / name).write_bytes(data)
        conf = tmp_path / "nginx.conf"
        conf.write_text(text)
        r = subprocess.run([*prefix, NGINX, "-t", "-p", str(tmp_path), "-c", str(conf)], capture_output=True,
                           text=True, timeout=60, check=False)
        return r.returncode, r.stderr + r.stdout

    return check


def paths(tmp_path) -> dict:
    return {"pid_path": str(tmp_path / "nginx.pid"), "temp_dir": str(tmp_path / "temp"),
            "error_log": str(tmp_path / "error.log"), "access_log": str(tmp_path / "access.log")}


def docs_world():
    return world({b: 9100 + i for i, b in enumerate(BACKENDS + HOSTS_BACKENDS)})


# -- shape -------------------------------------------------------------------------------------------
def test_main_context_is_standalone_and_writes_only_under_the_callers_paths():
    services, slices = docs_world()
    conf = render(build(docs_ingresses(), services, slices, {}), "/w/certs", pid_path="/w/nginx.pid",
                  temp_dir="/w/temp/", error_log="/w/logs/error.log", access_log="/w/logs/access.log")
    main = parse(conf)
    assert "include" not in conf and "/etc/nginx" not in conf
    assert not main.all("daemon")                      # the caller passes -g 'daemon off;'
    assert main.values("pid") == [["/w/nginx.pid"]]
    assert main.values("error_log") == [["/w/logs/error.log", "warn"]]
    assert main.values("worker_processes") == [["1"]]
    h = main.one("http")
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        assert h.values(f"{kind}_temp_path") == [[f"/w/temp/{kind}"]]
    assert h.values("access_log") == [["/w/logs/access.log", "podnet"]]
    assert ["error", "timeout", "http_502", "http_503"] in h.values("proxy_next_upstream")
    assert ["Host", "$host"] in h.values("proxy_set_header")


def test_upstreams_are_the_pods():
    services, slices = world({"web": 8080}, ip="10.244.1.5")
    slices[("default", "web")]["items"][0]["endpoints"].append(
        {"addresses": ["10.244.2.7"], "conditions": {"ready": True}})
    conf = render(build([ingress("a", rule(None, path("/", "Prefix", "web")))], services, slices, {}), "/c")
    up = http(conf).one("upstream")
    assert up.args == ["default_web_80"]
    assert up.values("server") == [["10.244.1.5:8080", "max_fails=0"], ["10.244.2.7:8080", "max_fails=0"]]
    assert up.values("keepalive") == [["16"]]
    catch_all = server(conf, "_")
    assert answer(locations(catch_all)["/"]) == ("proxy", "default_web_80")
    assert ["80", "default_server"] in catch_all.values("listen")


def test_path_types_become_locations():
    services, slices = docs_world()
    conf = render(build(docs_ingresses(), services, slices, {}), "/c")
    up = {b: f"default_{b}_80" for b in BACKENDS}

    def locs(row):
        return {k: answer(v) for k, v in locations(server(conf, docs_host(row))).items()}

    rows = {tuple(rules): i for i, (rules, _) in enumerate(DOCS_TABLE)}
    assert locs(rows[(("/", "Prefix"),)]) == {"/": ("proxy", up["b0"])}
    assert locs(rows[(("/foo", "Exact"),)]) == {"= /foo": ("proxy", up["b0"]), "/": ("return", "404")}
    # `= /foo/` alone would make nginx redirect /foo to /foo/: /foo gets a location saying where it goes
    assert locs(rows[(("/foo/", "Exact"),)]) == {"= /foo/": ("proxy", up["b0"]), "= /foo": ("return", "404"),
                                                 "/": ("return", "404")}
    assert locs(rows[(("/", "Prefix"), ("/foo/", "Exact"))]) == {"/": ("proxy", up["b0"]), "= /foo/": ("proxy", up["b1"]),
                                                                 "= /foo": ("proxy", up["b0"])}
    assert locs(rows[(("/foo/", "Prefix"),)]) == {"= /foo": ("proxy", up["b0"]), "^~ /foo/": ("proxy", up["b0"]),
                                                  "/": ("return", "404")}
    # Exact and Prefix on one path: `= /foo` is the Exact rule's (it wins the tie), `^~ /foo/` the Prefix's
    assert locs(rows[(("/foo", "Prefix"), ("/foo", "Exact"))]) == {
        "= /foo": ("proxy", up["b1"]), "^~ /foo/": ("proxy", up["b0"]), "/": ("return", "404")}
    assert locs(rows[(("/foo/", "Exact"), ("/foo", "Prefix"))]) == {
        "= /foo/": ("proxy", up["b0"]), "= /foo": ("proxy", up["b1"]), "^~ /foo/": ("proxy", up["b1"]),
        "/": ("return", "404")}
    assert locs(rows[(("/", "Exact"), ("/", "Prefix"))]) == {"= /": ("proxy", up["b0"]), "/": ("proxy", up["b1"])}


def test_hosts_become_server_names():
    services, slices = docs_world()
    conf = render(build(hosts_ingresses(True), services, slices, {}), "/c")
    names = [s.values("server_name") for s in http(conf).all("server")]
    assert names == [[["exact.foo.com"]], [["only.example.com"]], [[r"~^[^.]+\.foo\.com$"]], [["_"]],
                     []]  # the last: the status server
    only = server(conf, "only.example.com")
    # unmatched paths of every server go to the default backend
    assert answer(locations(only)["/"]) == ("proxy", "default_dflt_80")
    assert ["80"] in only.values("listen")
    comments = " ".join(c for loc in only.all("location") for c in loc.comments)
    assert "Ingress default/wild" in comments and "default backend of Ingress default/catch" in comments


def test_503_with_the_reason_and_404_without_default_backend():
    services, slices = world({"web": 1})
    m = build([ingress("a", rule("a.com", path("/gone", "Exact", "gone"), path("/x", "Prefix", "web", 81)))],
              services, slices, {})
    locs = locations(server(render(m, "/c"), "a.com"))
    assert answer(locs["= /gone"]) == ("return", "503", "service default/gone not found\n")
    assert answer(locs["= /x"]) == ("return", "503", "service default/web has no port 81\n")
    assert answer(locs["/"]) == ("return", "404")


def test_tls_servers_redirect_and_default_server():
    services, slices = world({"web": 1})
    secrets = {("default", "a"): tls_secret("a"), ("default", "b"): tls_secret("b")}
    ings = [ingress("a", rule("a.example.com", path("/", "Prefix", "web")), tls=[{"hosts": ["a.example.com"],
                                                                                    "secretName": "a"}]),
            ingress("b", rule("b.example.com", path("/b", "Prefix", "web")), tls=[{"hosts": ["b.example.com"],
                                                                                     "secretName": "b"}],
                    annotations={model.SSL_REDIRECT: "false"}),
            ingress("c", rule("c.example.com", path("/", "Prefix", "web")))]
    m = build(ings, services, slices, secrets)
    conf = render(m, "/w/certs")
    a, b, c, catch = (server(conf, n) for n in ("a.example.com", "b.example.com", "c.example.com", "_"))
    assert a.values("listen") == [["80"], ["443", "ssl"]]
    assert a.values("ssl_certificate") == [["/w/certs/default_a.crt"]]
    assert a.values("ssl_certificate_key") == [["/w/certs/default_a.key"]]
    redirect = locations(a)["/"].one("if")
    assert redirect.args == ["($scheme", "=", "http)"]
    assert redirect.values("return") == [["308", "https://$host$request_uri"]]
    assert not any(loc.all("if") for loc in b.all("location"))   # ssl-redirect: "false"
    assert c.values("listen") == [["80"]]
    # no default certificate: the default server takes 443 only to refuse names without one
    assert catch.values("listen") == [["80", "default_server"], ["443", "ssl", "default_server"]]
    assert catch.values("ssl_reject_handshake") == [["on"]]
    # with one, every server speaks TLS, those without their own with the default certificate
    conf = render(m, "/w/certs", https_port=8443, default_cert=("/d.crt", "/d.key"))
    c, catch = server(conf, "c.example.com"), server(conf, "_")
    assert c.values("listen") == [["80"], ["8443", "ssl"]] and c.values("ssl_certificate") == [["/d.crt"]]
    assert catch.values("ssl_certificate") == [["/d.crt"]] and not catch.all("ssl_reject_handshake")
    a = server(conf, "a.example.com")
    assert locations(a)["/"].one("if").values("return") == [["308", "https://$host:8443$request_uri"]]
    assert cert_files(m, secrets) == {
        "default_a.crt": b"-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n",
        "default_a.key": b"-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n",
        "default_b.crt": b"-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n",
        "default_b.key": b"-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n"}


def test_no_tls_no_443():
    services, slices = world({"web": 1})
    conf = render(build([ingress("a", rule(None, path("/", "Prefix", "web")))], services, slices, {}), "/c")
    assert "443" not in conf and "ssl_" not in conf.replace("ssl_protocols", "")


def test_status_server():
    conf = render(build([], {}, {}, {}), "/c", status_port=12345)
    status = [s for s in http(conf).all("server") if s.values("listen") == [["127.0.0.1:12345"]]]
    assert len(status) == 1
    locs = locations(status[0])
    assert answer(locs["= /healthz"]) == ("return", "200", "ok\n")
    assert locs["= /nginx_status"].all("stub_status")


def test_quoting():
    services, slices = world({"web": 1})
    m = build([ingress("a", rule(None, path("/price$", "Exact", "web"), path("/gone", "Exact", "gone$")))],
              services, slices, {})
    conf = render(m, "/c")
    locs = locations(server(conf, "_"))
    assert "= /price$" in locs                                         # a location's path is literal
    assert answer(locs["= /gone"])[2] == "service default/gone%24 not found\n"   # a return text is not


# -- nginx -t -----------------------------------------------------------------------------------------
def test_nginx_accepts_the_docs_and_hosts_config(nginx_t, tmp_path):
    services, slices = docs_world()
    m = build(docs_ingresses() + hosts_ingresses(True), services, slices, {})
    rc, out = nginx_t(render(m, str(tmp_path / "certs"), **HIGH, **paths(tmp_path)))
    assert rc == 0, out
    if is_root():  # without root nginx warns that `user` means nothing
        assert "[warn]" not in out, out


def test_nginx_accepts_an_empty_model(nginx_t, tmp_path):
    rc, out = nginx_t(render(build([], {}, {}, {}), str(tmp_path / "certs"), **HIGH, **paths(tmp_path)))
    assert rc == 0, out


def test_nginx_accepts_tls_with_and_without_default_cert(nginx_t, tmp_path, certs):
    services, slices = world({"web": 1})
    secrets = {("default", "a"): tls_secret("a", *certs["a.example.com"]),
               ("default", "b"): tls_secret("b", *certs["b.example.com"])}
    ings = [ingress("a", rule("a.example.com", path("/", "Prefix", "web")),
                    rule("b.example.com", path("/", "Prefix", "web")), rule(None, path("/x", "Prefix", "gone")),
                    tls=[{"hosts": ["a.example.com"], "secretName": "a"}, {"hosts": ["b.example.com"], "secretName": "b"}],
                    default=backend("web"))]
    m = build(ings, services, slices, secrets)
    files = cert_files(m, secrets)
    assert sorted(files) == ["default_a.crt", "default_a.key", "default_b.crt", "default_b.key"]
    rc, out = nginx_t(render(m, str(tmp_path / "certs"), **HIGH, **paths(tmp_path)), files)
    assert rc == 0, out
    d = tmp_path / "default"
    d.mkdir()
    (d / "tls.crt").write_bytes(certs["default.invalid"][0])
    (d / "tls.key").write_bytes(certs["default.invalid"][1])
    rc, out = nginx_t(render(m, str(tmp_path / "certs"), default_cert=(str(d / "tls.crt"), str(d / "tls.key")),
                             **HIGH, **paths(tmp_path)), files)
    assert rc == 0, out


def test_nginx_accepts_long_host_names(nginx_t, tmp_path):
    services, slices = world({"web": 1})
    long_host = ".".join(["a" * 60] * 4) + ".com"          # 248 characters
    wild = "*." + ".".join(["b" * 60] * 4)
    m = build([ingress("a", rule(long_host, path("/", "Prefix", "web")), rule(wild, path("/", "Prefix", "web")))],
              services, slices, {})
    rc, out = nginx_t(render(m, str(tmp_path / "certs"), **HIGH, **paths(tmp_path)))
    assert rc == 0, out
