"""calicoctl's views of the routed (bgp) mode: `podnet node status NODE` (the node's BGP peers,
read from its BIRD) and `podnet ipam show` (pools, blocks, borrowed addresses)."""

from __future__ import annotations

import json
import subprocess

import click

from ..api import keys


def _box(headers: list[str], rows: list[list[str]]) -> str:
    """calicoctl's table: +---+ borders, centred headers."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out = [rule, "|" + "|".join(f" {h.center(w)} " for h, w in zip(headers, widths)) + "|", rule]
    out += ["|" + "|".join(f" {c.ljust(w)} " for c, w in zip(r, widths)) + "|" for r in rows]
    out.append(rule)
    return "\n".join(out)


@click.group()
def node() -> None:
    """Nodes as the routed mode sees them (calicoctl node ...)."""


@node.command("status")
@click.argument("name")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
def node_status(name: str, output: str) -> None:
    """The BGP sessions of node NAME, read from its BIRD (`birdc show protocols`): peer address,
    peer type (node-to-node mesh, route reflector, route reflector client), state, since when,
    and BIRD's info (Established once routes flow).

    \b
    Example:
      podnet node status node1"""
    from .resources import lab_store

    with lab_store() as (_state, store):
        kv = store.get(f"{keys.NODES}{name}")
    if kv is None:
        raise click.ClickException(f'nodes "{name}" not found')
    status = json.loads(kv.value).get("status", {}).get("podnet", {})
    bgp = status.get("bgp")
    if not bgp:
        raise click.ClickException(f"node {name} runs the {status.get('backend') or 'unknown'} backend, not bgp: "
                                   "it has no BGP sessions (podnet lab up --backend bgp)")
    rows = peer_rows(bgp["controlSocket"])
    if rows is None:
        click.echo(f"BIRD is not running on {name}; its agent starts it again.")
        raise SystemExit(1)
    if output == "json":
        click.echo(json.dumps({"node": name, "address": bgp["ipv4Address"], "peers": rows,
                               "configError": bgp.get("configError", "")}, indent=2))
        return
    click.echo(status_text(name, bgp["ipv4Address"], rows))
    if bgp.get("configError"):
        click.echo(f"\nWarning: BIRD refused the latest configuration the agent rendered and runs the previous one:\n"
                   f"  {bgp['configError']}")


def peer_rows(control_socket: str) -> list[dict] | None:
    """The BGP sessions BIRD at `control_socket` reports (None: it does not answer)."""
    from ..agent.backends.bgp.bird import parse_protocols
    from ..agent.backends.bgp.config import PEER_TYPES

    try:
        proc = subprocess.run(["birdc", "-s", control_socket, "show", "protocols"], capture_output=True, text=True,
                              timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0 or "BIRD" not in proc.stdout:
        return None
    rows = []
    for p in parse_protocols(proc.stdout):
        kind, _, rest = p["name"].partition("_")
        if p["proto"] != "BGP" or kind not in PEER_TYPES:
            continue
        rows.append({"peerAddress": rest.replace("_", "."), "peerType": PEER_TYPES[kind], "state": p["state"],
                     "since": p["since"], "info": p["info"]})
    return rows


def status_text(name: str, address: str, rows: list[dict]) -> str:
    head = f"BIRD is running on {name} ({address}).\n\nIPv4 BGP status\n"
    if not rows:
        return head + "No IPv4 peers found."
    return head + _box(["PEER ADDRESS", "PEER TYPE", "STATE", "SINCE", "INFO"],
                       [[r["peerAddress"], r["peerType"], r["state"], r["since"], r["info"]] for r in rows])


@click.group()
def ipam() -> None:
    """Pod addresses in the routed mode: IP pools, the blocks nodes own, borrowed addresses."""


def _pct(n: int, total: int) -> str:
    return f"{n} ({round(100 * n / total) if total else 0}%)"


@ipam.command("show")
@click.option("--show-blocks", is_flag=True, help="Also a row per block: its owner and usage.")
@click.option("--show-borrowed", is_flag=True, help="Addresses nodes took from other nodes' blocks.")
def ipam_show(show_blocks: bool, show_borrowed: bool) -> None:
    """Addresses in use per IP pool (and per block), as `calicoctl ipam show`.

    \b
    Examples:
      podnet ipam show
      podnet ipam show --show-blocks
      podnet ipam show --show-borrowed"""
    from ..ipam.blocks import usage
    from .resources import lab_store

    with lab_store() as (_state, store):
        u = usage(store)
    if not u.pools:
        click.echo("No IP pools (they exist in bgp mode: podnet lab up --backend bgp).")
        return
    rows = []
    for pool, used, _tunnels in u.pools:
        total = pool.cidr.num_addresses
        rows.append(["IP Pool", str(pool.cidr), str(total), _pct(used, total), _pct(total - used, total)])
        if show_blocks:
            for block, owner in u.blocks:
                if owner is pool:
                    n = len(block.allocations)
                    rows.append(["Block", str(block.cidr), str(block.size), _pct(n, block.size),
                                 _pct(block.size - n, block.size)])
    click.echo(_box(["GROUPING", "CIDR", "IPS TOTAL", "IPS IN USE", "IPS FREE"], rows))
    if show_blocks:
        owners = [[str(b.cidr), b.affinity or "<none>", p.name if p else "<no pool>"] for b, p in u.blocks]
        click.echo(_box(["BLOCK", "OWNER (AFFINITY)", "POOL"], owners) if owners else "No blocks claimed yet.")
    if show_borrowed:
        if not u.borrowed:
            click.echo("No borrowed addresses.")
        else:
            click.echo(_box(["IP", "BORROWING-NODE", "BLOCK", "BLOCK OWNER", "ALLOCATED-TO"],
                            [[ip, node, str(b.cidr), b.affinity or "<none>",
                              b.allocations[b.ordinal(ip)].get("pod") or b.allocations[b.ordinal(ip)]["handle"]]
                             for ip, node, b in u.borrowed]))
