"""`podnet`: the command line. Verbs follow kubectl's conventions where kubectl has one."""

from __future__ import annotations

import click

from .. import __version__
from ..demo import demo
from .agent import agent
from .calico import ipam, node
from .controllers import controller_manager
from .kubelet import kubelet
from .cni import cni
from .dns import dns
from .ingress import ingress_controller
from .lab import lab
from .mesh import mesh
from .probe import probe
from .resources import apply, delete, exec_, get, label, logs, scale, wait
from .topo import topo
from .trace import trace


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="podnet")
def cli() -> None:
    """podnet: the Kubernetes pod network model on the real Linux datapath.

    \b
    Start here:
      podnet cni install /opt/cni/bin      write the CNI plugins (bridge, host-local, ...)
      podnet cni run ADD --conf net.conflist --netns /var/run/netns/x --container-id c1
      podnet demo                          two pods on a bridge, a ping, teardown
      podnet lab up --nodes 3              a 3-node cluster from namespaces
      podnet lab up --backend bgp          the same, routed the Calico way (BIRD, /32s, IP pools)
      podnet apply -f pods.yaml; podnet get pods -o wide; podnet exec POD -- ping ...
      podnet apply -f policy.yaml; podnet probe --port 80   who reaches whom, as a grid
    """


cli.add_command(cni)
cli.add_command(demo)
cli.add_command(agent)
cli.add_command(kubelet)
cli.add_command(controller_manager)
cli.add_command(lab)
cli.add_command(mesh)
cli.add_command(dns)
cli.add_command(ingress_controller)
cli.add_command(node)
cli.add_command(ipam)
for command in (apply, delete, get, exec_, logs, scale, label, wait, probe, topo):
    cli.add_command(command)
cli.add_command(trace)


def main() -> None:
    import sys

    from ..lab.state import LabError
    from ..store import StoreError

    try:
        cli()
    except StoreError as e:
        print(f"Error: the datastore is unavailable: {e}\nRun the command again once it answers (agents keep the "
              "datapath as it is meanwhile).", file=sys.stderr)
        sys.exit(1)
    except LabError as e:
        print(f"Error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
