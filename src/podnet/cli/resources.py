"""kubectl-like verbs on the lab's API objects: apply, delete, get, exec, logs."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time

import click
import yaml

from ..api.errors import ValidationError
from ..api.manifest import load_file
from ..api.pod import Pod, parse_pod
from ..lab import pods as pods_mod
from ..lab.state import LabError, LabState
from ..lab.topology import store_context
from ..store import open_store


@contextlib.contextmanager
def lab_store():
    try:
        state = LabState.load()
    except LabError as e:
        raise click.ClickException(str(e)) from None
    with store_context(state):
        store = open_store(state.store_url)
        try:
            yield state, store
        finally:
            store.close()


def _parse_all(files: tuple[str, ...], namespace: str) -> list[Pod]:
    """Every document of every file, validated before anything is applied."""
    pods = []
    for path in files:
        for i, doc in enumerate(load_file(path)):
            where = f"{path} (document {i + 1})"
            kind = doc.get("kind")
            if kind != "Pod":
                raise ValidationError("kind", f"{kind!r} is not supported yet (supported: Pod)", where)
            pods.append(parse_pod(doc, where, namespace))
    seen = set()
    for p in pods:
        if p.key in seen:
            raise ValidationError("metadata.name", f"pod {p.namespace}/{p.name} appears twice")
        seen.add(p.key)
    return pods


@click.command("apply")
@click.option("-f", "--filename", "files", multiple=True, required=True, help="Manifest file (YAML or JSON; '-' for stdin).")
@click.option("-n", "--namespace", default="default", show_default=True)
def apply(files: tuple[str, ...], namespace: str) -> None:
    """Create the pods a manifest describes (or update their labels). All documents are checked
    first: one bad document means nothing is applied."""
    try:
        wanted = _parse_all(files, namespace)
    except ValidationError as e:
        raise click.ClickException(str(e)) from None
    with lab_store() as (state, store):
        for pod in wanted:
            if pod.node_name:
                try:
                    state.node(pod.node_name)
                except LabError as e:
                    raise click.ClickException(f"{pod.namespace}/{pod.name}: spec.nodeName: {e}") from None
        failed = False
        for pod in wanted:
            current = pods_mod.get_pod(store, pod.namespace, pod.name)
            if current is not None:
                if current["metadata"].get("labels", {}) == pod.labels:
                    click.echo(f"pod/{pod.name} unchanged")
                    continue
                current["metadata"]["labels"] = pod.labels
                store.put(pod.key, json.dumps(current))
                click.echo(f"pod/{pod.name} configured")
                continue
            try:
                pods_mod.create_pod(state, store, pod)
                click.echo(f"pod/{pod.name} created")
            except Exception as e:  # noqa: BLE001 - report, keep going with the other pods, exit 1
                click.echo(f"Error from server: pod/{pod.name}: {e}", err=True)
                failed = True
        if failed:
            sys.exit(1)


@click.command("delete")
@click.option("-f", "--filename", "files", multiple=True, help="Delete the pods a manifest describes.")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.argument("target", nargs=-1)
def delete(files: tuple[str, ...], namespace: str, target: tuple[str, ...]) -> None:
    """Delete pods: `podnet delete -f FILE` or `podnet delete pod NAME...`."""
    names: list[tuple[str, str]] = []
    try:
        if files:
            names = [(p.namespace, p.name) for p in _parse_all(files, namespace)]
    except ValidationError as e:
        raise click.ClickException(str(e)) from None
    if target:
        kind, *rest = target
        if kind not in ("pod", "pods", "po"):
            raise click.ClickException(f"cannot delete {kind!r}: only pods can be deleted so far")
        names += [(namespace, n) for n in rest]
    if not names:
        raise click.ClickException("nothing to delete: give -f FILE or `pod NAME`")
    with lab_store() as (state, store):
        missing = False
        for ns, name in names:
            if pods_mod.delete_pod(state, store, ns, name):
                click.echo(f'pod "{name}" deleted')
            else:
                click.echo(f'Error from server (NotFound): pods "{name}" not found', err=True)
                missing = True
        if missing:
            sys.exit(1)


def _age(ts: str) -> str:
    try:
        secs = int(time.time() - time.mktime(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ")) + time.mktime(time.gmtime(0)))
    except (ValueError, TypeError):
        return "<unknown>"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{secs // size}{unit}"
    return f"{max(secs, 0)}s"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["   ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def _select(items: list[dict], names: tuple[str, ...], kind: str) -> list[dict]:
    if not names:
        return items
    found = {i["metadata"]["name"]: i for i in items}
    missing = [n for n in names if n not in found]
    if missing:
        raise click.ClickException(f'{kind}s "{missing[0]}" not found')
    return [found[n] for n in names]


def _emit(items: list[dict], output: str, single: bool, kind: str) -> bool:
    """json/yaml/name output; False when a table is wanted instead."""
    if output == "name":
        click.echo("\n".join(f"{kind}/{i['metadata']['name']}" for i in items))
        return True
    if output in ("json", "yaml"):
        doc = items[0] if single else {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}}
        click.echo(json.dumps(doc, indent=4) if output == "json" else yaml.safe_dump(doc, sort_keys=False).rstrip())
        return True
    return False


def _node_ready(node: dict) -> bool:
    for c in node.get("status", {}).get("conditions", []):
        if c.get("type") == "Ready":
            try:
                beat = time.mktime(time.strptime(c["lastHeartbeatTime"], "%Y-%m-%dT%H:%M:%SZ")) - time.mktime(time.gmtime(0))
            except (KeyError, ValueError):
                return False
            return c.get("status") == "True" and time.time() - beat < 30
    return False


@click.command("get")
@click.argument("kind", type=click.Choice(["nodes", "node", "no", "pods", "pod", "po"]))
@click.argument("names", nargs=-1)
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-A", "--all-namespaces", is_flag=True)
@click.option("-o", "--output", type=click.Choice(["wide", "json", "yaml", "name"]), default=None)
def get(kind: str, names: tuple[str, ...], namespace: str, all_namespaces: bool, output: str | None) -> None:
    """List nodes or pods (`-o wide` for addresses, `-o json|yaml` for the objects)."""
    with lab_store() as (state, store):
        if kind in ("nodes", "node", "no"):
            kvs, _ = store.list("/podnet/nodes/")
            items = _select([json.loads(kv.value) for kv in kvs], names, "node")
            if _emit(items, output or "", len(names) == 1, "node"):
                return
            headers = ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
            if output == "wide":
                headers += ["INTERNAL-IP", "POD-CIDR", "BACKEND"]
            rows = []
            for n in items:
                row = [n["metadata"]["name"], "Ready" if _node_ready(n) else "NotReady", "<none>",
                       _age(n["metadata"].get("creationTimestamp", "")), "podnet"]
                if output == "wide":
                    ipaddr = next((a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP"), "")
                    row += [ipaddr, n["spec"].get("podCIDR", ""), n["status"].get("podnet", {}).get("backend", "")]
                rows.append(row)
            click.echo(_table(headers, rows) if rows else "No resources found")
            return
        items = _select(pods_mod.list_pods(state, store, namespace, all_namespaces), names, "pod")
        if _emit(items, output or "", len(names) == 1, "pod"):
            return
        headers = (["NAMESPACE"] if all_namespaces else []) + ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
        if output == "wide":
            headers += ["IP", "NODE"]
        rows = []
        for p in items:
            ready = sum(1 for c in p["status"].get("containerStatuses", []) if c.get("ready"))
            total = len(p["status"].get("containerStatuses", [])) or 1
            row = ([p["metadata"]["namespace"]] if all_namespaces else []) + [
                p["metadata"]["name"], f"{ready}/{total}", p["status"].get("phase", ""), "0",
                _age(p["metadata"].get("creationTimestamp", ""))]
            if output == "wide":
                row += [p["status"].get("podIP", "<none>"), p["spec"].get("nodeName", "<none>")]
            rows.append(row)
        where = "" if all_namespaces else f" in {namespace} namespace"
        click.echo(_table(headers, rows) if rows else f"No resources found{where}.")


def _pod_netns(namespace: str, name: str) -> str:
    with lab_store() as (state, store):
        pod = pods_mod.get_pod(store, namespace, name)
        if pod is None:
            raise click.ClickException(f'pods "{name}" not found in namespace {namespace}')
        return pod["metadata"]["annotations"]["podnet.io/netns"]


@click.command("exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("-n", "--namespace", default="default", show_default=True)
@click.argument("pod")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, required=True)
def exec_(namespace: str, pod: str, command: tuple[str, ...]) -> None:
    """Run COMMAND in POD's network namespace: podnet exec POD -- ping -c1 10.244.2.2"""
    argv = list(command)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise click.ClickException("give a command after --")
    ns = _pod_netns(namespace, pod)
    sys.exit(subprocess.call(["ip", "netns", "exec", ns, *argv]))


@click.command("logs")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("--tail", default=-1, help="Lines from the end (-1: all).")
@click.argument("pod")
def logs(namespace: str, tail: int, pod: str) -> None:
    """Print what POD's process wrote to stdout and stderr."""
    _pod_netns(namespace, pod)  # checks the pod exists
    path = LabState.load().pod_log(namespace, pod)
    text = open(path, errors="replace").read() if os.path.exists(path) else ""
    lines = text.splitlines()
    click.echo("\n".join(lines[-tail:] if tail >= 0 else lines))
