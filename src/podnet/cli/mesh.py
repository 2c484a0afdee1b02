"""`podnet mesh router|status|rmpeer`: the Weave-style mesh (podnet.mesh)."""

from __future__ import annotations

import json
import os

import click


def _socket_for(node: str | None, socket_path: str | None) -> str:
    """The control socket: given, or the lab node's (the agent's state dir, mesh/control.sock)."""
    if socket_path:
        return socket_path
    from ..agent.backends.mesh import control_socket
    from ..lab.state import LabError, LabState

    try:
        state = LabState.load()
    except LabError as e:
        raise click.ClickException(f"{e} (or give --socket PATH)") from None
    if state.backend != "mesh":
        raise click.ClickException(f"lab {state.name} runs backend {state.backend}, not mesh: no mesh routers there")
    names = [n.name for n in state.nodes]
    if node is None:
        node = names[0] if names else None
    if node not in names:
        raise click.ClickException(f"no node {node!r} in lab {state.name} (nodes: {', '.join(names)})")
    path = control_socket(state.node_dir(node))
    if not os.path.exists(path):
        raise click.ClickException(f"node {node} has no mesh router running (no {path})")
    return path


@click.group()
def mesh() -> None:
    """The Weave-style mesh: gossiping routers, ring IPAM, the sleeve (frames in UDP)."""


@mesh.command("router")
@click.option("--name", required=True, help="This peer's name (the node's name). Weave: --name.")
@click.option("--address", required=True, metavar="IP", help="The underlay address to listen and send on.")
@click.option("--port", default=6783, show_default=True, help="TCP (control) and UDP (sleeve) port. Weave: 6783.")
@click.option("--peers", default="", metavar="IP[:PORT],...",
              help="Peers to connect to first; the others are learnt by gossip. Weave: `weave launch PEERS`.")
@click.option("--ipalloc-range", "cidr", required=True, metavar="CIDR", help="The cluster range. Weave: --ipalloc-range.")
@click.option("--ipalloc-init", "init", default="", metavar="seed=NAME,...",
              help="The peers that split the range at first, alike on each without talking. Weave: --ipalloc-init. "
                   "Without it this peer waits to hear the ring from others.")
@click.option("--bridge", required=True, help="The node's bridge: the sleeve's TAP device is attached to it.")
@click.option("--state-dir", required=True, type=click.Path(file_okay=False),
              help="control.sock, and ipam.json (the ring and this peer's allocations, kept across restarts).")
@click.option("--mtu", default=1450, show_default=True, help="The pods' MTU (the TAP device's).")
@click.option("--fastdp-port", default=6784, show_default=True,
              help="UDP port of the kernel VXLAN path between directly connected peers; 0: sleeve only. "
                   "Off with a password (it cannot be encrypted). Weave: fastdp (6784), --no-fastdp.")
@click.option("--password-file", type=click.Path(dir_okay=False), default=None,
              help="Encrypt everything with this password (its first line), shared by all peers. Weave: WEAVE_PASSWORD.")
def router_cmd(name: str, address: str, port: int, peers: str, cidr: str, init: str, bridge: str, state_dir: str,
               mtu: int, fastdp_port: int, password_file: str | None) -> None:
    """Run the mesh router of this node (in its network namespace), until SIGTERM."""
    import ipaddress

    from ..mesh import router

    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        raise click.BadParameter(f"{address!r} is not an IPv4 address", param_hint="--address") from None
    try:
        ipaddress.IPv4Network(cidr)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--ipalloc-range") from None
    seed: list[str] = []
    if init:
        kind, _, names = init.partition("=")
        if kind != "seed" or not names:
            raise click.BadParameter(f"{init!r}: give seed=NAME,NAME,...", param_hint="--ipalloc-init")
        seed = [n for n in names.split(",") if n]
    password = None
    if password_file:
        try:
            with open(password_file, "rb") as f:
                password = f.readline().rstrip(b"\r\n")
        except OSError as e:
            raise click.BadParameter(f"cannot read it: {e.strerror}", param_hint="--password-file") from None
        if not password:
            raise click.BadParameter("its first line is empty", param_hint="--password-file")
    router.main(name, address, port, [p for p in peers.split(",") if p], cidr, seed, bridge, state_dir, mtu, password,
                fastdp_port)


@mesh.command("status")
@click.argument("node", required=False)
@click.option("--socket", "socket_path", default=None, help="A router's control socket (default: the lab node's).")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def status_cmd(node: str | None, socket_path: str | None, output: str) -> None:
    """Peers, connections (established / pending / failed, sleeve), and who owns how much of the
    range, as `weave status` shows them. NODE: a lab node (default: the first)."""
    from ..mesh.client import MeshClient, MeshError
    from ..mesh.status import render

    path = _socket_for(node, socket_path)
    try:
        st = MeshClient(path).status()
    except (OSError, MeshError) as e:
        raise click.ClickException(f"the router at {path} does not answer: {e}") from None
    click.echo(json.dumps(st, indent=2) if output == "json" else render(st), nl=output == "json")


@mesh.command("rmpeer")
@click.argument("peer")
@click.option("--node", default=None, help="The live peer that takes PEER's space (default: the lab's first node).")
@click.option("--socket", "socket_path", default=None, help="That router's control socket.")
@click.option("--force", is_flag=True, help="Even if PEER still looks reachable (its space may then be used twice).")
def rmpeer_cmd(peer: str, node: str | None, socket_path: str | None, force: bool) -> None:
    """Give a peer that is gone for good's address space to a live one (Weave's `weave rmpeer`)."""
    from ..mesh.client import MeshClient, MeshError

    path = _socket_for(node, socket_path)
    try:
        taken = MeshClient(path).rmpeer(peer, force)
    except (OSError, MeshError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"{taken} addresses of {peer} reclaimed")
