"""The plugin side of the CNI protocol: environment and stdin in, a result or an error out.

A plugin module builds a `Plugin` and calls `main(plugin)`. The checks and their order follow
the reference skeleton (containernetworking/cni pkg/skel): required environment variables,
then the config's JSON and network name, then container ID and interface name, then the
version rules; so errors match the reference plugins code for code.
"""

from __future__ import annotations

from .. import fastjson as json
import os
import sys
from . import errors, validate
from . import schema as config_schema
from .errors import CNIError
from .types import convert, to_current
from .version import CURRENT, SUPPORTED, parse, verb_allowed

ENV_ORDER = ("CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH")
REQUIRED = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"),
    "GC": ("CNI_PATH",),
    "STATUS": ("CNI_PATH",),
    "VERSION": (),
}


def k8s_pod(env: dict) -> tuple[str, str]:
    """(K8S_POD_NAMESPACE, K8S_POD_NAME) from CNI_ARGS, empty when absent. Lenient, unlike
    CmdArgs.args_dict: callers only label or look up the pod, and a runtime outside Kubernetes
    passes neither (a malformed pair is skipped, the plugin itself reports it)."""
    args = dict(p.split("=", 1) for p in env.get("CNI_ARGS", "").split(";") if "=" in p)
    return args.get("K8S_POD_NAMESPACE", ""), args.get("K8S_POD_NAME", "")


class CmdArgs:
    """One invocation: the CNI_* environment, the raw stdin and the decoded config."""

    __slots__ = ("command", "container_id", "netns", "ifname", "args", "path", "stdin", "conf")

    def __init__(self, command: str, container_id: str, netns: str, ifname: str, args: str, path: str,
                 stdin: bytes, conf: dict) -> None:
        self.command = command
        self.container_id = container_id
        self.netns = netns
        self.ifname = ifname
        self.args = args
        self.path = path
        self.stdin = stdin
        self.conf = conf

    @property
    def cni_version(self) -> str:
        return self.conf.get("cniVersion", "0.1.0")

    @property
    def path_dirs(self) -> list[str]:
        return [p for p in self.path.split(os.pathsep) if p]

    def args_dict(self) -> dict[str, str]:
        """CNI_ARGS 'K1=V1;K2=V2' as a dict; a malformed pair is an error as in the reference."""
        out: dict[str, str] = {}
        for pair in filter(None, self.args.split(";")):
            key, sep, value = pair.partition("=")
            if not sep:
                raise CNIError(errors.INVALID_ENVIRONMENT, f"ARGS: invalid pair {pair!r}")
            out[key] = value
        return out

    def prev_result(self) -> dict | None:
        prev = self.conf.get("prevResult")
        if not prev:
            return None
        prev = dict(prev)
        prev.setdefault("cniVersion", self.cni_version)
        return to_current(prev)


class Plugin:
    """A plugin's handlers. Each takes CmdArgs; `add` returns a result in the 1.1.0 layout."""

    __slots__ = ("name", "add", "delete", "check", "gc", "status", "versions", "schema")

    def __init__(self, name: str, add, delete, check, gc=None, status=None, versions: tuple[str, ...] = SUPPORTED,
                 schema: dict | None = None) -> None:
        self.name = name
        self.schema = schema if schema is not None else config_schema.NETCONF  # JSON types of its config
        self.add = add
        self.delete = delete
        self.check = check
        self.gc = gc
        self.status = status
        self.versions = versions

    @property
    def about(self) -> str:
        from .. import __version__

        return f"CNI {self.name} plugin (podnet {__version__})\nCNI protocol versions supported: {', '.join(self.versions)}"


def _env_args(environ: dict) -> tuple[str, dict[str, str]]:
    command = environ.get("CNI_COMMAND", "")
    if command not in REQUIRED:
        raise CNIError(errors.INVALID_ENVIRONMENT, f"unknown CNI_COMMAND: {command}")
    missing = [v for v in ENV_ORDER if v in REQUIRED[command] and not environ.get(v)]
    if missing:
        raise CNIError(errors.INVALID_ENVIRONMENT, f"required env variables [{','.join(missing)}] missing")
    return command, {v: environ.get(v, "") for v in ENV_ORDER}


def _decode_config(stdin: bytes, schema: dict) -> dict:
    try:
        conf = json.loads(stdin)
    except (ValueError, UnicodeDecodeError) as e:
        raise CNIError(errors.DECODING_FAILURE, f"error unmarshall network config: {e}") from None
    if not isinstance(conf, dict):
        raise CNIError(errors.DECODING_FAILURE, "error unmarshall network config: not a JSON object")
    config_schema.check(conf, schema)
    validate.network_name(conf.get("name") or "")
    return conf


def _check_version(plugin: Plugin, command: str, version: str) -> None:
    try:
        parse(version)
    except ValueError as e:
        raise CNIError(errors.INCOMPATIBLE_VERSION, "incompatible CNI versions", str(e)) from None
    if version not in plugin.versions:
        supported = " ".join(f'"{v}"' for v in plugin.versions)
        raise CNIError(errors.INCOMPATIBLE_VERSION, "incompatible CNI versions", f'config is "{version}", plugin supports [{supported}]')
    if not verb_allowed(command, version):
        raise CNIError(errors.INCOMPATIBLE_VERSION, f"config version does not allow {command}")


def dispatch(plugin: Plugin, environ: dict, stdin: bytes) -> tuple[int, str]:
    """Run one CNI command; return (exit code, text for stdout). Never raises."""
    version = CURRENT
    try:
        command, env = _env_args(environ)
        if command == "VERSION":
            return 0, json.dumps({"cniVersion": CURRENT, "supportedVersions": list(plugin.versions)})
        conf = _decode_config(stdin, plugin.schema)
        version = conf.get("cniVersion", "0.1.0") if isinstance(conf.get("cniVersion", ""), str) else CURRENT
        if command in ("ADD", "CHECK", "DEL"):
            validate.container_id(env["CNI_CONTAINERID"])
            validate.interface_name(env["CNI_IFNAME"])
        _check_version(plugin, command, version)
        args = CmdArgs(
            command=command,
            container_id=env["CNI_CONTAINERID"],
            netns=env["CNI_NETNS"],
            ifname=env["CNI_IFNAME"],
            args=env["CNI_ARGS"],
            path=env["CNI_PATH"],
            stdin=stdin,
            conf=conf,
        )
        handler = {"ADD": plugin.add, "DEL": plugin.delete, "CHECK": plugin.check, "GC": plugin.gc, "STATUS": plugin.status}[command]
        result = handler(args) if handler else None
        if command == "ADD":
            if result is None:
                raise CNIError(errors.INTERNAL, "plugin produced no result")
            return 0, json.dumps(convert(result, version), indent=4)
        return 0, ""
    except CNIError as e:
        if version not in SUPPORTED:
            version = CURRENT
        return 1, e.to_json(version)
    except Exception as e:  # noqa: BLE001 - every failure must reach the runtime as CNI error JSON
        if version not in SUPPORTED:
            version = CURRENT
        return 1, CNIError(errors.INTERNAL, str(e) or e.__class__.__name__).to_json(version)


def main(plugin: Plugin) -> None:
    if not os.environ.get("CNI_COMMAND"):
        print(plugin.about, file=sys.stderr)
        sys.exit(0)
    stdin = b"" if os.environ.get("CNI_COMMAND") == "VERSION" else sys.stdin.buffer.read()
    code, out = dispatch(plugin, dict(os.environ), stdin)
    if out:
        sys.stdout.write(out)
        sys.stdout.flush()
    sys.exit(code)
