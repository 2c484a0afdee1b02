"""kubectl-like verbs on the lab's API objects: apply, delete, get, exec, logs."""

from __future__ import annotations

import calendar
import contextlib
import json
import os
import subprocess
import sys
import time

import click
import yaml

from ..api import stored
from ..api.errors import ValidationError
from ..api.manifest import load_file
from ..api.deployment import parse_deployment
from ..api.networkpolicy import parse_namespace, parse_network_policy
from ..api.pod import Pod, check_labels, parse_pod
from ..api.service import parse_service
from ..lab import pods as pods_mod
from ..lab import policies, workloads
from ..lab.state import LabError, LabState
from ..lab.topology import store_context
from ..api.keys import DEPLOYMENTS, ENDPOINT_SLICES, NETWORK_POLICIES, NODES, PODS, SERVICES
from ..policy.world import namespace_key
from ..store import StoreError, open_store


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


KINDS = {"pod": "Pod", "pods": "Pod", "po": "Pod", "service": "Service", "services": "Service", "svc": "Service",
         "deployment": "Deployment", "deployments": "Deployment", "deploy": "Deployment",
         "networkpolicy": "NetworkPolicy", "networkpolicies": "NetworkPolicy", "netpol": "NetworkPolicy",
         "namespace": "Namespace", "namespaces": "Namespace", "ns": "Namespace"}
SUPPORTED = "Pod, Service, Deployment, NetworkPolicy, Namespace"


def _parse_all(files: tuple[str, ...], namespace: str) -> list[tuple[str, object]]:
    """Every document of every file as (kind, parsed object), validated before anything is applied."""
    out: list[tuple[str, object]] = []
    seen = set()
    for path in files:
        for i, doc in enumerate(load_file(path)):
            where = f"{path} (document {i + 1})"
            kind = doc.get("kind")
            if kind == "Pod":
                obj = parse_pod(doc, where, namespace)
                ident = (kind, obj.namespace, obj.name)
            elif kind == "Service":
                obj = parse_service(doc, where, namespace)
                ident = (kind, obj["metadata"]["namespace"], obj["metadata"]["name"])
            elif kind == "Deployment":
                obj = parse_deployment(doc, where, namespace)
                ident = (kind, obj["metadata"]["namespace"], obj["metadata"]["name"])
            elif kind == "NetworkPolicy":
                obj = parse_network_policy(doc, where, namespace)
                ident = (kind, obj["metadata"]["namespace"], obj["metadata"]["name"])
            elif kind == "Namespace":
                obj = parse_namespace(doc, where)
                ident = (kind, "", obj["metadata"]["name"])
            else:
                raise ValidationError("kind", f"{kind!r} is not supported (supported: {SUPPORTED})", where)
            if ident in seen:
                raise ValidationError("metadata.name", f"{kind} {ident[1]}/{ident[2]} appears twice", where)
            seen.add(ident)
            out.append((kind, obj))
    return out


@click.command("apply")
@click.option("-f", "--filename", "files", multiple=True, required=True, help="Manifest file (YAML or JSON; '-' for stdin).")
@click.option("-n", "--namespace", default="default", show_default=True)
def apply(files: tuple[str, ...], namespace: str) -> None:
    """Create or update Pods, Services, Deployments, NetworkPolicies and Namespaces. All documents
    are checked first: one bad document means nothing is applied. Namespaces come first, then
    services and policies, then pods: pods see the services in their environment, and start
    already isolated by the policies that select them."""
    try:
        wanted = _parse_all(files, namespace)
    except ValidationError as e:
        raise click.ClickException(str(e)) from None
    if not wanted:
        raise click.ClickException("no objects passed to apply")
    order = {"Namespace": 0, "Service": 1, "NetworkPolicy": 1, "Deployment": 2, "Pod": 2}
    wanted.sort(key=lambda kv: order[kv[0]])
    with lab_store() as (state, store):
        for kind, obj in wanted:
            if kind == "Pod" and obj.node_name:
                try:
                    state.node(obj.node_name)
                except LabError as e:
                    raise click.ClickException(f"{obj.namespace}/{obj.name}: spec.nodeName: {e}") from None
        failed = False
        created_namespaces = {obj["metadata"]["name"] for kind, obj in wanted if kind == "Namespace"}
        for kind, obj in wanted:
            ns = obj.namespace if kind == "Pod" else obj["metadata"].get("namespace")
            if ns and ns not in created_namespaces and not policies.namespace_exists(store, ns):
                click.echo(f'Error from server (NotFound): namespaces "{ns}" not found', err=True)
                failed = True
                continue
            try:
                if kind == "Service":
                    click.echo(f"service/{obj['metadata']['name']} {workloads.apply_service(store, obj)}")
                elif kind == "Deployment":
                    click.echo(f"deployment.apps/{obj['metadata']['name']} {workloads.apply_deployment(state, store, obj)}")
                elif kind == "NetworkPolicy":
                    click.echo(f"networkpolicy.networking.k8s.io/{obj['metadata']['name']} "
                               f"{policies.apply_network_policy(store, obj)}")
                elif kind == "Namespace":
                    click.echo(f"namespace/{obj['metadata']['name']} {policies.apply_namespace(store, obj)}")
                else:
                    click.echo(f"pod/{obj.name} {_apply_pod(state, store, obj)}")
            except ValidationError as e:
                click.echo(f"Error from server: {kind.lower()}: {e}", err=True)
                failed = True
            except StoreError as e:
                name = obj.name if kind == "Pod" else obj["metadata"]["name"]
                click.echo(f"Error: {kind.lower()}/{name}: the datastore is unavailable: {e}", err=True)
                failed = True
            except Exception as e:  # noqa: BLE001 - report, keep going with the others, exit 1
                click.echo(f"Error from server: {kind.lower()}: {e}", err=True)
                failed = True
        if failed:
            sys.exit(1)


def _apply_pod(state, store, pod: Pod) -> str:
    current = pods_mod.get_pod(store, pod.namespace, pod.name)
    if current is None:
        pods_mod.create_pod(state, store, pod)
        return "created"
    if current["metadata"].get("labels", {}) == pod.labels:
        return "unchanged"
    current["metadata"]["labels"] = pod.labels
    store.put(pod.key, json.dumps(current))
    return "configured"


@click.command("delete")
@click.option("-f", "--filename", "files", multiple=True, help="Delete what a manifest describes.")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.argument("target", nargs=-1)
def delete(files: tuple[str, ...], namespace: str, target: tuple[str, ...]) -> None:
    """Delete objects: `podnet delete -f FILE` or `podnet delete pod|svc|deploy|netpol|ns NAME...`.
    Deleting a namespace deletes everything in it."""
    names: list[tuple[str, str, str]] = []
    try:
        for kind, obj in _parse_all(files, namespace) if files else []:
            if kind == "Pod":
                names.append((kind, obj.namespace, obj.name))
            else:
                names.append((kind, obj["metadata"].get("namespace", ""), obj["metadata"]["name"]))
    except ValidationError as e:
        raise click.ClickException(str(e)) from None
    if target:
        kind_word, *rest = target
        if kind_word not in KINDS:
            raise click.ClickException(f"cannot delete {kind_word!r}: use pod, service, deployment, networkpolicy or namespace")
        names += [(KINDS[kind_word], "" if KINDS[kind_word] == "Namespace" else namespace, n) for n in rest]
    protected = [n for kind, _, n in names if kind == "Namespace" and n in policies.SYSTEM_NAMESPACES]
    if protected:
        raise click.ClickException(f'namespace "{protected[0]}" is a system namespace and cannot be deleted')
    if not names:
        raise click.ClickException("no objects passed to delete" if files else "nothing to delete: give -f FILE or `pod NAME`")
    with lab_store() as (state, store):
        missing = False
        for kind, ns, name in names:
            if kind == "Pod":
                ok = pods_mod.delete_pod(state, store, ns, name)
            elif kind == "Service":
                ok = workloads.delete_service(store, ns, name)
            elif kind == "NetworkPolicy":
                ok = policies.delete_network_policy(store, ns, name)
            elif kind == "Namespace":
                ok = policies.delete_namespace(state, store, name)
            else:
                ok = workloads.delete_deployment(state, store, ns, name)
            plural = {"Pod": "pods", "Service": "services", "Deployment": "deployments.apps",
                      "NetworkPolicy": "networkpolicies.networking.k8s.io", "Namespace": "namespaces"}[kind]
            if ok:
                click.echo(f'{kind.lower()} "{name}" deleted')
            else:
                click.echo(f'Error from server (NotFound): {plural} "{name}" not found', err=True)
                missing = True
        if missing:
            sys.exit(1)


@click.command("scale")
@click.argument("target")
@click.option("--replicas", type=click.IntRange(0, 1000), required=True)
@click.option("-n", "--namespace", default="default", show_default=True)
def scale(target: str, replicas: int, namespace: str) -> None:
    """Set a deployment's replicas: podnet scale deployment/web --replicas 5"""
    kind, _, name = target.partition("/")
    if kind not in ("deployment", "deploy", "deployments") or not name:
        raise click.ClickException("give deployment/NAME")
    with lab_store() as (state, store):
        if not workloads.scale(state, store, namespace, name, replicas):
            raise click.ClickException(f'deployments.apps "{name}" not found')
        click.echo(f"deployment.apps/{name} scaled")


def _decoded(kvs, namespaced: bool = True) -> list[dict]:
    """Stored objects; a malformed one is skipped with a warning naming its key."""
    objs, bad = stored.decode_all(kvs, namespaced)
    for key in bad:
        click.echo(f"warning: skipping {key}: not a valid stored object", err=True)
    return objs


def _json_or_empty(kv) -> dict:
    try:
        obj = json.loads(kv.value)
    except ValueError:
        obj = None
    if not isinstance(obj, dict):
        click.echo(f"warning: skipping {kv.key}: not a JSON object", err=True)
        return {}
    return obj


def _epoch(ts: str) -> float:
    """Seconds since the epoch of an API timestamp (UTC, RFC 3339 with a Z)."""
    return calendar.timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ"))


def _age(ts: str) -> str:
    try:
        secs = int(time.time() - _epoch(ts))
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
                beat = _epoch(c["lastHeartbeatTime"])
            except (KeyError, ValueError, TypeError):
                return False
            return c.get("status") == "True" and time.time() - beat < 30
    return False


@click.command("get")
@click.argument("kind", type=click.Choice(["nodes", "node", "no", "pods", "pod", "po", "services", "service", "svc",
                                          "endpoints", "ep", "endpointslices", "deployments", "deployment", "deploy",
                                          "networkpolicies", "networkpolicy", "netpol", "namespaces", "namespace", "ns"]))
@click.argument("names", nargs=-1)
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-A", "--all-namespaces", is_flag=True)
@click.option("-o", "--output", type=click.Choice(["wide", "json", "yaml", "name"]), default=None)
@click.option("--show-labels", is_flag=True, help="Add a LABELS column (pods, namespaces).")
def get(kind: str, names: tuple[str, ...], namespace: str, all_namespaces: bool, output: str | None,
        show_labels: bool) -> None:
    """List nodes, pods, services, endpoints, deployments, networkpolicies or namespaces
    (`-o wide`, `-o json|yaml`, `--show-labels`)."""
    with lab_store() as (state, store):
        if kind in ("namespaces", "namespace", "ns"):
            _get_namespaces(store, names, output, show_labels)
            return
        if kind in ("services", "service", "svc", "endpoints", "ep", "endpointslices", "deployments", "deployment", "deploy",
                    "networkpolicies", "networkpolicy", "netpol"):
            _get_other(state, store, kind, names, namespace, all_namespaces, output)
            return
        if kind in ("nodes", "node", "no"):
            kvs, _ = store.list(NODES)
            items = _select(_decoded(kvs, namespaced=False), names, "node")
            if _emit(items, output or "", len(names) == 1, "node"):
                return
            headers = ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
            if output == "wide":
                headers += ["INTERNAL-IP", "POD-CIDR", "BACKEND", "AGENT", "SPOOFED"]
            rows = []
            for n in items:
                row = [n["metadata"]["name"], "Ready" if _node_ready(n) else "NotReady", "<none>",
                       _age(n["metadata"].get("creationTimestamp", "")), "podnet"]
                if output == "wide":
                    extra = n["status"].get("podnet", {})
                    ipaddr = next((a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP"), "")
                    row += [ipaddr, n["spec"].get("podCIDR", ""), extra.get("backend", ""),
                            _agent_text(state, n["metadata"]["name"]), str(sum((extra.get("spoofedPackets") or {}).values()))]
                rows.append(row)
            click.echo(_table(headers, rows) if rows else "No resources found")
            return
        items = _select(pods_mod.list_pods(state, store, namespace, all_namespaces), names, "pod")
        if _emit(items, output or "", len(names) == 1, "pod"):
            return
        headers = (["NAMESPACE"] if all_namespaces else []) + ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
        if output == "wide":
            headers += ["IP", "NODE"]
        if show_labels:
            headers.append("LABELS")
        rows = []
        for p in items:
            statuses = p["status"].get("containerStatuses", [])
            ready = sum(1 for c in statuses if c.get("ready"))
            total = len(p["spec"].get("containers", [])) or 1
            restarts = sum(int(c.get("restartCount", 0)) for c in statuses)
            row = ([p["metadata"]["namespace"]] if all_namespaces else []) + [
                p["metadata"]["name"], f"{ready}/{total}", pod_status_text(p), str(restarts),
                _age(p["metadata"].get("creationTimestamp", ""))]
            if output == "wide":
                row += [p["status"].get("podIP", "<none>"), p["spec"].get("nodeName", "<none>")]
            if show_labels:
                row.append(_labels(p))
            rows.append(row)
        where = "" if all_namespaces else f" in {namespace} namespace"
        click.echo(_table(headers, rows) if rows else f"No resources found{where}.")


def _agent_text(state, node: str) -> str:
    """The node agent's supervised state, as kubectl would print a pod's: `Running`,
    `CrashLoopBackOff`..., with its restarts."""
    from ..lab.topology import agent_state_path
    from ..proc import pid_alive
    from ..runtime.supervisor import read_state

    status = read_state(agent_state_path(state, node))
    if status is None:
        return "<unknown>"
    if not pid_alive(int(status.get("supervisorPid") or 0)):
        return "NotRunning"
    text = pod_status_text({"status": {"phase": "Running", "containerStatuses": [status]}})
    restarts = status.get("restartCount", 0)
    return f"{text}, {restarts} restart{'s' if restarts != 1 else ''}" if restarts else text


def pod_status_text(pod: dict) -> str:
    """The STATUS column as kubectl prints it: the phase, unless a container is waiting or has
    terminated, then its reason (CrashLoopBackOff, StartError, Error, Completed, ...)."""
    status = pod.get("status", {})
    text = status.get("reason") or status.get("phase", "")
    for c in status.get("containerStatuses", []):
        state = c.get("state", {})
        if state.get("waiting", {}).get("reason"):
            text = state["waiting"]["reason"]
        elif "terminated" in state:
            t = state["terminated"]
            text = t.get("reason") or (f"Signal:{t['signal']}" if t.get("signal") else f"ExitCode:{t.get('exitCode')}")
    return text


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
@click.option("--tail", default=-1, show_default=True, help="Lines from the end (-1: all, 0: none).")
@click.argument("pod")
def logs(namespace: str, tail: int, pod: str) -> None:
    """Print what POD's process wrote to stdout and stderr."""
    _pod_netns(namespace, pod)  # checks the pod exists
    path = LabState.load().pod_log(namespace, pod)
    text = open(path, errors="replace").read() if os.path.exists(path) else ""
    lines = text.splitlines()
    if tail >= 0:
        lines = lines[-tail:] if tail else []
    if lines:
        click.echo("\n".join(lines))


def _ports(spec: dict) -> str:
    return ",".join(f"{p['port']}:{p['nodePort']}/{p['protocol']}" if p.get("nodePort") else f"{p['port']}/{p['protocol']}"
                    for p in spec.get("ports", [])) or "<none>"


def _get_other(state, store, kind: str, names, namespace: str, all_namespaces: bool, output: str | None) -> None:
    if kind in ("services", "service", "svc"):
        prefix, word = SERVICES, "service"
    elif kind in ("deployments", "deployment", "deploy"):
        prefix, word = DEPLOYMENTS, "deployment"
    elif kind in ("networkpolicies", "networkpolicy", "netpol"):
        prefix, word = NETWORK_POLICIES, "networkpolicy"
    else:
        prefix, word = ENDPOINT_SLICES, "endpoints"
    kvs, _ = store.list(prefix if all_namespaces else f"{prefix}{namespace}/")
    if word == "endpoints":  # one row per service, its slices together
        objs = [_json_or_empty(kv) for kv in kvs]
        objs = [{"apiVersion": "v1", "kind": "EndpointSliceList",
                 "metadata": dict(zip(("namespace", "name"), kv.key[len(prefix):].split("/", 1))), "items": o.get("items", [])}
                for kv, o in zip(kvs, objs)]
    else:
        objs = _decoded(kvs)
    items = _select(objs, names, word)
    if _emit(items, output or "", len(names) == 1, word):
        return
    ns_col = ["NAMESPACE"] if all_namespaces else []
    rows = []
    if word == "service":
        headers = ns_col + ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"] + (["SELECTOR"] if output == "wide" else [])
        for o in items:
            spec = o["spec"]
            ext = ",".join(i["ip"] for i in o.get("status", {}).get("loadBalancer", {}).get("ingress", [])) or \
                (spec.get("externalName") or ("<pending>" if spec["type"] == "LoadBalancer" else "<none>"))
            row = ([o["metadata"]["namespace"]] if all_namespaces else []) + [
                o["metadata"]["name"], spec["type"], spec.get("clusterIP") or "<none>", ext, _ports(spec),
                _age(o["metadata"].get("creationTimestamp", ""))]
            if output == "wide":
                row.append(",".join(f"{k}={v}" for k, v in spec.get("selector", {}).items()) or "<none>")
            rows.append(row)
    elif word == "networkpolicy":
        headers = ns_col + ["NAME", "POD-SELECTOR", "AGE"] + (["POLICY-TYPES"] if output == "wide" else [])
        for o in items:
            row = ([o["metadata"]["namespace"]] if all_namespaces else []) + [
                o["metadata"]["name"], selector_text(o["spec"]["podSelector"]),
                _age(o["metadata"].get("creationTimestamp", ""))]
            if output == "wide":
                row.append(",".join(o["spec"]["policyTypes"]))
            rows.append(row)
    elif word == "deployment":
        headers = ns_col + ["NAME", "READY", "UP-TO-DATE", "AVAILABLE"]
        for o in items:
            pods = workloads.owned_pods(state, store, o)
            ready = sum(1 for p in pods if p["status"].get("phase") == "Running"
                        and all(c.get("ready") for c in p["status"].get("containerStatuses", [{}])))
            rows.append(([o["metadata"]["namespace"]] if all_namespaces else []) + [
                o["metadata"]["name"], f"{ready}/{o['spec']['replicas']}", str(len(pods)), str(ready)])
    else:
        headers = ns_col + ["NAME", "ENDPOINTS"]
        for o in items:
            addrs = [f"{a}:{sl['ports'][0]['port']}" if sl["ports"] else a
                     for sl in o["items"] for ep in sl["endpoints"] for a in ep["addresses"]]
            rows.append(([o["metadata"]["namespace"]] if all_namespaces else []) + [o["metadata"]["name"], ",".join(addrs) or "<none>"])
    where = "" if all_namespaces else f" in {namespace} namespace"
    click.echo(_table(headers, rows) if rows else f"No resources found{where}.")


def _labels(obj: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((obj["metadata"].get("labels") or {}).items())) or "<none>"


def selector_text(selector: dict) -> str:
    """A label selector as kubectl prints it: `pod=a,tier in (web,api)`; `<none>` selects all."""
    parts = [f"{k}={v}" for k, v in sorted(selector.get("matchLabels", {}).items())]
    for e in selector.get("matchExpressions", []):
        op = e["operator"]
        if op in ("In", "NotIn"):
            parts.append(f"{e['key']} {'in' if op == 'In' else 'notin'} ({','.join(e['values'])})")
        else:
            parts.append(e["key"] if op == "Exists" else f"!{e['key']}")
    return ",".join(parts) or "<none>"


def _get_namespaces(store, names: tuple[str, ...], output: str | None, show_labels: bool) -> None:
    items = _select(policies.list_namespaces(store), names, "namespace")
    for o in items:
        o.setdefault("status", {"phase": "Active"})
    if _emit(items, output or "", len(names) == 1, "namespace"):
        return
    headers = ["NAME", "STATUS", "AGE"] + (["LABELS"] if show_labels else [])
    rows = [[o["metadata"]["name"], o["status"]["phase"], _age(o["metadata"].get("creationTimestamp", ""))]
            + ([_labels(o)] if show_labels else []) for o in items]
    click.echo(_table(headers, rows) if rows else "No resources found")


@click.command("label")
@click.argument("kind", type=click.Choice(["pod", "pods", "po", "namespace", "namespaces", "ns"]))
@click.argument("name")
@click.argument("changes", nargs=-1, required=True)
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("--overwrite", is_flag=True, help="Allow changing the value of a label that is already set.")
def label(kind: str, name: str, changes: tuple[str, ...], namespace: str, overwrite: bool) -> None:
    """Set (key=value) or remove (key-) labels of a pod or a namespace:

    \b
      podnet label pod web -n x role=frontend
      podnet label ns y team=red
      podnet label pod web -n x role-            (remove it)

    Policies that select by these labels are re-enforced by every node's agent within seconds."""
    sets, removes = {}, []
    for change in changes:
        if change.endswith("-") and "=" not in change:
            removes.append(change[:-1])
        elif "=" in change:
            k, v = change.split("=", 1)
            sets[k] = v
        else:
            raise click.ClickException(f"{change!r}: give key=value to set a label or key- to remove it")
    try:
        check_labels(sets, "labels", "command line")
    except ValidationError as e:
        raise click.ClickException(str(e)) from None
    with lab_store() as (state, store):
        if KINDS[kind] == "Pod":
            kv = store.get(f"{PODS}{namespace}/{name}")
            if kv is None:
                raise click.ClickException(f'pods "{name}" not found in namespace {namespace}')
            obj, key, word = json.loads(kv.value), kv.key, "pod"
        else:
            found = {n["metadata"]["name"]: n for n in policies.list_namespaces(store)}
            if name not in found:
                raise click.ClickException(f'namespaces "{name}" not found')
            obj, key, word = found[name], namespace_key(name), "namespace"
            if "kubernetes.io/metadata.name" in sets or "kubernetes.io/metadata.name" in removes:
                raise click.ClickException("kubernetes.io/metadata.name is set by the API server and cannot change")
        labels = dict(obj["metadata"].get("labels") or {})
        clash = [k for k, v in sets.items() if k in labels and labels[k] != v]
        if clash and not overwrite:
            raise click.ClickException(f"'{clash[0]}' already has a value ({labels[clash[0]]}), and --overwrite is false")
        labels.update(sets)
        for k in removes:
            labels.pop(k, None)
        if labels == (obj["metadata"].get("labels") or {}):
            click.echo(f"{word}/{name} not labeled")
            return
        obj["metadata"]["labels"] = labels
        obj["metadata"].setdefault("creationTimestamp", pods_mod.now())
        store.put(key, json.dumps(obj))
        click.echo(f"{word}/{name} labeled")
