"""`podnet controller-manager`: the cluster's controllers (started by `podnet lab up`)."""

from __future__ import annotations

import click


@click.command("controller-manager")
@click.option("--store", "store_url", required=True, help="sqlite:///path/to/db or etcd://host:port")
@click.option("--identity", default="", help="This instance's name in the leader lease (default: host-pid).")
def controller_manager(store_url: str, identity: str) -> None:
    """Run the cluster's controllers: EndpointSlices from Services and Ready pods, and
    Deployments' replicas and status. Several may run: the one holding the leader lease acts."""
    from ..controllers.manager import Manager

    Manager(store_url, identity).run()
