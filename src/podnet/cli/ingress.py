"""`podnet ingress-controller`: the Ingress controller around nginx (run as a pod by the lab)."""

from __future__ import annotations

import click


@click.command("ingress-controller")
@click.option("--store", "store_url", required=True, help="sqlite:///path/to/db or etcd://host:port")
@click.option("--work-dir", required=True, type=click.Path(file_okay=False),
              help="nginx's prefix: its nginx.conf, certificates, temp files and logs.")
@click.option("--publish-service", default="", metavar="NS/NAME",
              help="The Service the controller is reached through: its addresses go into the Ingresses' status.")
@click.option("--http-port", default=80, show_default=True)
@click.option("--https-port", default=443, show_default=True)
@click.option("--status-port", default=10254, show_default=True, help="127.0.0.1:PORT serves /healthz and /nginx_status.")
@click.option("--nginx", "nginx_bin", default="nginx", show_default=True, help="The nginx binary.")
def ingress_controller(store_url: str, work_dir: str, publish_service: str, http_port: int, https_port: int,
                       status_port: int, nginx_bin: str) -> None:
    """Serve the cluster's Ingresses (networking.k8s.io/v1) through a real nginx, in the style of
    ingress-nginx: the Ingresses of an IngressClass whose controller is k8s.io/ingress-nginx
    (or of the default class) are rendered with their Services' endpoints (pod IPs) and TLS
    Secrets into nginx.conf, checked with `nginx -t`, and loaded with a graceful reload."""
    from ..ingress.controller import Config, Controller

    Controller(Config(store_url, work_dir, publish_service, http_port, https_port, status_port, nginx_bin)).run()
