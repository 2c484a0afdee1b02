"""The `portmap` plugin: forward host ports to a container, on nftables.

A chained plugin: it reads the container's addresses from prevResult and the mappings from
runtimeConfig.portMappings (the `portMappings` capability): hostPort, containerPort,
protocol (tcp/udp/sctp) and optional hostIP. Rules live in table `inet podnet_portmap`:

    prerouting / output (nat)  fib daddr type local -> jump hostports
    hostports                  [ip daddr HOSTIP] <proto> dport HOSTPORT dnat to CIP:CPORT
    postrouting (nat, snat)    masquerade hairpin (container to itself) and localhost traffic

Every rule carries the attachment's tag as comment, which is how DEL finds them. UDP
mappings flush matching conntrack entries on ADD and DEL, so an old flow does not keep
reaching a container that is gone.
"""

from __future__ import annotations

import ipaddress

from ..cni import errors, schema
from ..cni.errors import CNIError
from ..cni.skel import CmdArgs, Plugin, main as skel_main
from ..kernel import nft, rtnl, sysctl
from . import common

TABLE = {"family": "inet", "name": "podnet_portmap"}
PROTOCOLS = ("tcp", "udp", "sctp")


def load_mappings(conf: dict) -> list[dict]:
    backend = conf.get("backend")
    if backend not in (None, "", "nftables"):
        raise CNIError(errors.UNSUPPORTED_FIELD, f"unsupported field backend={backend!r}",
                       "podnet forwards ports with nftables only; use \"nftables\" or leave it out")
    raw = (conf.get("runtimeConfig") or {}).get("portMappings") or []
    if not isinstance(raw, list):
        raise CNIError(errors.INVALID_NETWORK_CONFIG, "runtimeConfig.portMappings must be a list")
    out = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise CNIError(errors.INVALID_NETWORK_CONFIG, f"portMappings[{i}] must be an object")
        proto = str(m.get("protocol") or "tcp").lower()
        if proto not in PROTOCOLS:
            raise CNIError(errors.INVALID_NETWORK_CONFIG, f"portMappings[{i}]: unknown protocol {m.get('protocol')!r}")
        for key in ("hostPort", "containerPort"):
            v = m.get(key)
            if not isinstance(v, int) or isinstance(v, bool) or not 0 < v < 65536:
                raise CNIError(errors.INVALID_NETWORK_CONFIG, f"portMappings[{i}]: invalid {key} {v!r}")
        host_ip = m.get("hostIP") or ""
        if host_ip:
            try:
                ipaddress.ip_address(host_ip)
            except ValueError:
                raise CNIError(errors.INVALID_NETWORK_CONFIG, f"portMappings[{i}]: invalid hostIP {host_ip!r}") from None
        out.append({"hostPort": m["hostPort"], "containerPort": m["containerPort"], "protocol": proto, "hostIP": host_ip})
    return out


def container_ips(prev: dict) -> list[str]:
    """The container's addresses: those on a sandbox interface, or all when none is marked."""
    ifaces = prev.get("interfaces") or []
    ips = []
    for ip in prev.get("ips") or []:
        idx = ip.get("interface")
        if idx is None or (0 <= idx < len(ifaces) and ifaces[idx].get("sandbox")):
            ips.append(str(ipaddress.ip_interface(ip["address"]).ip))
    return ips


def _m(left: dict, op: str, right: object) -> dict:
    return {"match": {"op": op, "left": left, "right": right}}


def _payload(proto: str, field: str) -> dict:
    return {"payload": {"protocol": proto, "field": field}}


def render(mappings: list[dict], ips: list[str], tag: str, snat: bool) -> list[dict]:
    """nft commands adding this attachment's rules (pure)."""
    t = {"family": TABLE["family"], "table": TABLE["name"]}
    local = _m({"fib": {"result": "type", "flags": ["daddr"]}}, "==", "local")
    cmds: list[dict] = [
        {"add": {"table": dict(TABLE)}},
        {"add": {"chain": {**t, "name": "hostports"}}},
        {"add": {"chain": {**t, "name": "prerouting", "type": "nat", "hook": "prerouting", "prio": -100, "policy": "accept"}}},
        {"add": {"chain": {**t, "name": "output", "type": "nat", "hook": "output", "prio": -100, "policy": "accept"}}},
        {"add": {"chain": {**t, "name": "postrouting", "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}}},
    ]
    # The hook chains hold nothing but their jump, shared by every attachment: flushing and
    # re-adding it inside this one transaction is atomic and idempotent, and needs no lookup.
    for chain in ("prerouting", "output"):
        cmds.append({"flush": {"chain": {**t, "name": chain}}})
        cmds.append({"add": {"rule": {**t, "chain": chain, "comment": "podnet hostports",
                                      "expr": [local, {"jump": {"target": "hostports"}}]}}})
    for m in mappings:
        for cip in ips:
            fam = "ip6" if ":" in cip else "ip"
            if m["hostIP"] and (":" in m["hostIP"]) != (fam == "ip6"):
                continue
            expr: list[dict] = []
            if m["hostIP"]:
                expr.append(_m(_payload(fam, "daddr"), "==", m["hostIP"]))
            else:
                expr.append(_m({"meta": {"key": "nfproto"}}, "==", "ipv6" if fam == "ip6" else "ipv4"))
            expr.append(_m(_payload(m["protocol"], "dport"), "==", m["hostPort"]))
            expr.append({"dnat": {"family": fam, "addr": cip, "port": m["containerPort"]}})
            cmds.append({"add": {"rule": {**t, "chain": "hostports", "comment": tag, "expr": expr}}})
            if snat:
                hairpin = [_m(_payload(fam, "saddr"), "==", cip), _m(_payload(fam, "daddr"), "==", cip),
                           _m(_payload(m["protocol"], "dport"), "==", m["containerPort"]), {"masquerade": None}]
                cmds.append({"add": {"rule": {**t, "chain": "postrouting", "comment": tag, "expr": hairpin}}})
                loopback = "::1" if fam == "ip6" else {"prefix": {"addr": "127.0.0.0", "len": 8}}
                from_lo = [_m(_payload(fam, "saddr"), "==", loopback), _m(_payload(fam, "daddr"), "==", cip),
                           _m(_payload(m["protocol"], "dport"), "==", m["containerPort"]), {"masquerade": None}]
                cmds.append({"add": {"rule": {**t, "chain": "postrouting", "comment": tag, "expr": from_lo}}})
    return cmds


def _route_localnet(ips: list[str]) -> None:
    """Let 127.0.0.1:hostPort reach the container: route_localnet on the interface towards it."""
    with rtnl.Netlink() as nl:
        for cip in ips:
            if ":" in cip:
                continue
            addr = ipaddress.ip_address(cip)
            best = None
            for r in nl.routes(rtnl.AF_INET):
                net = ipaddress.ip_network(r.dst, strict=False)
                if addr in net and r.oif and (best is None or net.prefixlen > best[0]):
                    best = (net.prefixlen, r.oif)
            if best:
                link = nl.link_by_index(best[1])
                if link is not None:
                    sysctl.write(f"net/ipv4/conf/{link.name}/route_localnet", "1")


def flush_udp_conntrack(mappings: list[dict]) -> None:
    """Forget UDP flows to the mapped host ports (exit 1, "0 flow entries deleted", is fine)."""
    from ..kernel import spawn

    for m in mappings:
        if m["protocol"] == "udp":
            try:
                spawn.run(["conntrack", "-D", "-p", "udp", "--orig-port-dst", str(m["hostPort"])])
            except FileNotFoundError:
                return  # conntrack(8) not installed: nothing we can flush


def _snat(conf: dict) -> bool:
    v = conf.get("snat", True)
    if not isinstance(v, bool):
        raise CNIError(errors.INVALID_NETWORK_CONFIG, f"'snat' must be true or false, not {v!r}")
    return v


def add(args: CmdArgs) -> dict:
    prev = args.prev_result()
    if prev is None:
        raise CNIError(errors.INVALID_NETWORK_CONFIG, "portmap must be called as a chained plugin (no prevResult)")
    mappings = load_mappings(args.conf)
    snat = _snat(args.conf)
    if not mappings:
        return prev
    ips = container_ips(prev)
    if not ips:
        raise CNIError(errors.INVALID_NETWORK_CONFIG, "prevResult has no container IP to forward to")
    tag = common.attachment_tag(args.conf["name"], args.container_id, args.ifname)
    nft.run(render(mappings, ips, tag, snat))
    if snat:
        _route_localnet(ips)
    flush_udp_conntrack(mappings)
    return prev


def _remove(tag: str) -> None:
    from .nftrules import delete_tagged

    nft.run(delete_tagged(nft.list_ruleset(["table", TABLE["family"], TABLE["name"]]), tag))


def delete(args: CmdArgs) -> None:
    mappings = load_mappings(args.conf)
    _remove(common.attachment_tag(args.conf["name"], args.container_id, args.ifname))
    flush_udp_conntrack(mappings)


def check(args: CmdArgs) -> None:
    if args.prev_result() is None:
        raise CNIError(errors.INVALID_NETWORK_CONFIG, "portmap must be called as a chained plugin (no prevResult)")
    mappings = load_mappings(args.conf)
    if not mappings:
        return
    tag = common.attachment_tag(args.conf["name"], args.container_id, args.ifname)
    listing = nft.list_ruleset(["table", TABLE["family"], TABLE["name"]])
    if not any((i.get("rule") or {}).get("comment") == tag for i in listing):
        raise CNIError(errors.INTERNAL, f"portmap rules for container {args.container_id} are missing")


SCHEMA = schema.netconf(snat=bool, markMasqBit=int, externalSetMarkChain=str, conditionsV4=[str], conditionsV6=[str],
                        backend=str, runtimeConfig={"portMappings": [{"hostPort": int, "containerPort": int,
                                                                      "protocol": str, "hostIP": str}]})
PLUGIN = Plugin(name="portmap", add=add, delete=delete, check=check, gc=lambda a: None, status=lambda a: None, schema=SCHEMA)


def main() -> None:
    skel_main(PLUGIN)


if __name__ == "__main__":
    main()
