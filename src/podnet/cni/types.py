"""CNI results as plain dicts, and their conversion between spec versions as libcni does it.

Internally a result is held in the 1.1.0 layout: interfaces, ips (address, gateway, interface
index), routes (dst, gw and the 1.1.0 fields mtu/advmss/priority/table/scope) and dns.
"""

from __future__ import annotations

from .errors import DECODING_FAILURE, INCOMPATIBLE_VERSION, CNIError
from .version import CURRENT, SUPPORTED, parse, result_family

ROUTE_FIELDS_110 = ("mtu", "advmss", "priority", "table", "scope")
INTERFACE_FIELDS_110 = ("mtu", "socketPath", "pciID")


def _clone(obj):
    """Deep copy of JSON-shaped data (`copy` costs plugin executables ~2 ms to import)."""
    if isinstance(obj, dict):
        return {k: _clone(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clone(v) for v in obj]
    return obj


def ip_family(address: str) -> str:
    """'4' or '6' for an address with or without a prefix length."""
    return "6" if ":" in address else "4"


def _check_version(version: str) -> None:
    if version not in SUPPORTED:
        raise CNIError(INCOMPATIBLE_VERSION, f"unsupported CNI result version {version!r}")


def to_current(result: dict) -> dict:
    """Any supported result version in, the 1.1.0 layout out (cniVersion set to 1.1.0)."""
    if not isinstance(result, dict):
        raise CNIError(DECODING_FAILURE, "result is not a JSON object")
    version = result.get("cniVersion", "0.1.0")
    _check_version(version)
    if result_family(version) == "020":
        ips, routes = [], []
        for key in ("ip4", "ip6"):
            block = result.get(key)
            if not block:
                continue
            ip = {"address": block["ip"]}
            if block.get("gateway"):
                ip["gateway"] = block["gateway"]
            ips.append(ip)
            routes.extend(_clone(block.get("routes") or []))
        out = {"cniVersion": CURRENT, "ips": ips}
        if routes:
            out["routes"] = routes
        out["dns"] = _clone(result.get("dns") or {})
        return out
    out = {"cniVersion": CURRENT}
    if result.get("interfaces"):
        out["interfaces"] = _clone(result["interfaces"])
    ips = []
    for ip in result.get("ips") or []:
        ip = {k: v for k, v in ip.items() if k != "version"}
        ips.append(ip)
    if ips:
        out["ips"] = ips
    if result.get("routes"):
        out["routes"] = _clone(result["routes"])
    out["dns"] = _clone(result.get("dns") or {})
    return out


def convert(result: dict, target: str) -> dict:
    """Convert a result of any supported version to `target`, as libcni's converters do."""
    _check_version(target)
    cur = to_current(result)
    family = result_family(target)
    if family == "020":
        return _to_020(cur, target)
    out: dict = {"cniVersion": target}
    below_110 = parse(target) < (1, 1, 0)
    if cur.get("interfaces"):
        out["interfaces"] = [
            {k: v for k, v in i.items() if not (below_110 and k in INTERFACE_FIELDS_110)} for i in cur["interfaces"]
        ]
    if cur.get("ips"):
        ips = []
        for ip in cur["ips"]:
            ip = dict(ip)
            if family == "040":
                ip = {"version": ip_family(ip["address"]), **ip}
            ips.append(ip)
        out["ips"] = ips
    if cur.get("routes"):
        out["routes"] = [
            {k: v for k, v in r.items() if not (below_110 and k in ROUTE_FIELDS_110)} for r in cur["routes"]
        ]
    out["dns"] = cur.get("dns") or {}
    return out


def _to_020(cur: dict, target: str) -> dict:
    out: dict = {"cniVersion": target}
    for ip in cur.get("ips") or []:
        key = "ip6" if ip_family(ip["address"]) == "6" else "ip4"
        if key in out:
            continue  # 0.2.0 holds one address per family: the first one wins, as in libcni
        block = {"ip": ip["address"]}
        if ip.get("gateway"):
            block["gateway"] = ip["gateway"]
        out[key] = block
    if "ip4" not in out and "ip6" not in out:
        raise CNIError(INCOMPATIBLE_VERSION, "cannot convert: no valid IP addresses")
    for route in cur.get("routes") or []:
        key = "ip6" if ip_family(route["dst"]) == "6" else "ip4"
        if key in out:
            r = {"dst": route["dst"]}
            if route.get("gw"):
                r["gw"] = route["gw"]
            out[key].setdefault("routes", []).append(r)
    out["dns"] = cur.get("dns") or {}
    return out
