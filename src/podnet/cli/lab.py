"""`podnet lab up|down`: a multi-node cluster out of network namespaces on this machine."""

from __future__ import annotations

import json

import click

from ..lab import topology
from ..lab.state import LabError, LabState, lab_dir


def backend_names() -> list[str]:
    from ..agent import backends

    return backends.names()


def backend_summaries() -> list[tuple[str, str]]:
    from ..agent import backends

    return [(n, backends.get(n).summary or "(no summary)") for n in backends.names()]


def _progress(msg: str) -> None:
    click.echo(f"  {msg}")


@click.group()
def lab() -> None:
    """A multi-node cluster from namespaces: an underlay bridge, one namespace per node running its
    agent, pods as namespaces with real processes. State lives in $PODNET_LAB_DIR (default
    /var/lib/podnet/lab)."""


@lab.command("up")
@click.option("--nodes", default=3, show_default=True, help="How many nodes.")
@click.option("--backend", type=click.Choice(backend_names()), default="vxlan", show_default=True,
              help="How nodes reach each other's pods: " + "; ".join(f"{n}: {s}" for n, s in backend_summaries()) + ".")
@click.option("--store", "store_kind", type=click.Choice(["sqlite", "etcd"]), default="sqlite", show_default=True,
              help="sqlite: embedded file; etcd: Debian's etcd-server, started on the underlay.")
@click.option("--name", default="lab", show_default=True, help="Lab name (prefix of its namespaces: pn-NAME-).")
@click.option("--subnets", default=1, show_default=True, type=click.IntRange(1, 99),
              help="Underlay segments: nodes are spread over N L2 segments (172.31.<i>.0/24) joined by a router "
                   "namespace, so nodes on different segments are not neighbours (host-gw cannot work; vxlan can).")
@click.option("--route-reflectors", default=0, show_default=True, type=click.IntRange(0, 200),
              help="bgp: the first N nodes are BGP route reflectors (label podnet.io/route-reflector=true): they "
                   "peer with every node, the others only with them, instead of a full mesh.")
@click.option("--pool-cidr", default="", metavar="CIDR",
              help="bgp: the default IP pool's range, inside the cluster network 10.244.0.0/16 (default: all of it).")
@click.option("--block-size", default=0, type=click.IntRange(0, 32), metavar="N",
              help="bgp: the default IP pool's block size, 20 to 32 (default 26: 64 addresses per block).")
@click.option("--ingress", is_flag=True,
              help="Also run an Ingress controller (a real nginx, as ingress-nginx) behind a LoadBalancer Service, "
                   "with IngressClass nginx as the default class.")
@click.option("--backend-field", "backend_fields", multiple=True, metavar="NAME=VALUE",
              help="A field of the cluster config's Backend section, e.g. Port=8999 (udp), FastDP=false or "
                   "PasswordFile=/root/mesh.pw (mesh); VALUE is read as JSON when it parses, else as a string. "
                   "Repeatable.")
def up_cmd(nodes: int, backend: str, store_kind: str, name: str, subnets: int, route_reflectors: int, pool_cidr: str,
           block_size: int, ingress: bool, backend_fields: tuple[str, ...]) -> None:
    """Create the lab: underlay, nodes, agents, kubelets, controller manager, store, cluster DNS;
    wait until every node is ready (holds a subnet, or in bgp mode runs BIRD).

    \b
    Examples:
      podnet lab up --nodes 3                                  flannel-style VXLAN
      podnet lab up --nodes 2 --ingress                        and an nginx Ingress controller
      podnet lab up --nodes 4 --backend bgp --subnets 2        Calico-style: BGP, VXLAN across segments
      podnet lab up --nodes 6 --backend bgp --route-reflectors 2
      podnet lab up --nodes 2 --backend bgp --pool-cidr 10.244.0.0/28 --block-size 30   (blocks run out: borrowing)
      podnet lab up --nodes 3 --backend udp                    flannel's UDP backend (a TUN device, UDP 8285)
      podnet lab up --nodes 3 --backend mesh                   Weave-style: gossiping routers, ring IPAM, one subnet
      podnet lab up --nodes 3 --backend mesh --backend-field PasswordFile=/root/mesh.pw   (encrypted)"""
    click.echo(f"lab {name}: {nodes} nodes, backend {backend}, store {store_kind}"
               + (f", {subnets} underlay segments" if subnets > 1 else "")
               + (f", {route_reflectors} route reflectors" if route_reflectors else ""))
    fields = {}
    for item in backend_fields:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: give NAME=VALUE, e.g. FastDP=false", param_hint="--backend-field")
        try:
            fields[key] = json.loads(raw)
        except ValueError:
            fields[key] = raw
    try:
        state = topology.up(name, lab_dir(), nodes, backend, store_kind, _progress, subnets=subnets,
                            route_reflectors=route_reflectors, pool_cidr=pool_cidr, block_size=block_size,
                            ingress=ingress, backend_fields=fields)
    except LabError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"lab {name} is up. Try: podnet get nodes -o wide")
    _ = state


@lab.command("down")
@click.option("--name", default=None, help="Lab name (default: the one in the lab directory, else 'lab').")
def down_cmd(name: str | None) -> None:
    """Remove everything the lab made: pods, nodes, agents, store, namespaces (also after a crash)."""
    if name is None:
        try:
            name = LabState.load().name
        except LabError:
            name = "lab"
    removed = topology.down(name, lab_dir(), _progress)
    click.echo(f"lab {name} is down ({len(removed)} namespaces removed)")
