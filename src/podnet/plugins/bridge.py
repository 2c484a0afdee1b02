"""The `bridge` plugin: a veth pair per container, the host end on a Linux bridge.

Configuration and result follow the reference plugin (containernetworking/plugins
plugins/main/bridge): bridge, isGateway, isDefaultGateway, forceAddress, ipMasq, mtu,
hairpinMode, promiscMode, vlan, macspoofchk, and an `ipam` section delegated to an IPAM plugin.
"""

from __future__ import annotations

import errno
import ipaddress

from ..cni import errors, schema
from ..cni.errors import CNIError
from ..cni.skel import CmdArgs, Plugin, main as skel_main
from ..cni.types import ip_family
from ..kernel import netns, nft, rtnl, sysctl
from . import common, nftrules


class BridgeConf:
    __slots__ = ("bridge", "is_gateway", "is_default_gateway", "force_address", "ip_masq", "mtu", "hairpin",
                 "promisc", "vlan", "macspoofchk", "layer2")

    def __init__(self, **kw: object) -> None:
        defaults = {"bridge": "cni0", "mtu": 0, "vlan": 0}
        for name in self.__slots__:
            setattr(self, name, kw.get(name, defaults.get(name, False)))

    @classmethod
    def load(cls, conf: dict) -> "BridgeConf":
        def flag(key: str) -> bool:
            value = conf.get(key, False)
            if not isinstance(value, bool):
                raise CNIError(errors.INVALID_NETWORK_CONFIG, f"{key!r} must be true or false, not {value!r}")
            return value

        def number(key: str) -> int:
            value = conf.get(key, 0) or 0
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise CNIError(errors.INVALID_NETWORK_CONFIG, f"{key!r} must be a non-negative integer, not {value!r}")
            return value

        c = cls(
            bridge=conf.get("bridge") or "cni0",
            is_gateway=flag("isGateway"),
            is_default_gateway=flag("isDefaultGateway"),
            force_address=flag("forceAddress"),
            ip_masq=flag("ipMasq"),
            mtu=number("mtu"),
            hairpin=flag("hairpinMode"),
            promisc=flag("promiscMode"),
            vlan=number("vlan"),
            macspoofchk=flag("macspoofchk"),
        )
        from ..cni import validate

        try:
            validate.interface_name(c.bridge)
        except CNIError as e:
            raise CNIError(errors.INVALID_NETWORK_CONFIG, f"invalid bridge name {c.bridge!r}: {e.msg}") from None
        backend = conf.get("ipMasqBackend")
        if backend not in (None, "", "nftables"):
            raise CNIError(errors.UNSUPPORTED_FIELD, f"unsupported field ipMasqBackend={backend!r}",
                           "podnet masquerades with nftables only; use \"nftables\" or leave it out")
        if c.vlan > 4094:
            raise CNIError(errors.INVALID_NETWORK_CONFIG, f"invalid VLAN ID {c.vlan} (must be between 0 and 4094)")
        if c.hairpin and c.promisc:
            raise CNIError(errors.INVALID_NETWORK_CONFIG, "cannot set hairpin mode and promiscuous mode at the same time")
        if c.is_default_gateway:
            c.is_gateway = True
        c.layer2 = common.ipam_type(conf) == ""
        return c

    @property
    def gateway_ifname(self) -> str:
        return f"{self.bridge}.{self.vlan}" if self.vlan else self.bridge


def ensure_bridge(nl: rtnl.Netlink, c: BridgeConf) -> rtnl.Link:
    link = nl.link(c.bridge)
    if link is None:
        try:
            nl.add_bridge(c.bridge, mtu=c.mtu, vlan_filtering=bool(c.vlan))
        except OSError as e:
            if e.errno == errno.EOPNOTSUPP and c.vlan:
                raise CNIError(errors.INTERNAL, f"could not add {c.bridge!r} with vlan {c.vlan}: this kernel has no "
                                                "bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING)") from None
            if e.errno != errno.EEXIST:  # another ADD created it a moment ago: fine
                raise CNIError(errors.INTERNAL, f"could not add {c.bridge!r}: {e.strerror}") from None
        link = nl.link(c.bridge)
    if link is None or link.kind != "bridge":
        raise CNIError(errors.INTERNAL, f"{c.bridge!r} already exists but is not a bridge")
    if c.vlan and not link.vlan_filtering:
        nl.set_bridge_vlan_filtering(link.index, True)
    if c.promisc and not link.promiscuity:
        nl.set_link(link.index, promisc=True)
    if not link.up:
        nl.set_link(link.index, up=True)
    return link


def ensure_vlan_gateway_iface(nl: rtnl.Netlink, c: BridgeConf, br: rtnl.Link) -> rtnl.Link:
    """With a VLAN and a gateway, the gateway lives on `<bridge>.<vlan>`, tagged on the bridge."""
    name = c.gateway_ifname
    link = nl.link(name)
    if link is None:
        nl.add_bridge_vlan(br.index, c.vlan, self_=True)
        try:
            nl.add_vlan(name, br.index, c.vlan, mtu=c.mtu)
        except OSError as e:
            if e.errno != errno.EEXIST:
                raise
        link = nl.link(name)
    if not link.up:
        nl.set_link(link.index, up=True)
    return link


def ensure_gateway_address(nl: rtnl.Netlink, link: rtnl.Link, gw_cidr: str, force: bool) -> None:
    want = ipaddress.ip_interface(gw_cidr)
    for a in nl.addresses(link.index):
        have = ipaddress.ip_interface(a.cidr)
        if have == want:
            return
        if have.version == want.version and have.network == want.network and not force:
            raise CNIError(errors.INTERNAL, f"{link.name!r} already has an IP address different from {gw_cidr}")
        if have.version == want.version and have.network == want.network and force:
            nl.delete_address(link.index, a.cidr)
    try:
        nl.add_address(link.index, gw_cidr)
    except OSError as e:
        if e.errno != errno.EEXIST:
            raise CNIError(errors.INTERNAL, f"could not add IP address {gw_cidr} to {link.name!r}: {e.strerror}") from None


def add(args: CmdArgs) -> dict:
    c = BridgeConf.load(args.conf)
    h = common.AddHandles(args.netns)
    nl, cnl = h.nl, h.cnl
    host_name = common.random_veth_name()
    created = False
    ipam_done = False
    try:
        br = ensure_bridge(nl, c)
        common.refuse_existing_iface(cnl, args.ifname)
        try:
            nl.add_veth(host_name, args.ifname, mtu=c.mtu, peer_netns_fd=h.ns_fd)
        except OSError as e:
            raise CNIError(errors.INTERNAL, f"failed to create veth pair: {e.strerror}") from None
        created = True
        host = nl.link(host_name)
        nl.set_link(host.index, master=br.index, up=True)
        if c.hairpin:
            nl.set_bridge_port(host.index, hairpin=True)
        if c.vlan:
            nl.add_bridge_vlan(host.index, c.vlan, pvid=True, untagged=True)
        cont = cnl.link(args.ifname)
        result: dict = {"cniVersion": "1.1.0", "interfaces": [], "dns": {}}
        if not c.layer2:
            ipam = common.ipam_exec("ADD", args)
            ipam_done = True
            result["ips"] = [dict(ip, interface=2) for ip in ipam["ips"]]
            result["routes"] = list(ipam.get("routes") or [])
            result["dns"] = ipam.get("dns") or {}
            if c.is_gateway:
                for ip in result["ips"]:
                    ip["gateway"] = common.gateway_for(ip)
            if c.is_default_gateway:
                _add_default_routes(result)
            with netns.entered(args.netns):
                common.configure_iface(cnl, args.ifname, result, 2)
            if c.is_gateway:
                gw_link = ensure_vlan_gateway_iface(nl, c, br) if c.vlan else br
                for ip in result["ips"]:
                    prefix = ipaddress.ip_interface(ip["address"]).network.prefixlen
                    ensure_gateway_address(nl, gw_link, f"{ip['gateway']}/{prefix}", c.force_address)
                sysctl.enable_forwarding({ip_family(ip["address"]) for ip in result["ips"]})
            if c.ip_masq:
                nft.run(nftrules.masq_add([ip["address"] for ip in result["ips"]],
                                          common.attachment_tag(args.conf["name"], args.container_id, args.ifname)))
        else:
            with netns.entered(args.netns):
                cnl.set_link(cont.index, up=True)
        if c.macspoofchk:
            nft.run(nftrules.spoofcheck_add(host_name, cont.mac,
                                            common.attachment_tag(args.conf["name"], args.container_id, args.ifname)))
        br = nl.link(c.bridge)  # its MAC can change once a port joins
        result["interfaces"] = [
            {"name": br.name, "mac": br.mac},
            {"name": host.name, "mac": host.mac},
            {"name": args.ifname, "mac": cont.mac, "sandbox": args.netns},
        ]
        if c.mtu:
            for iface in result["interfaces"]:
                iface["mtu"] = c.mtu
        return result
    except BaseException:
        common.unwind_failed_add(nl, host_name if created else None, args if ipam_done else None,
                                 (lambda: _remove_rules(args, c)) if c.ip_masq or c.macspoofchk else None)
        raise
    finally:
        h.close()


def _add_default_routes(result: dict) -> None:
    for ip in result["ips"]:
        fam = ip_family(ip["address"])
        default = "::/0" if fam == "6" else "0.0.0.0/0"
        for r in result["routes"]:
            if r["dst"] == default and r.get("gw") and r["gw"] != ip["gateway"]:
                raise CNIError(errors.INTERNAL, f"isDefaultGateway ineffective because IPAM sets default route via {r['gw']}")
        result["routes"] = [r for r in result["routes"] if r["dst"] != default]
        result["routes"].append({"dst": default, "gw": ip["gateway"]})


def _remove_rules(args: CmdArgs, c: BridgeConf) -> None:
    tag = common.attachment_tag(args.conf["name"], args.container_id, args.ifname)
    if c.ip_masq:
        nftrules.remove_attachment(nftrules.MASQ_TABLE, nftrules.MASQ_CHAIN, tag)
    if c.macspoofchk:
        nftrules.remove_attachment(nftrules.SPOOF_TABLE, nftrules.SPOOF_CHAIN, tag)


def delete(args: CmdArgs) -> None:
    c = BridgeConf.load(args.conf)
    if not c.layer2:
        common.ipam_exec("DEL", args)
    common.delete_container_iface(args.netns, args.ifname)
    _remove_rules(args, c)


def check(args: CmdArgs) -> None:
    c = BridgeConf.load(args.conf)
    prev = args.prev_result()
    if prev is None:
        raise CNIError(errors.INTERNAL, "Required prevResult missing")
    if not c.layer2:
        common.ipam_exec("CHECK", args)
    with rtnl.Netlink() as nl:
        br = nl.link(c.bridge)
        if br is None or br.kind != "bridge":
            raise CNIError(errors.INTERNAL, f"bridge {c.bridge!r} is missing or not a bridge")
        host_links = {l.name: l for l in nl.links()}
    ifaces = prev.get("interfaces") or []
    common.verify_container_iface(args, prev)
    peer = next((x for x in ifaces if not x.get("sandbox") and x.get("name") != c.bridge), None)
    if peer is not None:
        hl = host_links.get(peer["name"])
        if hl is None or hl.master != br.index:
            raise CNIError(errors.INTERNAL, f"host veth {peer['name']} is missing or not attached to {c.bridge}")
        if c.hairpin and not hl.hairpin:
            raise CNIError(errors.INTERNAL, f"hairpin mode is off on {peer['name']}")
    tag = common.attachment_tag(args.conf["name"], args.container_id, args.ifname)
    if c.ip_masq and not nftrules.has_tagged(nftrules.MASQ_TABLE, nftrules.MASQ_CHAIN, tag):
        raise CNIError(errors.INTERNAL, "ipMasq rules for this container are missing")


def gc(args: CmdArgs) -> None:
    if not BridgeConf.load(args.conf).layer2:
        common.ipam_exec("GC", args)


def status(args: CmdArgs) -> None:
    if not BridgeConf.load(args.conf).layer2:
        common.ipam_exec("STATUS", args)


SCHEMA = schema.netconf(bridge=str, isGateway=bool, isDefaultGateway=bool, forceAddress=bool, ipMasq=bool,
                        ipMasqBackend=str, mtu=int, hairpinMode=bool, promiscMode=bool, vlan=int, vlanTrunk=[{}],
                        preserveDefaultVlan=bool, macspoofchk=bool, enabledad=bool, disableContainerInterface=bool,
                        portIsolation=bool)
PLUGIN = Plugin(name="bridge", add=add, delete=delete, check=check, gc=gc, status=status, schema=SCHEMA)


def main() -> None:
    skel_main(PLUGIN)


if __name__ == "__main__":
    main()
