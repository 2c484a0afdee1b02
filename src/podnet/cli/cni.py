"""`podnet cni ...`: install the plugins, and run network configs as a container runtime does."""

from __future__ import annotations

import json
import os
import sys

import click

from ..cni import errors
from ..cni.errors import CNIError
from ..plugins.registry import in_process, install
from ..cni.runner import DEFAULT_CACHE_DIR, ConfList, Runner, RuntimeConf


@click.group()
def cni() -> None:
    """CNI plugins and a libcni-style runner."""


@cni.command("install")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--python", default="", help="Interpreter for the plugins (default: this one).")
def install_cmd(directory: str, python: str) -> None:
    """Write the plugin executables (bridge, host-local, loopback, portmap, ptp, podnet) into DIRECTORY.

    The same network configs work with these and with the reference plugins.
    """
    for path in install(directory, python):
        click.echo(path)


def _parse_cni_args(text: str) -> list[tuple[str, str]]:
    out = []
    for pair in filter(None, text.split(";")):
        k, sep, v = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--args")
        out.append((k, v))
    return out


@cni.command("run")
@click.argument("verb", type=click.Choice(["ADD", "CHECK", "DEL", "GC", "STATUS"], case_sensitive=False))
@click.option("--conf", "conf_path", required=True, type=click.Path(dir_okay=False), help="A .conf or .conflist file.")
@click.option("--netns", default="", help="Network namespace path, e.g. /var/run/netns/pod1 (ADD/CHECK).")
@click.option("--container-id", default="", help="Container ID (ADD/CHECK/DEL).")
@click.option("--ifname", default="eth0", show_default=True, help="Interface name inside the container.")
@click.option("--cap-args", default="", help='Capability args as JSON, e.g. \'{"portMappings":[...]}\'.')
@click.option("--args", "cni_args", default="", help="CNI_ARGS, e.g. 'IP=10.1.0.9;K8S_POD_NAME=x'.")
@click.option("--cni-path", default="", help="Plugin directories, ':'-separated (default: $CNI_PATH or /opt/cni/bin).")
@click.option("--cache-dir", default=DEFAULT_CACHE_DIR, show_default=True, help="Where results are cached (libcni layout).")
@click.option("--valid-attachments", default=None, help='GC: JSON list of {"containerID","ifname"} to keep (default: every cached one).')
def run_cmd(verb: str, conf_path: str, netns: str, container_id: str, ifname: str, cap_args: str, cni_args: str,
            cni_path: str, cache_dir: str, valid_attachments: str | None) -> None:
    """Run VERB on a network config the way libcni does.

    \b
    Injects name/cniVersion, builds runtimeConfig from declared capabilities, chains
    prevResult through a conflist, runs DEL in reverse order and keeps a result cache.
    On failure the plugin's CNI error JSON is printed on stdout and the exit code is 1.
    """
    verb = verb.upper()
    version = "1.1.0"
    try:
        net = ConfList.load(conf_path)
        version = net.cni_version
        path = [p for p in (cni_path or os.environ.get("CNI_PATH", "")).split(":") if p] or None
        runner = Runner(path, cache_dir, resolve=in_process)
        try:
            caps = json.loads(cap_args) if cap_args else {}
        except ValueError as e:
            raise CNIError(errors.DECODING_FAILURE, f"--cap-args is not valid JSON: {e}") from None
        rt = RuntimeConf(container_id=container_id, netns=netns, ifname=ifname, args=_parse_cni_args(cni_args),
                         capability_args=caps)
        if verb in ("ADD", "CHECK") and not netns:
            raise CNIError(errors.INVALID_ENVIRONMENT, f"{verb} needs --netns")
        if verb == "ADD":
            click.echo(json.dumps(runner.add(net, rt), indent=4))
        elif verb == "CHECK":
            runner.check(net, rt)
        elif verb == "DEL":
            runner.delete(net, rt)
        elif verb == "GC":
            valid = json.loads(valid_attachments) if valid_attachments else None
            runner.gc(net, valid)
        else:
            runner.status(net)
    except CNIError as e:
        click.echo(e.to_json(version if version else "1.1.0"))
        sys.exit(1)
