"""nginx.conf from the routing model (podnet.ingress.model), and the certificate files it names.
Pure: the text and the file contents are returned; the caller writes them and runs nginx.

How the Kubernetes path types become nginx locations (nginx picks an `=` location before any
prefix, and of prefixes the longest; `^~` keeps a regex location from ever taking over):

    Exact  /foo          location = /foo
    Prefix /foo (/foo/)  location = /foo  and  location ^~ /foo/     (element-wise: not /foobar)
    Prefix /             location /
    unmatched            location /  -> the default backend, or 404

An Exact and a Prefix rule on the same path share `location = /foo`: the Exact one gets it (it
wins the tie). nginx answers `/foo` with a 301 to `/foo/` when the only location for it is a
proxying one named `/foo/` (its "auto_redirect"); so an Exact `/foo/` without a rule for `/foo`
comes with a `location = /foo` that answers as the model routes /foo.

Hosts become server blocks: exact names as they are, `*.foo.com` as the regex
`~^[^.]+\\.foo\\.com$` (nginx's own `*.foo.com` would also take `a.b.foo.com`), and the rules
without host go to the `default_server`, which answers every Host no other server names. A host
with TLS listens on https_port with its own certificate (SNI picks it) and, unless its Ingress
says ssl-redirect "false", answers plain HTTP with a 308 to https. Upstreams are the pods, with
retries to another pod on connection errors, timeouts, 502 and 503.

The file is standalone: nothing is included from /etc/nginx, and every path nginx writes (pid,
logs, temp files) is the caller's. Run it as `nginx -p PREFIX -c FILE -g 'daemon off;'`.
"""

from __future__ import annotations

from ..api.secret import tls_pair
from .model import Location, Model, Server

TEMP_KINDS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
UPSTREAM_KEEPALIVE = 16


def cert_name(secret: tuple[str, str]) -> str:
    """The file name stem of a Secret's certificate and key (namespaces hold no '_')."""
    return f"{secret[0]}_{secret[1]}"


def cert_files(model: Model, secrets: dict[tuple[str, str], dict]) -> dict[str, bytes]:
    """File name (relative to the cert_dir given to render) -> PEM bytes: `<ns>_<name>.crt` and
    `.key` for every Secret a server of the model uses."""
    out: dict[str, bytes] = {}
    for ref in sorted({s.tls_secret for s in model.servers if s.tls_secret}):
        crt, key = tls_pair(secrets[ref])
        out[f"{cert_name(ref)}.crt"] = crt
        out[f"{cert_name(ref)}.key"] = key
    return out


def render(model: Model, cert_dir: str, http_port: int = 80, https_port: int = 443, status_port: int = 10254,
           pid_path: str = "nginx.pid", temp_dir: str = "temp", error_log: str = "logs/error.log",
           access_log: str = "logs/access.log", default_cert: tuple[str, str] | None = None,
           worker_processes: int = 1, user: str | None = "root") -> str:
    """The whole nginx.conf. Relative paths are relative to nginx's prefix (-p).

    default_cert: (certificate, key) files served to HTTPS requests for a host without a
    certificate of its own; then every server listens on https_port too. Without it only the
    servers with TLS do, and the default server refuses the TLS handshake of any other name.
    user: the workers' user (root by default, so they can write the caller's private temp_dir;
    None leaves nginx's compiled-in default)."""
    out = _Out()
    out.line("# nginx.conf rendered by podnet.ingress (do not edit: the controller rewrites it)")
    if user:
        out.line(f"user {user};")
    out.line(f"worker_processes {worker_processes};")
    out.line(f"pid {pid_path};")
    out.line(f"error_log {error_log} warn;")
    out.line("")
    out.open("events")
    out.line("worker_connections 1024;")
    out.close()
    out.line("")
    out.open("http")
    _http_settings(out, model, temp_dir, access_log)
    for name, addrs in model.upstreams.items():
        out.line("")
        out.open(f"upstream {name}")
        for addr in addrs:
            out.line(f"server {addr} max_fails=0;")
        out.line(f"keepalive {UPSTREAM_KEEPALIVE};")
        out.close()
    any_tls = any(s.tls_secret for s in model.servers)
    for server in model.servers:
        out.line("")
        _server(out, model, server, cert_dir, http_port, https_port, default_cert, any_tls)
    out.line("")
    _status_server(out, status_port)
    out.close()
    return out.text()


class _Out:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0

    def line(self, text: str) -> None:
        self.lines.append(("    " * self.depth + text) if text else "")

    def comment(self, text: str) -> None:
        self.line("# " + " ".join(text.split()))

    def open(self, head: str) -> None:
        self.line(head + " {")
        self.depth += 1

    def close(self) -> None:
        self.depth -= 1
        self.line("}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _http_settings(out: _Out, model: Model, temp_dir: str, access_log: str) -> None:
    out.line("default_type text/plain;")
    out.line("server_tokens off;")
    out.line("log_format podnet '$remote_addr \"$host\" \"$request\" $status $body_bytes_sent '")
    out.line("                  'upstream=$upstream_addr upstream_status=$upstream_status rt=$request_time';")
    out.line(f"access_log {access_log} podnet;" if access_log != "off" else "access_log off;")
    for kind in TEMP_KINDS:
        out.line(f"{kind}_temp_path {temp_dir.rstrip('/')}/{kind};")
    out.line(f"server_names_hash_bucket_size {_bucket_size(model)};")
    out.line("server_names_hash_max_size 4096;")
    out.line("ssl_protocols TLSv1.2 TLSv1.3;")
    out.comment("to the pods: HTTP/1.1 with keepalive, upgrades (WebSocket) passed through")
    out.open("map $http_upgrade $connection_upgrade")
    out.line("default upgrade;")
    out.line("'' '';")
    out.close()
    out.line("proxy_http_version 1.1;")
    out.line("proxy_set_header Host $host;")
    out.line("proxy_set_header X-Real-IP $remote_addr;")
    out.line("proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;")
    out.line("proxy_set_header X-Forwarded-Proto $scheme;")
    out.line("proxy_set_header X-Forwarded-Host $host;")
    out.line("proxy_set_header X-Request-ID $request_id;")
    out.line("proxy_set_header Upgrade $http_upgrade;")
    out.line("proxy_set_header Connection $connection_upgrade;")
    out.comment("a pod that just went away is retried on another instead of surfacing as a 5xx: refused at once")
    out.comment("while its process is gone, unanswered (no neighbour) once its address is; every pod is tried")
    out.line("proxy_next_upstream error timeout http_502 http_503;")
    out.line("proxy_next_upstream_tries 0;")
    out.line("proxy_connect_timeout 1s;")


def _bucket_size(model: Model) -> int:
    """Big enough for the longest server name (a DNS name may have 253 characters; nginx's
    default of 64 refuses names past about 50)."""
    longest = max((len(_server_name(s)) for s in model.servers), default=1)
    size = 64
    while size < longest + 16:
        size *= 2
    return size


def _server_name(server: Server) -> str:
    if not server.host:
        return "_"
    if server.wildcard:
        return "~^[^.]+" + server.host[1:].replace(".", "\\.") + "$"
    return server.host


def _server(out: _Out, model: Model, server: Server, cert_dir: str, http_port: int, https_port: int,
            default_cert: tuple[str, str] | None, any_tls: bool) -> None:
    catch_all = not server.host
    title = f"host {server.host}" if server.host else "the catch-all: rules without host, and every Host no server names"
    if server.tls_secret:
        title += f" (TLS: secret {server.tls_secret[0]}/{server.tls_secret[1]})"
    out.comment(title)
    out.open("server")
    default = " default_server" if catch_all else ""
    out.line(f"listen {http_port}{default};")
    cert = None
    if server.tls_secret:
        stem = f"{cert_dir.rstrip('/')}/{cert_name(server.tls_secret)}"
        cert = (f"{stem}.crt", f"{stem}.key")
    elif default_cert:
        cert = default_cert
    https = cert is not None or (catch_all and any_tls)
    if https:
        out.line(f"listen {https_port} ssl{default};")
    out.line(f"server_name {_server_name(server)};")
    if cert:
        out.line(f"ssl_certificate {_quote(cert[0])};")
        out.line(f"ssl_certificate_key {_quote(cert[1])};")
    elif https:
        out.comment("no certificate for names no server has: refuse their TLS handshake")
        out.line("ssl_reject_handshake on;")
    redirect = _redirect(https_port) if https else ""
    exact_keys = {loc.key for loc in server.locations if loc.exact}
    prefix_keys = {loc.key for loc in server.locations if not loc.exact}
    has_root = False
    for loc in server.locations:
        out.line("")
        who = f"{loc.ingress[0]}/{loc.ingress[1]}"
        out.comment(f"{loc.path_type} {loc.path} <- Ingress {who} (service {loc.backend})")
        if loc.exact:
            _location(out, f"= {_quote(loc.path)}", loc, redirect)
        elif loc.key == "/":
            has_root = True
            _location(out, "/", loc, redirect)
        else:
            if loc.key not in exact_keys:
                _location(out, f"= {_quote(loc.key)}", loc, redirect)
            _location(out, f"^~ {_quote(loc.key + '/')}", loc, redirect)
    # nginx answers /foo with a 301 to /foo/ when a proxying location is named /foo/ and no
    # `= /foo` exists ("auto_redirect"); Kubernetes routes /foo as any other path, so say where
    for bare in sorted({loc.path[:-1] for loc in server.locations
                        if loc.exact and loc.path.endswith("/") and loc.path != "/"} - exact_keys - prefix_keys):
        served = server.route(bare)
        out.line("")
        out.comment(f"{bare} as routed here (else nginx would redirect it to {bare}/, as it does for a location "
                    "ending in '/')")
        if served is None:
            _location(out, f"= {_quote(bare)}", model.default_backend, redirect if server.ssl_redirect else "",
                      redirect_wanted=server.ssl_redirect)
        else:
            _location(out, f"= {_quote(bare)}", served, redirect)
    if not has_root:
        out.line("")
        fallback = model.default_backend
        if fallback.ingress[1]:
            out.comment(f"unmatched paths: the default backend of Ingress {fallback.ingress[0]}/{fallback.ingress[1]} "
                        f"(service {fallback.backend})")
        else:
            out.comment("unmatched paths: 404 (no Ingress has a spec.defaultBackend)")
        redirect_all = redirect if server.ssl_redirect else ""
        _location(out, "/", fallback, redirect_all, redirect_wanted=bool(redirect_all))
    out.close()


def _redirect(https_port: int) -> str:
    port = "" if https_port == 443 else f":{https_port}"
    return f"return 308 https://$host{port}$request_uri;"


def _location(out: _Out, match: str, loc: Location, redirect: str, redirect_wanted: bool | None = None) -> None:
    out.open(f"location {match}")
    if redirect and (loc.ssl_redirect if redirect_wanted is None else redirect_wanted):
        out.open("if ($scheme = http)")
        out.line(redirect)
        out.close()
    if loc.upstream:
        out.line(f"proxy_pass http://{loc.upstream};")
    elif loc.body:
        out.line(f"return {loc.status} {_text(loc.body + chr(10))};")
    else:
        out.line(f"return {loc.status or 404};")
    out.close()


def _status_server(out: _Out, status_port: int) -> None:
    out.comment("health and counters, on loopback only")
    out.open("server")
    out.line(f"listen 127.0.0.1:{status_port};")
    out.line("access_log off;")
    out.open("location = /healthz")
    out.line('return 200 "ok\\n";')
    out.close()
    out.open("location = /nginx_status")
    out.line("stub_status;")
    out.close()
    out.open("location /")
    out.line("return 404;")
    out.close()
    out.close()


def _quote(text: str) -> str:
    """A double-quoted nginx string. The API refuses quotes, '\\', ';', braces, '#' and
    whitespace in paths; they are escaped anyway (newlines as \\n). A location's path is no
    variable context, so '$' stays as it is there (see _text)."""
    text = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return '"' + text + '"'


def _text(text: str) -> str:
    """A `return` text: quoted, and without '$', which nginx would read as a variable there and
    which has no escape."""
    return _quote(text.replace("$", "%24"))
