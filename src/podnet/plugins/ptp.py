"""The `ptp` plugin: a point-to-point veth per container, routed (not bridged) by the host.

As in the reference: the container gets its IPAM address with the subnet route replaced by a
route via the gateway, which is reachable on-link as a /32 (/128); the host end carries the
gateway address as a /32 and a host route to the container's address. ipMasq and mtu as in
the bridge plugin.
"""

from __future__ import annotations

import ipaddress

from ..cni import errors, schema
from ..cni.errors import CNIError
from ..cni.skel import CmdArgs, Plugin, main as skel_main
from ..cni.types import ip_family
from ..kernel import netns, nft, rtnl, sysctl
from . import common, nftrules


def _load(conf: dict) -> tuple[bool, int]:
    masq = conf.get("ipMasq", False)
    mtu = conf.get("mtu", 0) or 0
    if not isinstance(masq, bool):
        raise CNIError(errors.INVALID_NETWORK_CONFIG, f"'ipMasq' must be true or false, not {masq!r}")
    if not isinstance(mtu, int) or isinstance(mtu, bool) or mtu < 0:
        raise CNIError(errors.INVALID_NETWORK_CONFIG, f"'mtu' must be a non-negative integer, not {mtu!r}")
    if not common.ipam_type(conf):
        raise CNIError(errors.INVALID_NETWORK_CONFIG, "ptp needs an 'ipam' section with a type")
    return masq, mtu


def add(args: CmdArgs) -> dict:
    masq, mtu = _load(args.conf)
    h = common.AddHandles(args.netns)
    nl, cnl = h.nl, h.cnl
    host_name = common.random_veth_name()
    created = ipam_done = False
    tag = common.attachment_tag(args.conf["name"], args.container_id, args.ifname)
    try:
        common.refuse_existing_iface(cnl, args.ifname)
        ipam = common.ipam_exec("ADD", args)
        ipam_done = True
        nl.add_veth(host_name, args.ifname, mtu=mtu, peer_netns_fd=h.ns_fd)
        created = True
        host = nl.link(host_name)
        nl.set_link(host.index, up=True)
        cont = cnl.link(args.ifname)
        result = {"cniVersion": "1.1.0", "ips": [], "routes": list(ipam.get("routes") or []), "dns": ipam.get("dns") or {}}
        for ip in ipam["ips"]:
            result["ips"].append(dict(ip, interface=1, gateway=common.gateway_for(ip)))
        with netns.entered(args.netns):
            common.configure_iface(cnl, args.ifname, result, 1)
            for ip in result["ips"]:
                iface = ipaddress.ip_interface(ip["address"])
                host_len = 128 if iface.version == 6 else 32
                try:
                    cnl.delete_route(str(iface.network), "", cont.index)
                except OSError:
                    pass
                cnl.add_route(f"{ip['gateway']}/{host_len}", "", cont.index, scope=rtnl.RT_SCOPE_LINK, replace=True)
                cnl.add_route(str(iface.network), ip["gateway"], cont.index, replace=True)
        for ip in result["ips"]:
            iface = ipaddress.ip_interface(ip["address"])
            host_len = 128 if iface.version == 6 else 32
            try:
                nl.add_address(host.index, f"{ip['gateway']}/{host_len}")
            except OSError as e:
                if e.errno != 17:
                    raise
            nl.add_route(f"{iface.ip}/{host_len}", "", host.index, scope=rtnl.RT_SCOPE_LINK, replace=True)
        sysctl.enable_forwarding({ip_family(ip["address"]) for ip in result["ips"]})
        if masq:
            nft.run(nftrules.masq_add([ip["address"] for ip in result["ips"]], tag))
        result["interfaces"] = [
            {"name": host.name, "mac": host.mac},
            {"name": args.ifname, "mac": cont.mac, "sandbox": args.netns},
        ]
        return result
    except BaseException:
        common.unwind_failed_add(nl, host_name if created else None, args if ipam_done else None,
                                 (lambda: nftrules.remove_attachment(nftrules.MASQ_TABLE, nftrules.MASQ_CHAIN, tag))
                                 if masq else None)
        raise
    finally:
        h.close()


def delete(args: CmdArgs) -> None:
    masq, _ = _load(args.conf)
    common.ipam_exec("DEL", args)
    common.delete_container_iface(args.netns, args.ifname)
    if masq:
        nftrules.remove_attachment(nftrules.MASQ_TABLE, nftrules.MASQ_CHAIN,
                                   common.attachment_tag(args.conf["name"], args.container_id, args.ifname))


def check(args: CmdArgs) -> None:
    _load(args.conf)
    prev = args.prev_result()
    if prev is None:
        raise CNIError(errors.INTERNAL, "Required prevResult missing")
    common.ipam_exec("CHECK", args)
    common.verify_container_iface(args, prev)


PLUGIN = Plugin(name="ptp", add=add, delete=delete, check=check,
                gc=lambda a: common.ipam_exec("GC", a), status=lambda a: common.ipam_exec("STATUS", a),
                schema=schema.netconf(ipMasq=bool, ipMasqBackend=str, mtu=int))


def main() -> None:
    skel_main(PLUGIN)


if __name__ == "__main__":
    main()
