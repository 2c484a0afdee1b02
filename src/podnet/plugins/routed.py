"""The `routed` plugin: a pod wired the way Calico wires one. No bridge, no gateway address:

    pod     eth0 holds its address as /32
            169.254.1.1 dev eth0 scope link
            default via 169.254.1.1 dev eth0
    node    pnw<11 hex> (a hash of namespace.pod): MAC ee:ee:ee:ee:ee:ee, no address,
            proxy_arp=1 and neigh proxy_delay=0, so it answers the pod's ARP for 169.254.1.1
            (whatever the pod asks for) at once with its own MAC
            <pod IP>/32 dev pnw<...> scope link

The node routes every pod's /32 to its veth; the rest of the cluster reaches the node through
the routes the bgp backend spreads (a block per node, podnet.agent.backends.bgp).

    {"type": "routed", "mtu": 1450, "ipam": {"type": "static", "addresses": [...]}}

Any IPAM plugin works; the podnet agent passes the address it took from an IP pool block to
the `static` one. Only IPv4 for now.
"""

from __future__ import annotations

import hashlib
import ipaddress

from ..cni import errors, schema
from ..cni.errors import CNIError
from ..cni.skel import CmdArgs, Plugin, main as skel_main
from ..kernel import netns, rtnl, sysctl
from . import common

GATEWAY = "169.254.1.1"
HOST_MAC = "ee:ee:ee:ee:ee:ee"
PREFIX = "pnw"


def host_veth_name(args: CmdArgs, prefix: str = PREFIX) -> str:
    """`pnw` + 11 hex chars of a hash of namespace.pod (CNI_ARGS), or of the container ID and
    interface when the runtime names no pod: stable for a pod, as Calico's `cali...` names."""
    a = args.args_dict()
    if a.get("K8S_POD_NAMESPACE") and a.get("K8S_POD_NAME"):
        key = f"{a['K8S_POD_NAMESPACE']}.{a['K8S_POD_NAME']}"
    else:
        key = args.container_id
    if args.ifname != "eth0":
        key += f".{args.ifname}"
    return prefix + hashlib.sha1(key.encode()).hexdigest()[: min(11, 15 - len(prefix))]


def _load(conf: dict) -> tuple[int, str]:
    mtu = conf.get("mtu", 0) or 0
    if not isinstance(mtu, int) or isinstance(mtu, bool) or mtu < 0 or 0 < mtu < 576:
        raise CNIError(errors.INVALID_NETWORK_CONFIG, f"'mtu' must be 0 (the default) or at least 576, not {mtu!r}")
    prefix = conf.get("hostVethPrefix", PREFIX) or PREFIX
    if not isinstance(prefix, str) or not prefix.isalnum() or len(prefix) > 7:
        raise CNIError(errors.INVALID_NETWORK_CONFIG, f"'hostVethPrefix' must be 1 to 7 letters or digits, not {prefix!r}")
    if not common.ipam_type(conf):
        raise CNIError(errors.INVALID_NETWORK_CONFIG, "routed needs an 'ipam' section with a type")
    return mtu, prefix


def _write(key: str, value: str) -> None:
    try:
        sysctl.write(key, value)
    except OSError as e:
        raise CNIError(errors.INTERNAL, f"cannot set {key.replace('/', '.')}={value}: {e.strerror}") from None


def add(args: CmdArgs) -> dict:
    mtu, prefix = _load(args.conf)
    h = common.AddHandles(args.netns)
    nl, cnl = h.nl, h.cnl
    host_name = host_veth_name(args, prefix)
    created = ipam_done = False
    try:
        common.refuse_existing_iface(cnl, args.ifname)
        ipam = common.ipam_exec("ADD", args)
        ipam_done = True
        ips = []
        for ip in ipam["ips"]:
            iface = ipaddress.ip_interface(ip["address"])
            if iface.version != 4:
                raise CNIError(errors.INVALID_NETWORK_CONFIG, f"routed: only IPv4 addresses so far, not {iface}")
            ips.append(str(iface.ip))
        stale = nl.link(host_name)
        if stale is not None:  # left by an earlier sandbox of the same pod, as Calico finds them
            nl.delete_link(stale.index)
        nl.add_veth(host_name, args.ifname, mtu=mtu, peer_netns_fd=h.ns_fd, mac=HOST_MAC)
        created = True
        host = nl.link(host_name)
        for key, value in ((f"net/ipv4/conf/{host_name}/proxy_arp", "1"),
                           (f"net/ipv4/neigh/{host_name}/proxy_delay", "0"),
                           (f"net/ipv4/conf/{host_name}/forwarding", "1")):
            _write(key, value)
        try:  # no IPv6 on the host side: the pod gets none, and router advertisements stay out
            sysctl.write(f"net/ipv6/conf/{host_name}/disable_ipv6", "1")
        except OSError:
            pass
        # the host end's ifalias names the sandbox: a late DEL of an earlier sandbox of this pod
        # (same veth name) must not take this one's network away
        nl.set_link(host.index, up=True, alias=args.container_id[:255])
        cont = cnl.link(args.ifname)
        with netns.entered(args.netns):
            cnl.set_link(cont.index, up=True)
            for ip in ips:
                cnl.add_address(cont.index, f"{ip}/32")
            cnl.add_route(f"{GATEWAY}/32", "", cont.index, scope=rtnl.RT_SCOPE_LINK, replace=True)
            cnl.add_route("0.0.0.0/0", GATEWAY, cont.index, replace=True)
        for ip in ips:
            nl.add_route(f"{ip}/32", "", host.index, scope=rtnl.RT_SCOPE_LINK, replace=True)
        sysctl.enable_forwarding({"4"})
        return {"cniVersion": "1.1.0",
                "interfaces": [{"name": host_name, "mac": HOST_MAC},
                               {"name": args.ifname, "mac": cont.mac, "sandbox": args.netns}],
                "ips": [{"address": f"{ip}/32", "interface": 1} for ip in ips],
                "routes": [{"dst": "0.0.0.0/0", "gw": GATEWAY}],
                "dns": ipam.get("dns") or {}}
    except BaseException:
        common.unwind_failed_add(nl, host_name if created else None, args if ipam_done else None)
        raise
    finally:
        h.close()


def delete(args: CmdArgs) -> None:
    _, prefix = _load(args.conf)
    common.ipam_exec("DEL", args)
    common.delete_container_iface(args.netns, args.ifname)
    with rtnl.Netlink() as nl:  # the netns may be gone already, taking the pod's end but not always ours
        link = nl.link(host_veth_name(args, prefix))
        if link is not None and link.kind == "veth" and link.alias in ("", args.container_id[:255]):
            try:
                nl.delete_link(link.index)
            except OSError:
                pass


def check(args: CmdArgs) -> None:
    _, prefix = _load(args.conf)
    prev = args.prev_result()
    if prev is None:
        raise CNIError(errors.INTERNAL, "Required prevResult missing")
    common.ipam_exec("CHECK", args)
    common.verify_container_iface(args, prev)
    name = host_veth_name(args, prefix)
    with rtnl.Netlink() as nl:
        link = nl.link(name)
        if link is None:
            raise CNIError(errors.INTERNAL, f"host veth {name} is missing")
        routes = {(r.dst, r.oif) for r in nl.routes(rtnl.AF_INET)}
    for ip in prev.get("ips") or []:
        dst = f"{ipaddress.ip_interface(ip['address']).ip}/32"
        if (dst, link.index) not in routes:
            raise CNIError(errors.INTERNAL, f"the node has no route {dst} dev {name}")


PLUGIN = Plugin(name="routed", add=add, delete=delete, check=check,
                gc=lambda a: common.ipam_exec("GC", a), status=lambda a: common.ipam_exec("STATUS", a),
                schema=schema.netconf(mtu=int, hostVethPrefix=str))


def main() -> None:
    skel_main(PLUGIN)


if __name__ == "__main__":
    main()
