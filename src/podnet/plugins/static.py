"""The `static` IPAM plugin, as the reference's: the addresses are given, nothing is stored.

    "ipam": {"type": "static",
             "addresses": [{"address": "10.10.0.1/24", "gateway": "10.10.0.254"}],
             "routes": [{"dst": "0.0.0.0/0"}], "dns": {"nameservers": ["10.10.0.1"]}}

Addresses may also come from CNI_ARGS (`IP=10.10.0.1/24,...`), from `args.cni.ips` and from
the `ips` capability (runtimeConfig), which add to the config's list as in the reference.
The podnet agent's routed mode uses it to hand the routed plugin the address it took from an
IP pool block. DEL and CHECK have nothing to do: the addresses were never recorded.
"""

from __future__ import annotations

import ipaddress

from ..cni import errors, schema
from ..cni.errors import CNIError
from ..cni.skel import CmdArgs, Plugin, main as skel_main


def _address(raw: object, where: str) -> dict:
    if isinstance(raw, str):
        raw = {"address": raw}
    if not isinstance(raw, dict) or not isinstance(raw.get("address"), str):
        raise CNIError(errors.INVALID_NETWORK_CONFIG, f"{where}: an address needs \"address\" in CIDR notation")
    try:
        iface = ipaddress.ip_interface(raw["address"])
        if "/" not in raw["address"]:
            raise ValueError("no prefix length")
    except ValueError as e:
        raise CNIError(errors.INVALID_NETWORK_CONFIG, f"{where}: invalid address {raw['address']!r}: {e}") from None
    out = {"address": str(iface)}
    if raw.get("gateway"):
        try:
            gw = ipaddress.ip_address(raw["gateway"])
        except ValueError:
            raise CNIError(errors.INVALID_NETWORK_CONFIG, f"{where}: invalid gateway {raw['gateway']!r}") from None
        if gw.version != iface.version:
            raise CNIError(errors.INVALID_NETWORK_CONFIG, f"{where}: gateway {gw} is not of the address's family")
        out["gateway"] = str(gw)
    return out


def addresses(args: CmdArgs) -> list[dict]:
    ipam = args.conf.get("ipam") or {}
    out = [_address(a, f"ipam.addresses[{i}]") for i, a in enumerate(ipam.get("addresses") or [])]
    env_ips = args.args_dict().get("IP", "")
    out += [_address(a, "CNI_ARGS IP") for a in env_ips.split(",") if a]
    cni_args = ((args.conf.get("args") or {}).get("cni") or {}) if isinstance(args.conf.get("args"), dict) else {}
    out += [_address(a, "args.cni.ips") for a in cni_args.get("ips") or []]
    runtime = args.conf.get("runtimeConfig") or {}
    out += [_address(a, "runtimeConfig.ips") for a in (runtime.get("ips") if isinstance(runtime, dict) else None) or []]
    return out


def add(args: CmdArgs) -> dict:
    ips = addresses(args)
    if not ips:
        raise CNIError(errors.INVALID_NETWORK_CONFIG, "static: no addresses given (ipam.addresses, CNI_ARGS IP, "
                                                      "args.cni.ips or runtimeConfig.ips)")
    ipam = args.conf.get("ipam") or {}
    result = {"cniVersion": "1.1.0", "ips": ips}
    if ipam.get("routes"):
        result["routes"] = list(ipam["routes"])
    if ipam.get("dns"):
        result["dns"] = dict(ipam["dns"])
    return result


def check(args: CmdArgs) -> None:
    addresses(args)  # a config that would not ADD does not CHECK either


PLUGIN = Plugin(name="static", add=add, delete=lambda a: None, check=check, gc=lambda a: None, status=lambda a: None,
                schema=schema.netconf(ipam={**schema.IPAM, "addresses": [{"address": str, "gateway": str}],
                                            "dns": schema.DNS}))


def main() -> None:
    skel_main(PLUGIN)


if __name__ == "__main__":
    main()
