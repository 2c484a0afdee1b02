"""`podnet trace SRC DST[:PORT]`: the path a packet would take through the lab, hop by hop, read
from the live kernel state of every namespace on the way (nothing is sent, nothing changed);
with --probe, then one real packet confirms it (podnet.trace.probe: temporary, always removed)."""

from __future__ import annotations

import json
import os
import sys

import click


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(2)


@click.command("trace")
@click.argument("src")
@click.argument("dst")
@click.option("-n", "--namespace", default="default", show_default=True, help="Namespace of pods named without one.")
@click.option("-p", "--protocol", type=click.Choice(["tcp", "udp", "icmp"], case_sensitive=False), default=None,
              help="Default: the Service port's protocol, tcp with a port, icmp without.")
@click.option("--sport", type=click.IntRange(1, 65535), default=None, help="Source port (default: any).")
@click.option("--endpoint", default=None, metavar="IP[:PORT]",
              help="Through a Service: follow this endpoint (default: the first, or the client's affinity).")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("-v", "--evidence", is_flag=True, help="Text: show under each hop the kernel objects it was read from.")
@click.option("--probe", is_flag=True,
              help="Then send one real packet and mark each hop confirmed / contradicted / unobserved from the "
                   "kernel's nft trace events (temporary tables in the path's namespaces, always removed).")
def trace(src: str, dst: str, namespace: str, protocol: str | None, sport: int | None, endpoint: str | None,
          output: str, evidence: bool, probe: bool) -> None:
    """Walk a packet from SRC to DST through the lab without sending it: the route lookups
    (ip route get), neighbour and FDB entries, veth crossings and bridges, VXLAN encapsulation
    (outer addresses, VNI, port) and decapsulation, service DNAT from the proxy's maps,
    NetworkPolicy (the policy and rule), masquerade, and whether something listens.

    \b
    SRC, DST: ns/pod or pod (-n), svc/ns/name (DST only), a node's name, or an IP address.
    Exit status: 0 DELIVERED (or FORWARDED out of the lab), 1 DROPPED, NO_ROUTE, NO_NEIGHBOUR
    or REFUSED (nothing listens), 2 an error.

    \b
      podnet trace default/a default/b:8080
      podnet trace a svc/default/web:80 --endpoint 10.244.2.3
      podnet trace node1 default/b -p icmp
      podnet trace default/a default/b:8080 -o json | jq .verdict
      podnet trace default/a default/b:8080 --probe    (marks: ✓ confirmed, ✗ contradicted, ? unobserved)"""
    from ..lab.state import LabError, LabState
    from ..lab.topology import store_context
    from ..store import StoreError, open_store
    from ..trace import Inventory, Kernel, KernelError, ResolveError, TraceError, Walk
    from ..trace.render import text

    try:
        state = LabState.load()
        with store_context(state):
            store = open_store(state.store_url)
            try:
                others = {state.underlay: "underlay"}
                router = state.topology.router
                if router is not None:
                    others[router.namespace] = "router"
                inv = Inventory.load(store, {n.name: n.netns for n in state.nodes}, others)
            finally:
                store.close()
        source = inv.resolve(src, namespace, source=True)
        target = inv.resolve(dst, namespace)
    except (LabError, ResolveError) as e:
        _fail(str(e))
    except StoreError as e:
        _fail(f"the datastore is unavailable: {e}")
    proto = (protocol or inv.service_protocol(target) or ("tcp" if target.port else "icmp")).lower()
    if proto in ("tcp", "udp") and not target.port:
        _fail(f"{proto} needs a port: {dst}:PORT (or -p icmp)")
    try:
        result = Walk(Kernel(), inv).run(source, target, proto, sport, endpoint)
    except TraceError as e:
        _fail(str(e))
    except KernelError as e:
        _fail(f"reading the kernel failed: {e}")
    if probe:
        from ..trace.probe import ProbeError
        from ..trace.probe import probe as send_probe
        try:
            send_probe(result)
        except KeyboardInterrupt:
            click.echo("Interrupted: the probe's tables were removed.", err=True)
            sys.exit(130)
        except ProbeError as e:
            _fail(f"--probe: {e}")
    if output == "json":
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        bold = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        click.echo(text(result, bold=bold, evidence=evidence))
    sys.exit(result.exit_code)
