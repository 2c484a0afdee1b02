"""`podnet probe`: who can reach whom, with real packets, as the Kubernetes e2e policy tests print it."""

from __future__ import annotations

import sys

import click

from ..lab import probe as probe_mod
from ..lab import pods as pods_mod
from ..lab import policies
from ..policy.evaluate import truth_table
from ..policy.world import load_world
from .resources import lab_store


@click.command("probe")
@click.option("-n", "--namespace", "namespaces", multiple=True,
              help="Probe the pods of this namespace (repeatable). Default: every namespace but kube-system.")
@click.option("--port", default=80, show_default=True, type=click.IntRange(1, 65535))
@click.option("--protocol", type=click.Choice(["TCP", "UDP"], case_sensitive=False), default="TCP", show_default=True)
@click.option("--timeout", default=1.0, show_default=True, type=click.FloatRange(0.05, 30),
              help="Seconds before a probe counts as blocked.")
@click.option("--expect", "expect_file", type=click.File("r"),
              help="Compare with this grid (as printed here; '-' for stdin); exit 1 on any difference.")
@click.option("--expect-model", is_flag=True,
              help="Compare with what the stored NetworkPolicies mean (podnet's policy model, which assumes every "
                   "pod serves the port); exit 1 on any difference.")
def probe(namespaces: tuple[str, ...], port: int, protocol: str, timeout: float, expect_file, expect_model: bool) -> None:
    """Probe every ordered pair of pods on one port and print a grid: rows are sources, columns
    destinations, '.' reached, 'X' not (blocked, refused or no answer).

    TCP counts a completed connect; UDP counts an answer (the lab's echo server answers every
    datagram: `python -m podnet.lab.echo --port 80 --udp`).

    \b
      podnet probe -n x -n y --port 80
      podnet probe --port 53 --protocol UDP
      podnet probe --expect expected.txt          (CI: non-zero exit on a difference)
      podnet probe --expect-model                 (does the kernel do what the policies say?)
    """
    protocol = protocol.upper()
    expected_cells = None
    if expect_file is not None:
        try:
            _, expected_cells = probe_mod.parse_grid(expect_file.read())
        except ValueError as e:
            raise click.ClickException(f"{expect_file.name}: {e}") from None
    with lab_store() as (state, store):
        pods = pods_mod.list_pods(state, store, all_namespaces=True)
        pods = [p for p in pods if p["status"].get("podIP") and p["status"].get("phase") == "Running"
                and (p["metadata"]["namespace"] in namespaces if namespaces else p["metadata"]["namespace"] != "kube-system")]
        model = truth_table(load_world(store)[0], port, protocol) if expect_model else None
        behind = policies.wait_enforced(state, store.revision())
    if behind:
        click.echo(f"warning: {', '.join(behind)} not yet enforcing the latest policies (agent down?)", err=True)
    if not pods:
        raise click.ClickException("no running pods to probe" + (f" in {', '.join(namespaces)}" if namespaces else ""))
    pods.sort(key=probe_mod.pod_label)
    names = [probe_mod.pod_label(p) for p in pods]
    observed = probe_mod.probe_pods(pods, port, protocol, timeout)
    click.echo(f"{protocol}/{port}: rows are sources, columns destinations ('.' reached, 'X' not)")
    click.echo(probe_mod.grid(names, observed))
    reached = sum(observed.values())
    click.echo(f"{reached} of {len(observed)} pairs reached")
    problems = []
    if expected_cells is not None:
        problems += [f"expected grid: {d}" for d in probe_mod.differences(expected_cells, observed)]
    if model is not None:
        wanted = {pair: ok for pair, ok in model.items() if pair in observed}
        problems += [f"policy model: {d}" for d in probe_mod.differences(wanted, observed)]
    if problems:
        click.echo(f"{len(problems)} differences:", err=True)
        for line in problems:
            click.echo(f"  {line}", err=True)
        sys.exit(1)
    if expected_cells is not None or model is not None:
        click.echo("as expected")
