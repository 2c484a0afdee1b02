"""`podnet demo`: a 3-node lab, two pods per node, a reachability grid, a NetworkPolicy and the
grid again, teardown.

Everything lives in namespaces named pn-demo<id>-*, removed at the end (also on failure or
Ctrl-C). Pods are wired through the CNI exec protocol by the lab's runtime, talking to each
node's agent; cross-node traffic goes over VXLAN (or host-gw routes with --backend host-gw).
With --backend bgp the nodes sit on two underlay segments, and the demo also shows each
node's BGP sessions and route table: blackholes, routes learned by BIRD, VXLAN routes.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
import uuid

import click

from .agent import backends
from .api.pod import parse_pod
from .lab import pods as pods_mod
from .lab import probe, topology


def _step(text: str) -> None:
    click.secho(f"==> {text}", fg="cyan", bold=True)


def run_demo(backend: str = "vxlan", store_kind: str = "sqlite") -> bool:
    name = "demo" + uuid.uuid4().hex[:4]
    directory = tempfile.mkdtemp(prefix="pn-demo-")
    subnets = 2 if backend == "bgp" else 1
    try:
        _step(f"lab {name}: 3 nodes, {backend}, {store_kind} store" + (f", {subnets} underlay segments" if subnets > 1 else ""))
        state = topology.up(name, directory, 3, backend, store_kind, lambda m: click.echo(f"    {m}"), subnets=subnets)
        _step("two pods per node, each running a TCP server that replies with the caller's address")
        with topology.store_context(state):
            from .store import open_store

            store = open_store(state.store_url)
            for node in state.nodes:
                for suffix in "ab":
                    doc = {"apiVersion": "v1", "kind": "Pod",
                           "metadata": {"name": f"pod-{node.name[-1]}{suffix}",
                                        "labels": {"app": "demo", "role": "frontend" if suffix == "a" else "backend"}},
                           "spec": {"nodeName": node.name, "containers": [{"name": "echo", "command": [
                               sys.executable, "-m", "podnet.lab.echo", "--port", "8080"]}]}}
                    obj = pods_mod.create_pod(state, store, parse_pod(doc, "demo"))
                    click.echo(f"    {obj['metadata']['name']}  {obj['status']['podIP']:<12} on {node.name}  "
                               f"role={obj['metadata']['labels']['role']}")
            pods = pods_mod.list_pods(state, store)
            store.close()
        time.sleep(0.5)
        names = [p["metadata"]["name"] for p in pods]
        ip_of = {p["metadata"]["name"]: p["status"]["podIP"] for p in pods}

        def check(a, b):
            src = a["metadata"]["annotations"]["podnet.io/netns"]
            return probe.tcp_source(src, b["status"]["podIP"], 8080)

        _step("reachability (rows: from, columns: to; '.' = TCP connect and the server saw the sender's own IP)")
        results = probe.matrix(pods, check)
        ok = {pair: src == ip_of[pair[0]] for pair, src in results.items()}
        click.echo(probe.grid(names, ok))
        good = sum(ok.values())
        if good != len(ok):
            click.secho(f"{len(ok) - good} of {len(ok)} pairs failed", fg="red", bold=True)
            return False
        click.secho(f"all {good} pairs reach each other, source IPs preserved (no NAT between pods)", fg="green", bold=True)
        if backend == "bgp":
            _routing_step(state, pods)
        return _policy_step(state, pods, names)
    finally:
        _step("teardown")
        removed = topology.down(name, directory)
        shutil.rmtree(directory, ignore_errors=True)
        click.echo(f"    {len(removed)} namespaces removed")


def _routing_step(state, pods: list[dict]) -> None:
    """Each node's BGP sessions (as `podnet node status`) and route table, and one pod's routes."""
    import json
    import subprocess

    from .api.keys import NODES
    from .cli.calico import peer_rows, status_text
    from .store import open_store

    with topology.store_context(state):
        store = open_store(state.store_url)
        nodes = {n.name: json.loads(store.get(f"{NODES}{n.name}").value) for n in state.nodes}
        store.close()
    for n in state.nodes:
        bgp = nodes[n.name]["status"]["podnet"]["bgp"]
        _step(f"podnet node status {n.name}; ip route on {n.name}")
        rows = peer_rows(bgp["controlSocket"]) or []
        click.echo("\n".join(f"    {line}" for line in status_text(n.name, bgp["ipv4Address"], rows).splitlines()))
        routes = subprocess.run(["ip", "-n", n.netns, "route"], capture_output=True, text=True).stdout
        click.echo("\n".join(f"    {line}" for line in routes.splitlines()))
    pod = pods[0]
    _step(f"ip route in pod {pod['metadata']['name']}: everything via 169.254.1.1, which the node answers by proxy ARP")
    routes = subprocess.run(["ip", "-n", pod["metadata"]["annotations"]["podnet.io/netns"].rsplit("/", 1)[-1], "route"],
                            capture_output=True, text=True).stdout
    click.echo("\n".join(f"    {line}" for line in routes.splitlines()))


BACKENDS_FROM_FRONTENDS = {
    "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "backends-from-frontends"},
    "spec": {"podSelector": {"matchLabels": {"role": "backend"}},
             "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "frontend"}}}], "ports": [{"port": 8080}]}]},
}


def _policy_step(state, pods: list[dict], names: list[str]) -> bool:
    """Isolate the backends, probe again, and check the kernel against the policy model."""
    from .api.networkpolicy import parse_network_policy
    from .lab import policies
    from .policy.evaluate import truth_table
    from .policy.world import load_world
    from .store import open_store

    _step("NetworkPolicy backends-from-frontends: pods with role=backend accept TCP 8080 only from role=frontend")
    with topology.store_context(state):
        store = open_store(state.store_url)
        try:
            policies.apply_network_policy(store, parse_network_policy(BACKENDS_FROM_FRONTENDS, "demo"))
            behind = policies.wait_enforced(state, store.revision())
            model = truth_table(load_world(store)[0], 8080)
        finally:
            store.close()
    if behind:
        click.secho(f"agents on {', '.join(behind)} did not apply the policy", fg="red", bold=True)
        return False
    observed = probe.probe_pods(pods, 8080)
    short = {(s.split("/")[1], d.split("/")[1]): ok for (s, d), ok in observed.items()}
    click.echo(probe.grid(names, short))
    wrong = probe.differences({pair: ok for pair, ok in model.items() if pair in observed}, observed)
    if wrong:
        click.secho(f"the kernel disagrees with the policy model on {len(wrong)} pairs:", fg="red", bold=True)
        click.echo("\n".join(f"    {w}" for w in wrong))
        return False
    blocked = sum(1 for ok in observed.values() if not ok)
    click.secho(f"{blocked} pairs blocked, as the policy model says for all {len(observed)} "
                "(try it yourself: podnet lab up; podnet apply -f ...; podnet probe)", fg="green", bold=True)
    return True


@click.command("demo")
@click.option("--backend", type=click.Choice(backends.names()), default="vxlan", show_default=True)
@click.option("--store", "store_kind", type=click.Choice(["sqlite", "etcd"]), default="sqlite", show_default=True)
def demo(backend: str, store_kind: str) -> None:
    """A 3-node lab, two pods per node, a reachability grid, a NetworkPolicy and the grid again,
    teardown (needs root). With --backend bgp: two underlay segments, and each node's BGP
    sessions and route table."""
    import os

    if os.geteuid() != 0:
        raise click.ClickException("the demo creates network namespaces: run it as root")
    if not run_demo(backend, store_kind):
        raise SystemExit(1)
