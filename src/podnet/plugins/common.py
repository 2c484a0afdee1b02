"""What several plugins share: IPAM delegation, configuring a container interface, names."""

from __future__ import annotations

import ipaddress
import os

from ..cni import errors
from ..cni.errors import CNIError
from ..cni.invoke import call_json, find_plugin
from ..cni.skel import CmdArgs
from ..cni.types import ip_family, to_current
from ..kernel import netns, rtnl, sysctl


def ipam_type(conf: dict) -> str:
    ipam = conf.get("ipam") or {}
    if not isinstance(ipam, dict):
        raise CNIError(errors.INVALID_NETWORK_CONFIG, "'ipam' must be an object")
    return ipam.get("type") or ""


def ipam_exec(command: str, args: CmdArgs) -> dict | None:
    """Delegate to the IPAM plugin named in the config, with this plugin's env and stdin."""
    path = find_plugin(ipam_type(args.conf), args.path_dirs)
    env = dict(os.environ)
    env.update({
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": args.container_id,
        "CNI_NETNS": args.netns,
        "CNI_IFNAME": args.ifname,
        "CNI_ARGS": args.args,
        "CNI_PATH": args.path,
    })
    from .registry import in_process

    result = call_json(path, env, args.stdin, resolve=in_process)
    if command == "ADD":
        if not result:
            raise CNIError(errors.INTERNAL, "IPAM plugin returned no result")
        result = to_current(result)
        if not result.get("ips"):
            raise CNIError(errors.INTERNAL, "IPAM plugin returned missing IP config")
    return result


def ipam_del_quietly(args: CmdArgs) -> None:
    """Best-effort IPAM release while unwinding a failed ADD."""
    try:
        ipam_exec("DEL", args)
    except Exception:  # noqa: BLE001 - the ADD error is the one to report
        pass


def random_veth_name() -> str:
    return "veth" + os.urandom(4).hex()


def default_gateways(result: dict) -> dict[str, str]:
    """The first gateway of each address family in a result."""
    gws: dict[str, str] = {}
    for ip in result.get("ips") or []:
        if ip.get("gateway"):
            gws.setdefault(ip_family(ip["address"]), ip["gateway"])
    return gws


def configure_iface(nl: rtnl.Netlink, ifname: str, result: dict, iface_index: int) -> None:
    """Set addresses and routes of `result` on `ifname` (run inside the container's netns)."""
    link = nl.link(ifname)
    if link is None:
        raise CNIError(errors.INTERNAL, f"failed to look up {ifname!r}")
    mine = [ip for ip in result.get("ips") or [] if ip.get("interface", iface_index) == iface_index]
    has_v4 = any(ip_family(ip["address"]) == "4" for ip in mine)
    has_v6 = any(ip_family(ip["address"]) == "6" for ip in mine)
    if has_v4:
        try:
            sysctl.write(f"net/ipv4/conf/{ifname}/arp_notify", "1")
        except OSError:
            pass
    if has_v6:
        try:
            sysctl.write(f"net/ipv6/conf/{ifname}/disable_ipv6", "0")
        except OSError:
            pass
    nl.set_link(link.index, up=True)
    for ip in mine:
        nl.add_address(link.index, ip["address"])
    gws = default_gateways({"ips": mine})
    for route in result.get("routes") or []:
        family = ip_family(route["dst"])
        gw = route.get("gw") or gws.get(family, "")
        if family == "4" and not has_v4 or family == "6" and not has_v6:
            continue
        try:
            nl.add_route(route["dst"], gw, link.index, priority=route.get("priority"), mtu=route.get("mtu") or 0,
                         advmss=route.get("advmss") or 0, table=route.get("table") or rtnl.RT_TABLE_MAIN,
                         scope=route.get("scope"))
        except OSError as e:
            raise CNIError(errors.INTERNAL, f"failed to add route '{route['dst']} via {gw or '-'} dev {ifname}': {e.strerror}") from None


class AddHandles:
    """What an ADD works with: the container's netns as an fd (to move a veth into it), and
    rtnetlink in the host namespace (`nl`) and in the container's (`cnl`). close() releases
    all three; a missing netns is the spec's error 3 before anything is opened."""

    def __init__(self, netns_path: str) -> None:
        try:
            self.ns_fd = netns.open_netns(netns_path)
        except netns.NetnsNotFound as e:
            raise CNIError(errors.UNKNOWN_CONTAINER, f"failed to open netns {netns_path!r}", str(e)) from None
        self.nl = self.cnl = None
        try:
            self.nl = rtnl.Netlink()
            with netns.entered(netns_path):
                self.cnl = rtnl.Netlink()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        os.close(self.ns_fd)
        for sock in (self.nl, self.cnl):
            if sock is not None:
                sock.close()


def refuse_existing_iface(cnl: rtnl.Netlink, ifname: str) -> None:
    if cnl.link(ifname) is not None:
        raise CNIError(errors.INTERNAL, f"container veth name provided ({ifname}) already exists")


def unwind_failed_add(nl: rtnl.Netlink, host_veth: str | None, args: CmdArgs | None, remove_rules=None) -> None:
    """Undo a half-done ADD: delete the host veth (its peer goes with it), release the IPAM
    allocation, remove the attachment's rules. Never raises: the ADD's own error is the one
    the runtime must see."""
    if host_veth:
        link = nl.link(host_veth)
        if link is not None:
            nl.delete_link(link.index)
    if args is not None:
        ipam_del_quietly(args)
    if remove_rules is not None:
        try:
            remove_rules()
        except Exception:  # noqa: BLE001 - see above
            pass


def delete_container_iface(netns_path: str, ifname: str) -> None:
    """DEL's kernel half: remove the container's end (its veth peer goes with it).

    Idempotent: no netns path, a netns that is gone, or no such interface are all fine.
    """
    if not netns_path:
        return
    try:
        with netns.entered(netns_path):
            with rtnl.Netlink() as cnl:
                link = cnl.link(ifname)
                if link is not None:
                    cnl.delete_link(link.index)
    except netns.NetnsNotFound:
        pass  # the container is gone, and its veth with it


def verify_container_iface(args: CmdArgs, prev: dict) -> int:
    """CHECK's container half, shared by bridge and ptp: CNI_IFNAME exists in the container
    with prevResult's MAC (when it gives one), every prevResult address of that interface, and
    every prevResult route. The interface's index in prevResult."""
    ifaces = prev.get("interfaces") or []
    cont_idx = next((i for i, x in enumerate(ifaces) if x.get("sandbox") and x.get("name") == args.ifname), None)
    if cont_idx is None:
        raise CNIError(errors.INTERNAL, f"prevResult has no interface {args.ifname!r} in a sandbox")
    want = ifaces[cont_idx]
    try:
        with netns.entered(args.netns):
            with rtnl.Netlink() as cnl:
                link = cnl.link(args.ifname)
                if link is None:
                    raise CNIError(errors.INTERNAL, f"container interface {args.ifname!r} not found in {args.netns}")
                if want.get("mac") and link.mac != want["mac"].lower():
                    raise CNIError(errors.INTERNAL, f"interface {args.ifname} MAC {link.mac} differs from prevResult {want['mac']}")
                have_addrs = {a.cidr for a in cnl.addresses(link.index)}
                routes = cnl.routes()
    except netns.NetnsNotFound as e:
        raise CNIError(errors.UNKNOWN_CONTAINER, f"failed to open netns {args.netns!r}", str(e)) from None
    for ip in prev.get("ips") or []:
        if ip.get("interface", cont_idx) == cont_idx and str(ipaddress.ip_interface(ip["address"])) not in have_addrs:
            raise CNIError(errors.INTERNAL, f"address {ip['address']} is not on {args.ifname}")
    for r in prev.get("routes") or []:
        dst = str(ipaddress.ip_network(r["dst"], strict=False))
        if not any(str(ipaddress.ip_network(x.dst, strict=False)) == dst and (not r.get("gw") or x.gateway == r["gw"])
                   for x in routes):
            raise CNIError(errors.INTERNAL, f"route {dst} via {r.get('gw', '-')} is missing in the container")
    return cont_idx


def gateway_for(ip: dict) -> str:
    """The IPAM gateway, or the subnet's first address when IPAM gave none (as the reference)."""
    if ip.get("gateway"):
        return ip["gateway"]
    return str(ipaddress.ip_interface(ip["address"]).network.network_address + 1)


def attachment_tag(network: str, container_id: str, ifname: str) -> str:
    """A comment naming one attachment in nft rules; kept under nft's 128-byte comment limit."""
    tag = f"podnet {network} {container_id} {ifname}"
    if len(tag) > 120:
        import hashlib

        tag = "podnet " + hashlib.sha256(tag.encode()).hexdigest()
    return tag
