"""kubectl-like verbs on API objects: apply, delete, get, label, scale, wait, exec, logs.

Every verb loops over the kinds registry (`podnet.api.kinds`) and writes through the API
server (`podnet.apiserver`): `apply` only writes objects (the kubelet of the node a pod is
scheduled on starts it; the controller manager makes a Deployment's pods), and `wait` is how
to know when something is ready.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import json
import os
import subprocess
import sys
import time

import click
import yaml

from ..api import kinds, stored
from ..api.errors import ValidationError
from ..api.keys import ENDPOINT_SLICES
from ..api.manifest import load_file
from ..api.pod import check_labels
from ..apiserver import bulk, objects
from ..lab.state import LabError, LabState
from ..lab.topology import store_context
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


def _kind(word: str, writable: bool = False) -> kinds.Kind:
    kind = kinds.lookup(word)
    if kind is None or (writable and not kind.writable):
        choices = ", ".join(k.singular for k in kinds.KINDS if k.writable or not writable)
        raise click.ClickException(f'the server doesn\'t have a resource type "{word}" (known: {choices})')
    return kind


def _admit_tunnel(pool: dict, where: str) -> None:
    """An IPPool asking for IP-in-IP is refused where the kernel cannot make an ipip device
    (found by trying, in a throwaway namespace): its pods would be cut off across segments."""
    from ..kernel.features import link_kind_problem

    mode = pool["spec"]["ipipMode"]
    if mode != "Never":
        problem = link_kind_problem("ipip")
        if problem:
            raise ValidationError("spec.ipipMode", f"{mode} needs IP-in-IP tunnels, and this kernel cannot create an ipip "
                                                   f"device (ip link add type ipip: {problem}); use vxlanMode: {mode} instead",
                                  where)


def _parse_all(files: tuple[str, ...], namespace: str) -> list[tuple[kinds.Kind, dict]]:
    """Every document of every file as (kind, stored object), all validated before anything is written."""
    out: list[tuple[kinds.Kind, dict]] = []
    seen = set()
    for path in files:
        for i, doc in enumerate(load_file(path)):
            where = f"{path} (document {i + 1})"
            kind = kinds.BY_KIND.get(doc.get("kind")) if isinstance(doc.get("kind"), str) else None
            if kind is None or not kind.writable:
                raise ValidationError("kind", f"{doc.get('kind')!r} is not supported (supported: {kinds.WRITABLE})", where)
            obj = kind.parse(doc, where, namespace)
            if kind.kind == "IPPool":
                _admit_tunnel(obj, where)
            ident = (kind.kind, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
            if ident in seen:
                raise ValidationError("metadata.name", f"{kind.kind} {ident[1]}/{ident[2]} appears twice", where)
            seen.add(ident)
            out.append((kind, obj))
    return out


@click.command("apply")
@click.option("-f", "--filename", "files", multiple=True, required=True, help="Manifest file (YAML or JSON; '-' for stdin).")
@click.option("-n", "--namespace", default="default", show_default=True)
def apply(files: tuple[str, ...], namespace: str) -> None:
    """Create or update objects (Pod, Service, Deployment, NetworkPolicy, Namespace, Ingress,
    IngressClass, Secret; Calico's IPPool and BGPConfiguration). All
    documents are checked first: one bad document means nothing is applied. Namespaces come
    first, then services and policies, then deployments and pods: pods see the services in their
    environment, and start already isolated by the policies that select them.

    \b
    apply returns once the objects are stored; the kubelet then starts the pods. To wait:
      podnet wait --for=condition=Ready pod/web --timeout 60s"""
    try:
        wanted = _parse_all(files, namespace)
    except ValidationError as e:
        raise click.ClickException(str(e)) from None
    if not wanted:
        raise click.ClickException("no objects passed to apply")
    wanted.sort(key=lambda ko: ko[0].rank)
    creating = frozenset(obj["metadata"]["name"] for kind, obj in wanted if kind.kind == "Namespace")
    with lab_store() as (_state, store):
        failed = False
        for _, group in itertools.groupby(wanted, key=lambda ko: ko[0].rank):
            # one rank at a time (namespaces before what lives in them); within a rank the
            # objects are independent, so a long List is written by several workers at once:
            # with etcd each object is a few round trips, and 10,000 of them one after another
            # take minutes. Results are reported in the manifest's order.
            batch = list(group)
            outcomes: dict[int, tuple] = {}
            if len(batch) >= 2 * APPLY_WORKERS:  # new Services: many per transaction (apiserver.bulk)
                services = [i for i, (kind, _) in enumerate(batch) if kind.kind == "Service"]
                try:
                    done = bulk.apply_services(store, [batch[i][1] for i in services], creating)
                except StoreError as e:
                    done = [(None, e)] * len(services)
                outcomes.update(zip(services, done))
            rest = [i for i in range(len(batch)) if i not in outcomes]
            workers = APPLY_WORKERS if len(rest) >= 2 * APPLY_WORKERS else 1
            with concurrent.futures.ThreadPoolExecutor(workers) as pool:
                outcomes.update(zip(rest, pool.map(lambda i: _apply_one(store, batch[i][1], creating), rest)))
            for i, (kind, obj) in enumerate(batch):
                result, error = outcomes[i]
                if error is not None:
                    click.echo(_error_line(kind, obj["metadata"]["name"], error), err=True)
                    failed = True
                else:
                    click.echo(f"{kind.qualified}/{obj['metadata']['name']} {result}")
        if failed:
            sys.exit(1)


APPLY_WORKERS = 8


def _apply_one(store, obj: dict, creating: frozenset[str]) -> tuple:
    """(what apply did, None) or (None, the exception)."""
    try:
        return objects.apply(store, obj, creating), None
    except Exception as e:  # noqa: BLE001 - reported by the caller, in order
        return None, e


def _error_line(kind: kinds.Kind, name: str, e: Exception) -> str:
    if isinstance(e, objects.NotFound):
        return f"Error from server (NotFound): {e}"
    if isinstance(e, ValidationError):
        return f"Error from server (Invalid): {kind.qualified}/{name}: {e}"
    if isinstance(e, StoreError):
        return f"Error: {kind.singular}/{name}: the datastore is unavailable: {e}"
    return f"Error from server: {kind.singular}/{name}: {e}"


@click.command("delete")
@click.option("-f", "--filename", "files", multiple=True, help="Delete what a manifest describes.")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until deleted pods are gone.")
@click.option("--timeout", default=60.0, show_default=True, help="How long --wait waits (seconds).")
@click.option("--force", is_flag=True, help="Remove pods from the store at once (their kubelet cleans up afterwards).")
@click.option("--grace-period", default=30, show_default=True, help="Seconds a pod's processes get between SIGTERM and SIGKILL.")
@click.argument("target", nargs=-1)
def delete(files: tuple[str, ...], namespace: str, wait: bool, timeout: float, force: bool, grace_period: int,
           target: tuple[str, ...]) -> None:
    """Delete objects: `podnet delete -f FILE` or `podnet delete KIND NAME...` (also KIND/NAME).
    A pod is stopped by its node's kubelet (SIGTERM, then SIGKILL after the grace period);
    deleting a deployment or a namespace deletes its pods, or everything in it."""
    names: list[tuple[kinds.Kind, str, str]] = []
    try:
        for kind, obj in _parse_all(files, namespace) if files else []:
            names.append((kind, obj["metadata"].get("namespace", ""), obj["metadata"]["name"]))
    except ValidationError as e:
        raise click.ClickException(str(e)) from None
    args = list(target)
    while args:
        word = args.pop(0)
        if "/" in word:
            kind_word, _, name = word.partition("/")
            kind = _kind(kind_word, writable=True)
            names.append((kind, namespace if kind.namespaced else "", name))
            continue
        kind = _kind(word, writable=True)
        if not args:
            raise click.ClickException(f"give the name of the {kind.singular} to delete")
        names += [(kind, namespace if kind.namespaced else "", n) for n in args]
        args = []
    if not names:
        raise click.ClickException("no objects passed to delete" if files else "nothing to delete: give -f FILE or KIND NAME")
    with lab_store() as (_state, store):
        missing = False
        waiting = []
        for kind, ns, name in names:
            pods = _pods_going_with(store, kind, ns, name)
            try:
                ok = objects.delete(store, kind, ns, name, grace=grace_period, force=force)
            except ValidationError as e:
                raise click.ClickException(e.problem) from None
            if ok:
                click.echo(f'{kind.singular} "{name}" deleted')
                waiting += pods
            else:
                click.echo(f'Error from server (NotFound): {kind.plural} "{name}" not found', err=True)
                missing = True
        if wait and waiting:
            deadline = time.monotonic() + timeout
            while waiting and time.monotonic() < deadline:
                waiting = [(ns, n) for ns, n in waiting if objects.get(store, kinds.BY_KIND["Pod"], ns, n) is not None]
                time.sleep(0.05)
            if waiting:
                raise click.ClickException(f"timed out waiting for pods to go: {', '.join(n for _, n in waiting)} "
                                           "(is their node's kubelet running? --force removes them now)")
        if missing:
            sys.exit(1)


def _pods_going_with(store, kind: kinds.Kind, namespace: str, name: str) -> list[tuple[str, str]]:
    """The pods a deletion stops: the pod itself, a deployment's, or everything in a namespace."""
    if kind.kind == "Pod":
        return [(namespace, name)]
    if kind.kind == "Deployment":
        pods = objects.owned_pods(store, namespace, name)
    elif kind.kind == "Namespace":
        pods = objects.list_objects(store, kinds.BY_KIND["Pod"], name)[0]
    else:
        return []
    return [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in pods]


@click.command("scale")
@click.argument("target")
@click.option("--replicas", type=click.IntRange(0, 1000), required=True)
@click.option("-n", "--namespace", default="default", show_default=True)
def scale(target: str, replicas: int, namespace: str) -> None:
    """Set a deployment's replicas: podnet scale deployment/web --replicas 5"""
    kind_word, _, name = target.partition("/")
    if _kind(kind_word).kind != "Deployment" or not name:
        raise click.ClickException("give deployment/NAME")
    with lab_store() as (_state, store):
        try:
            objects.scale(store, namespace, name, replicas)
        except objects.NotFound as e:
            raise click.ClickException(str(e)) from None
        click.echo(f"deployment.apps/{name} scaled")


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["   ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def _decoded(kvs, namespaced: bool = True) -> list[dict]:
    """Stored objects; a malformed one is skipped with a warning naming its key."""
    objs, bad = stored.decode_all(kvs, namespaced)
    for key in bad:
        click.echo(f"warning: skipping {key}: not a valid stored object", err=True)
    return objs


def _endpoints(kvs) -> list[dict]:
    """One object per service, its slices together (how `get endpoints` shows them)."""
    out = []
    for kv in kvs:
        try:
            obj = json.loads(kv.value)
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            click.echo(f"warning: skipping {kv.key}: not a JSON object", err=True)
            continue
        ns, _, name = kv.key[len(ENDPOINT_SLICES):].partition("/")
        out.append({"apiVersion": "v1", "kind": "EndpointSliceList", "metadata": {"namespace": ns, "name": name},
                    "items": obj.get("items", [])})
    return out


def _items(store, kind: kinds.Kind, namespace: str, all_namespaces: bool) -> list[dict]:
    if kind.kind == "Namespace":
        from ..lab.policies import list_namespaces

        return list_namespaces(store)
    prefix = kind.prefix if all_namespaces or not kind.namespaced else f"{kind.prefix}{namespace}/"
    kvs, _ = store.list(prefix)
    return _endpoints(kvs) if kind.kind == "Endpoints" else _decoded(kvs, kind.namespaced)


def _select(items: list[dict], names: tuple[str, ...], kind: kinds.Kind) -> list[dict]:
    if not names:
        return items
    found = {i["metadata"]["name"]: i for i in items}
    missing = [n for n in names if n not in found]
    if missing:
        raise click.ClickException(f'{kind.plural} "{missing[0]}" not found')
    return [found[n] for n in names]


def _selector_matches(selector: str, labels: dict) -> bool:
    """kubectl's -l: `k=v`, `k!=v`, `k` (exists), `!k`, comma-separated (all must hold)."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in term:
            k, v = term.split("=", 1)
            if labels.get(k.strip().rstrip("=")) != v.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


@click.command("get")
@click.argument("kind_word", metavar="KIND")
@click.argument("names", nargs=-1)
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-A", "--all-namespaces", is_flag=True)
@click.option("-o", "--output", type=click.Choice(["wide", "json", "yaml", "name"]), default=None)
@click.option("-l", "--selector", default="", help="Only objects with these labels: k=v,k!=v,k,!k.")
@click.option("--show-labels", is_flag=True, help="Add a LABELS column.")
def get(kind_word: str, names: tuple[str, ...], namespace: str, all_namespaces: bool, output: str | None, selector: str,
        show_labels: bool) -> None:
    """List objects of one kind: nodes, pods, services, endpoints, deployments, networkpolicies,
    namespaces, ingresses, ingressclasses, secrets, ippools, bgpconfigurations (and short names:
    no, po, svc, ep, deploy, netpol, ns, ing). `-o wide`, `-o json|yaml|name`, `-l`,
    `--show-labels`, `-A` as in kubectl."""
    kind = _kind(kind_word)
    with lab_store() as (state, store):
        items = _select(_items(store, kind, namespace, all_namespaces), names, kind)
        if selector:
            items = [i for i in items if _selector_matches(selector, i["metadata"].get("labels") or {})]
        if output == "name":
            click.echo("\n".join(f"{kind.qualified}/{i['metadata']['name']}" for i in items))
            return
        if output in ("json", "yaml"):
            doc = items[0] if len(names) == 1 else {"apiVersion": "v1", "kind": "List", "items": items,
                                                    "metadata": {"resourceVersion": ""}}
            click.echo(json.dumps(doc, indent=4) if output == "json" else yaml.safe_dump(doc, sort_keys=False).rstrip())
            return
        all_ns = all_namespaces and kind.namespaced
        columns = list(kind.columns) + (list(kind.wide) if output == "wide" else [])
        headers = (["NAMESPACE"] if all_ns else []) + [c.header for c in columns]
        extra = _lab_node_columns(state) if kind.kind == "Node" and output == "wide" else []
        headers += [h for h, _ in extra]
        if show_labels:
            headers.append("LABELS")
        rows = []
        for obj in items:
            row = ([obj["metadata"].get("namespace", "")] if all_ns else []) + [c.value(obj) for c in columns]
            row += [fn(obj) for _, fn in extra]
            if show_labels:
                row.append(kinds.labels_text(obj))
            rows.append(row)
        where = "" if all_namespaces or not kind.namespaced else f" in {namespace} namespace"
        click.echo(_table(headers, rows) if rows else f"No resources found{where}.")


def _lab_node_columns(state):
    """What the lab knows of a node beyond its object: its agent's supervised state and the
    packets its anti-spoofing dropped."""
    def agent(node: dict) -> str:
        from ..lab.topology import agent_state_path
        from ..proc import pid_alive
        from ..runtime.supervisor import read_state

        status = read_state(agent_state_path(state, node["metadata"]["name"]))
        if status is None:
            return "<unknown>"
        if not pid_alive(int(status.get("supervisorPid") or 0)):
            return "NotRunning"
        text = kinds.pod_status_text({"metadata": {}, "status": {"phase": "Running", "containerStatuses": [status]}})
        restarts = status.get("restartCount", 0)
        return f"{text}, {restarts} restart{'s' if restarts != 1 else ''}" if restarts else text

    def spoofed(node: dict) -> str:
        return str(sum((node.get("status", {}).get("podnet", {}).get("spoofedPackets") or {}).values()))

    return [("AGENT", agent), ("SPOOFED", spoofed)]


def _pod(store, namespace: str, name: str) -> dict:
    pod = objects.get(store, kinds.BY_KIND["Pod"], namespace, name)
    if pod is None:
        raise click.ClickException(f'pods "{name}" not found in namespace {namespace}')
    return pod


def _container(obj: dict, wanted: str) -> tuple[str, str]:
    """The container named by -c (default: the first, with kubectl's hint when there are
    several); (name, hint)."""
    names = [c.get("name", "") for c in obj["spec"].get("containers", [])]
    inits = [c.get("name", "") for c in obj["spec"].get("initContainers") or []]
    if wanted:
        if wanted not in names + inits:
            raise click.ClickException(f"container {wanted} is not valid for pod {obj['metadata']['name']} "
                                       f"(its containers: {', '.join(inits + names)})")
        return wanted, ""
    hint = f'Defaulted container "{names[0]}" out of: {", ".join(names)}' if len(names) > 1 else ""
    return names[0], hint


@click.command("exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": True})
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-c", "--container", default="", help="The container to run in (default: the pod's first).")
@click.argument("pod")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, required=True)
def exec_(namespace: str, container: str, pod: str, command: tuple[str, ...]) -> None:
    """Run COMMAND in POD, in the namespaces its containers share (network, hostname, its own
    /etc/hosts and resolv.conf):

    \b
      podnet exec web -- ping -c1 10.244.2.2
      podnet exec duo -c sidecar -- hostname -f"""
    argv = list(command)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise click.ClickException("give a command after --")
    with lab_store() as (_state, store):
        obj = _pod(store, namespace, pod)
    _name, hint = _container(obj, container)
    annotations = obj["metadata"].get("annotations") or {}
    ns = annotations.get("podnet.io/netns")
    if not ns:
        raise click.ClickException(f"pod {pod} is not running yet ({kinds.pod_status_text(obj)})")
    if hint:
        click.echo(hint, err=True)
    uts = annotations.get("podnet.io/uts", "")
    enter_uts = ["nsenter", f"--uts={uts}", "--"] if uts and os.path.exists(uts) else []
    sys.exit(subprocess.call(["ip", "netns", "exec", ns, *enter_uts, *argv]))


@click.command("logs")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-c", "--container", default="", help="The container whose output to print (default: the pod's first).")
@click.option("--tail", default=-1, show_default=True, help="Lines from the end (-1: all, 0: none).")
@click.argument("pod")
def logs(namespace: str, container: str, tail: int, pod: str) -> None:
    """Print what a container of POD wrote to stdout and stderr (all its runs)."""
    with lab_store() as (_state, store):
        obj = _pod(store, namespace, pod)
    name, hint = _container(obj, container)
    if hint:
        click.echo(hint, err=True)
    annotations = obj["metadata"].get("annotations") or {}
    pod_dir = annotations.get("podnet.io/pod-dir", "")
    path = os.path.join(pod_dir, f"{name}.log") if pod_dir else annotations.get("podnet.io/log", "")
    text = open(path, errors="replace").read() if path and os.path.exists(path) else ""
    lines = text.splitlines()
    if tail >= 0:
        lines = lines[-tail:] if tail else []
    if lines:
        click.echo("\n".join(lines))


@click.command("label")
@click.argument("kind_word", metavar="KIND")
@click.argument("name")
@click.argument("changes", nargs=-1, required=True)
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("--overwrite", is_flag=True, help="Allow changing the value of a label that is already set.")
def label(kind_word: str, name: str, changes: tuple[str, ...], namespace: str, overwrite: bool) -> None:
    """Set (key=value) or remove (key-) labels of an object:

    \b
      podnet label pod web -n x role=frontend
      podnet label ns y team=red
      podnet label pod web -n x role-            (remove it)
      podnet label node node2 podnet.io/route-reflector=true   (bgp: a route reflector)

    Services, policies, IP pools and BGP peerings that select by these labels follow within seconds."""
    kind = _kind(kind_word)
    if not kind.writable and kind.kind != "Node":  # nodes are the agents', but their labels are the operator's
        raise click.ClickException(f"{kind.plural} are written by podnet itself; their labels cannot be set")
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
    if kind.kind == "Namespace" and "kubernetes.io/metadata.name" in set(sets) | set(removes):
        raise click.ClickException("kubernetes.io/metadata.name is set by the API server and cannot change")
    ns = namespace if kind.namespaced else ""
    with lab_store() as (_state, store):
        if kind.kind == "Namespace":
            from ..lab.policies import list_namespaces

            found = {n["metadata"]["name"]: n for n in list_namespaces(store)}
            if name not in found:
                raise click.ClickException(f'namespaces "{name}" not found')
            if objects.get(store, kind, "", name) is None:  # a system namespace nobody wrote yet
                objects.apply(store, found[name])
        obj = objects.get(store, kind, ns, name)
        if obj is None:
            raise click.ClickException(f'{kind.plural} "{name}" not found' + (f" in namespace {ns}" if ns else ""))
        labels = dict(obj["metadata"].get("labels") or {})
        clash = [k for k, v in sets.items() if k in labels and labels[k] != v]
        if clash and not overwrite:
            raise click.ClickException(f"'{clash[0]}' already has a value ({labels[clash[0]]}), and --overwrite is false")
        labels.update(sets)
        for k in removes:
            labels.pop(k, None)
        if labels == (obj["metadata"].get("labels") or {}):
            click.echo(f"{kind.singular}/{name} not labeled")
            return
        objects.set_labels(store, kind, ns, name, labels)
        click.echo(f"{kind.singular}/{name} labeled")


def _condition(obj: dict | None, condition: str) -> bool:
    if obj is None:
        return False
    if obj.get("kind") == "Deployment" and condition.lower() == "available":
        return obj.get("status", {}).get("availableReplicas", 0) >= obj["spec"]["replicas"]
    for c in obj.get("status", {}).get("conditions", []) or []:
        if isinstance(c, dict) and c.get("type", "").lower() == condition.lower():
            return c.get("status") == "True"
    if obj.get("kind") == "Node" and condition.lower() == "ready":
        return kinds.node_ready(obj)
    return False


def _duration(text: str) -> float:
    """kubectl's durations: 30s, 2m, 1h, or plain seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        return float(text[:-1]) * units[text[-1]] if text and text[-1] in units else float(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a duration such as 30s, 2m or 1h", param_hint="--timeout") from None


@click.command("wait")
@click.argument("targets", nargs=-1, required=True)
@click.option("--for", "for_", required=True, help="condition=NAME (Ready, Available, ...) or delete.")
@click.option("--timeout", default="30s", show_default=True, help="How long to wait: 30s, 2m, 1h.")
@click.option("-n", "--namespace", default="default", show_default=True)
def wait(targets: tuple[str, ...], for_: str, timeout: str, namespace: str) -> None:
    """Wait until objects meet a condition, as kubectl wait:

    \b
      podnet wait --for=condition=Ready pod/web --timeout 60s
      podnet wait --for=condition=Available deployment/web
      podnet wait --for=delete pod/web

    Exits 0 once every object meets it, 1 (saying which one did not) on timeout."""
    seconds = _duration(timeout)
    if for_ == "delete":
        condition = ""
    elif for_.lower().startswith("condition="):
        condition = for_.split("=", 1)[1]
    else:
        raise click.BadParameter("give condition=NAME or delete", param_hint="--for")
    wanted = []
    for t in targets:
        kind_word, _, name = t.partition("/")
        if not name:
            raise click.BadParameter(f"{t!r}: give KIND/NAME, e.g. pod/web", param_hint="TARGETS")
        kind = _kind(kind_word)
        wanted.append((kind, namespace if kind.namespaced else "", name))
    deadline = time.monotonic() + seconds
    with lab_store() as (_state, store):
        pending = list(wanted)
        while True:
            still = []
            for kind, ns, name in pending:
                obj = objects.get(store, kind, ns, name)
                met = obj is None if not condition else _condition(obj, condition)
                if met:
                    click.echo(f"{kind.qualified}/{name} {'deleted' if not condition else 'condition met'}")
                elif obj is None and condition and time.monotonic() >= deadline:
                    still.append((kind, ns, name, "not found"))
                else:
                    still.append((kind, ns, name, ""))
            pending = [(k, ns, n) for k, ns, n, _ in still]
            if not pending:
                return
            if time.monotonic() >= deadline:
                kind, ns, name, why = still[0]
                what = f"the condition {condition}" if condition else "the deletion"
                raise click.ClickException(f"timed out waiting for {what} on {kind.plural}/{name}"
                                           + (f" ({why})" if why else ""))
            time.sleep(0.1)
