"""`podnet agent`: run the node agent (normally started by `podnet lab up`, one per node)."""

from __future__ import annotations

import click


@click.command("agent")
@click.option("--node", required=True, help="This node's name (its lease and Node object are keyed by it).")
@click.option("--store", "store_url", required=True, help="sqlite:///path/to/db or etcd://host:port")
@click.option("--iface", required=True, help="Underlay interface; its IPv4 address is the node's public IP.")
@click.option("--state-dir", required=True, type=click.Path(file_okay=False),
              help="Where subnet.env, the CNI config, the CNI socket and the IPAM store live.")
@click.option("--ttl", default=24 * 3600, show_default=True,
              help="Subnet lease TTL in seconds (flannel: 24 h), renewed well before it ends. A node's liveness is its "
                   "heartbeat, not its lease: peers keep routing to a node whose agent is down until the lease ends "
                   "or the node is removed.")
@click.option("--no-masquerade", is_flag=True, help="Do not masquerade pod traffic leaving the cluster network.")
@click.option("--node-labels", default="", metavar="K=V,...",
              help="Labels this node's Node object carries (as the kubelet's --node-labels), e.g. "
                   "podnet.io/route-reflector=true to make it a BGP route reflector in bgp mode.")
@click.option("--metrics", "metrics_address", default="", metavar="HOST:PORT",
              help="Serve Prometheus metrics at http://HOST:PORT/metrics (as kube-proxy's 127.0.0.1:10249): proxy sync "
                   "duration, network programming latency, last sync, services and endpoints programmed.")
def agent(node: str, store_url: str, iface: str, state_dir: str, ttl: int, no_masquerade: bool, node_labels: str,
          metrics_address: str) -> None:
    """Run the node's pod network: hold its subnet lease and program host-gw or vxlan routes to
    every other node, or (backend bgp) run BIRD and route a /32 per pod from IP pool blocks;
    masquerade egress, proxy services, enforce NetworkPolicy, and serve CNI requests from the
    `podnet` plugin on a Unix socket."""
    from ..agent.host import HostError
    from ..agent.daemon import Agent
    from ..api.errors import ValidationError
    from ..store import StoreError

    labels = {}
    for pair in filter(None, (p.strip() for p in node_labels.split(","))):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--node-labels")
        labels[key] = value
    try:
        Agent(node, store_url, iface, state_dir, ttl, masquerade=not no_masquerade, node_labels=labels,
              metrics_address=metrics_address).run()
    except (ValidationError, StoreError, HostError) as e:
        raise click.ClickException(str(e)) from None
