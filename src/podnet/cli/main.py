"""`podnet`: the command line. Verbs follow kubectl's conventions where kubectl has one."""

from __future__ import annotations

import click

from .. import __version__
from ..demo import demo
from .agent import agent
from .cni import cni


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="podnet")
def cli() -> None:
    """podnet: the Kubernetes pod network model on the real Linux datapath.

    \b
    Start here:
      podnet cni install /opt/cni/bin      write the CNI plugins (bridge, host-local, ...)
      podnet cni run ADD --conf net.conflist --netns /var/run/netns/x --container-id c1
      podnet demo                          two pods on a bridge, a ping, teardown
    """


cli.add_command(cni)
cli.add_command(demo)
cli.add_command(agent)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
