"""`podnet topo`: the live network of the lab as one picture (text, JSON, DOT, SVG, HTML), or a
local page that follows it."""

from __future__ import annotations

import json
import signal
import sys

import click

from ..topo import render, serve
from ..topo.collect import NodeRef, collect
from .resources import lab_store

OUTPUTS = ("text", "json", "dot", "svg", "html")


@click.command("topo")
@click.option("-o", "--output", type=click.Choice(OUTPUTS), default="text", show_default=True,
              help="text: nodes, pods, services, policies; json: the model (versioned); dot: Graphviz source; "
                   "svg: laid out by Graphviz; html: one self-contained file (no network fetches).")
@click.option("--serve", "address", metavar="HOST:PORT",
              help="Serve a live page instead (read-only; loopback only unless --listen-any): /, /model.json, /events.")
@click.option("--listen-any", is_flag=True, help="Allow --serve on a non-loopback address (anyone who reaches it "
                                                  "sees the cluster's network).")
def topo(output: str, address: str | None, listen_any: bool) -> None:
    """Draw the lab's pod network from live state: nodes and their namespaces, devices (veth
    pairs, bridges and ports, VXLAN devices with VNI, port and FDB), addresses, routes, pods,
    Services -> endpoints, NetworkPolicies -> the pods they select. Every thing has a stable id
    (node/NAME, pod/NS/NAME, svc/NS/NAME, netpol/NS/NAME, dev/OWNER/IFNAME, ns/NETNS), the same in
    every output.

    \b
    Examples:
      podnet topo                                  a summary per node
      podnet topo -o json | jq '.links[] | select(.kind == "vxlan")'
      podnet topo -o svg > net.svg                 (needs Graphviz: apt-get install graphviz)
      podnet topo -o html > net.html               open it anywhere: nothing is fetched
      podnet topo --serve 127.0.0.1:8080           a page that updates as pods come and go
      http://127.0.0.1:8080/?highlight=pod/default/a,dev/node/node1/cni0   mark a path on it
    """
    if address is not None:
        try:
            # bound here, before lab_store() enters the namespace the store is reached from
            server = serve.Server(serve.parse_address(address, listen_any), serve.Feed(), listen_any,
                                  log=lambda line: click.echo(line, err=True))
        except serve.ServeError as e:
            raise click.ClickException(str(e)) from None
        except OSError as e:
            raise click.ClickException(f"cannot serve on {address}: {e.strerror or e}") from None
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            with lab_store() as (state, store):
                nodes = [NodeRef(n.name, n.netns, n.ip) for n in state.nodes]
                cluster = {"name": state.name, "backend": state.backend}
                serve.run(server, store, lambda: collect(store, nodes, cluster), announce=click.echo,
                          warn=lambda line: click.echo(f"warning: {line}", err=True))
        finally:
            server.server_close()
        return
    with lab_store() as (state, store):
        model = collect(store, [NodeRef(n.name, n.netns, n.ip) for n in state.nodes],
                        {"name": state.name, "backend": state.backend})
    try:
        if output == "json":
            sys.stdout.write(json.dumps(model.to_json(), indent=2) + "\n")
        elif output == "dot":
            sys.stdout.write(render.dot(model))
        elif output == "svg":
            sys.stdout.write(render.svg(model))
        elif output == "html":
            sys.stdout.write(render.html(model))
        else:
            sys.stdout.write(render.text(model))
    except render.RenderError as e:
        raise click.ClickException(str(e)) from None


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
