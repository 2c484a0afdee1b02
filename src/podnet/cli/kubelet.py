"""`podnet kubelet`: run a node's kubelet (normally started by `podnet lab up`, one per node)."""

from __future__ import annotations

import click


@click.command("kubelet")
@click.option("--node", required=True, help="This node's name: the kubelet runs the pods whose spec.nodeName it is.")
@click.option("--store", "store_url", required=True, help="sqlite:///path/to/db or etcd://host:port")
@click.option("--root-dir", required=True, type=click.Path(file_okay=False),
              help="Where the kubelet records the pods it runs, their status files and logs.")
@click.option("--cni-bin-dir", required=True, type=click.Path(file_okay=False), help="CNI plugin executables.")
@click.option("--cni-conf", required=True, type=click.Path(dir_okay=False), help="The node's network config (.conflist).")
@click.option("--netns-prefix", default="pn-pod-", show_default=True, help="Names of the pods' network namespaces start so.")
@click.option("--node-ip", default="", help="Reported as the pods' status.hostIP (and a hostNetwork pod's podIP).")
@click.option("--cluster-dns", default="10.96.0.10", show_default=True, help="Nameserver in the pods' resolv.conf.")
@click.option("--cluster-domain", default="cluster.local", show_default=True)
def kubelet(node: str, store_url: str, root_dir: str, cni_bin_dir: str, cni_conf: str, netns_prefix: str, node_ip: str,
            cluster_dns: str, cluster_domain: str) -> None:
    """Make the pods bound to NODE real: a sandbox (a network namespace wired through CNI, or
    the node's own for hostNetwork pods; the pod's hostname; its /etc/hosts and resolv.conf per
    dnsPolicy), its init containers then its containers with their probes (restartPolicy,
    back-off), and the pod's status (phase, podIP, Ready) written back. Pods marked for
    deletion drain (preStop, SIGTERM, SIGKILL after the grace period), then are detached and
    removed."""
    import os

    from ..kubelet.daemon import Config, Kubelet
    from ..kubelet.sandbox import CNI

    cni = CNI(cni_bin_dir, cni_conf, os.path.join(root_dir, "cni-cache"))
    Kubelet(Config(node, store_url, root_dir, cni, netns_prefix, node_ip, cluster_dns, cluster_domain)).run()
