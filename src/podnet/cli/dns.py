"""`podnet dns`: the cluster DNS server (run as a pod by the lab)."""

from __future__ import annotations

import click


@click.command("dns")
@click.option("--store", "store_url", required=True, help="sqlite:///path/to/db or etcd://host:port")
@click.option("--listen", default="0.0.0.0:53", show_default=True)
@click.option("--zone", default="cluster.local", show_default=True, help="The cluster domain.")
@click.option("--upstream", default="", help="Resolver for names outside the zone, HOST[:PORT].")
def dns(store_url: str, listen: str, zone: str, upstream: str) -> None:
    """Answer Kubernetes DNS (service A/SRV/PTR, headless, ExternalName, pod A, dns-version)
    from the store; forward other names to --upstream."""
    from ..dns.server import serve

    serve(store_url, listen, zone, upstream)
