"""The files a pod sees over /etc, as the kubelet writes them: resolv.conf per dnsPolicy and
dnsConfig, hosts with the pod's own names and its hostAliases, and the pod's hostname. Pure."""

from __future__ import annotations

from dataclasses import dataclass

MAX_NAMESERVERS = 3
HOSTS_HEADER = ("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                "fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")


@dataclass(frozen=True)
class ResolvConf:
    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[tuple[str, str | None], ...] = ()

    def render(self) -> str:
        lines = [f"nameserver {ns}" for ns in self.nameservers]
        if self.searches:
            lines.append("search " + " ".join(self.searches))
        if self.options:
            lines.append("options " + " ".join(name if value is None else f"{name}:{value}" for name, value in self.options))
        return "\n".join(lines) + "\n"


def parse_resolv_conf(text: str) -> ResolvConf:
    """The node's resolver (dnsPolicy Default), from its resolv.conf."""
    servers, searches, options = [], [], []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(words) < 2:
            continue
        if words[0] == "nameserver":
            servers.append(words[1])
        elif words[0] in ("search", "domain"):
            searches = words[1:]  # the last search or domain line wins, as in glibc
        elif words[0] == "options":
            for opt in words[1:]:
                name, colon, value = opt.partition(":")
                options.append((name, value if colon else None))
    return ResolvConf(tuple(servers), tuple(searches), tuple(options))


def _unique(items) -> tuple:
    out: list = []
    for item in items:
        if item not in out:
            out.append(item)
    return tuple(out)


def resolv_conf(policy: str, host_network: bool, namespace: str, cluster_dns: str, domain: str, node_resolv: str,
                dns_config: dict | None = None) -> str:
    """The pod's resolv.conf, as the kubelet computes it: ClusterFirst (the cluster DNS, the
    namespace's search path, ndots:5; a hostNetwork pod falls back to Default unless the policy
    is ClusterFirstWithHostNet), Default (the node's resolver), None (only dnsConfig). dnsConfig
    is then merged in: its nameservers and searches appended without duplicates (at most three
    nameservers), its options replacing those of the same name."""
    if policy == "None":
        base = ResolvConf()
    elif policy == "Default" or (policy == "ClusterFirst" and host_network):
        base = parse_resolv_conf(node_resolv)
    else:
        base = ResolvConf((cluster_dns,), (f"{namespace}.svc.{domain}", f"svc.{domain}", domain), (("ndots", "5"),))
    cfg = dns_config or {}
    servers = _unique([*base.nameservers, *(cfg.get("nameservers") or [])])[:MAX_NAMESERVERS]
    searches = _unique([*base.searches, *(cfg.get("searches") or [])])
    options = dict(base.options)
    for opt in cfg.get("options") or []:
        options[opt["name"]] = opt.get("value")
    return ResolvConf(servers, searches, tuple(options.items())).render()


def fqdn(hostname: str, subdomain: str, namespace: str, domain: str) -> str:
    """The pod's fully qualified name: hostname.subdomain.namespace.svc.domain when it has a
    subdomain (a headless Service of that name publishes it), else none."""
    return f"{hostname}.{subdomain}.{namespace}.svc.{domain}" if subdomain else ""


def hosts_file(pod_ip: str, hostname: str, full_name: str, aliases: list[tuple[str, list[str]]],
               node_hosts: str | None = None) -> str:
    """/etc/hosts as the kubelet manages it: localhost lines, the pod's IP with its FQDN first
    (so `hostname -f` finds it) and its hostname; for a hostNetwork pod the node's own hosts
    file instead; then the hostAliases."""
    if node_hosts is not None:
        text = "# Kubernetes-managed hosts file (host network).\n" + node_hosts
        if not text.endswith("\n"):
            text += "\n"
    else:
        names = "\t".join(n for n in (full_name, hostname) if n)
        text = f"{HOSTS_HEADER}{pod_ip}\t{names}\n"
    if aliases:
        text += "\n# Entries added by HostAliases.\n" + "".join(f"{ip}\t{chr(9).join(names)}\n" for ip, names in aliases)
    return text
