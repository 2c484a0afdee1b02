"""host-local IPAM: configuration, allocation, release and garbage collection.

Pure file-based logic, shared by the `host-local` plugin executable and, in-process, by the
plugins that delegate to it (saving a second interpreter start on the ADD path).
"""

from __future__ import annotations

import ipaddress

from ..cni.errors import INTERNAL, INVALID_NETWORK_CONFIG, CNIError
from .ranges import IPAddress, RangeSet, parse_ip
from .store import DEFAULT_DATA_DIR, Store


class IPAMConfig:
    __slots__ = ("network", "range_sets", "routes", "data_dir", "resolv_conf", "requested")

    def __init__(self, network: str, range_sets: list[RangeSet], routes: list[dict], data_dir: str,
                 resolv_conf: str, requested: list[IPAddress]) -> None:
        self.network = network
        self.range_sets = range_sets
        self.routes = routes
        self.data_dir = data_dir
        self.resolv_conf = resolv_conf
        self.requested = requested

    @classmethod
    def from_conf(cls, conf: dict, cni_args: dict | None = None) -> "IPAMConfig":
        ipam = conf.get("ipam")
        if not isinstance(ipam, dict):
            raise CNIError(INVALID_NETWORK_CONFIG, "IPAM config missing 'ipam' key")
        raw_sets = ipam.get("ranges")
        if raw_sets is None:
            legacy = {k: ipam[k] for k in ("subnet", "rangeStart", "rangeEnd", "gateway") if ipam.get(k)}
            raw_sets = [[legacy]] if legacy else []
        if not isinstance(raw_sets, list) or not raw_sets:
            raise CNIError(INVALID_NETWORK_CONFIG, "no IP ranges specified")
        sets = [RangeSet.parse(s) for s in raw_sets]
        for i, a in enumerate(sets):
            for j in range(i + 1, len(sets)):
                if a.overlaps(sets[j]):
                    raise CNIError(INVALID_NETWORK_CONFIG, f"range set {i} overlaps with {j}")
        routes = ipam.get("routes") or []
        for r in routes:
            if not isinstance(r, dict) or "dst" not in r:
                raise CNIError(INVALID_NETWORK_CONFIG, f"invalid route {r!r}: 'dst' is required")
            try:
                ipaddress.ip_network(r["dst"], strict=False)
                if r.get("gw"):
                    ipaddress.ip_address(r["gw"])
            except ValueError as e:
                raise CNIError(INVALID_NETWORK_CONFIG, f"invalid route {r!r}: {e}") from None
        requested: list[IPAddress] = []
        if cni_args and cni_args.get("IP"):
            requested += [parse_ip(v, "IP in CNI_ARGS") for v in cni_args["IP"].split(",") if v]
        for source in ((conf.get("runtimeConfig") or {}).get("ips"), ((conf.get("args") or {}).get("cni") or {}).get("ips")):
            requested += [parse_ip(v, "requested ip") for v in (source or [])]
        return cls(
            network=conf["name"],
            range_sets=sets,
            routes=[dict(r) for r in routes],
            data_dir=ipam.get("dataDir") or DEFAULT_DATA_DIR,
            resolv_conf=ipam.get("resolvConf") or "",
            requested=requested,
        )


def parse_resolv_conf(path: str) -> dict:
    """nameserver/domain/search/options lines into the result's dns object."""
    dns: dict = {}
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise CNIError(INTERNAL, f"could not read resolvConf {path}: {e}") from None
    for line in lines:
        words = line.split("#")[0].split()
        if len(words) < 2:
            continue
        key, values = words[0], words[1:]
        if key == "nameserver":
            dns.setdefault("nameservers", []).append(values[0])
        elif key == "domain":
            dns["domain"] = values[0]
        elif key == "search":
            dns["search"] = values
        elif key == "options":
            dns.setdefault("options", []).extend(values)
    return dns


def allocate(cfg: IPAMConfig, container_id: str, ifname: str) -> dict:
    """Reserve one address per range set; return the IPAM result (1.1.0 layout)."""
    ips: list[dict] = []
    with Store(cfg.data_dir, cfg.network) as store:
        taken: list[tuple[str, int]] = []
        pending = list(cfg.requested)
        try:
            held = store.by_attachment(container_id, ifname)
            for idx, rset in enumerate(cfg.range_sets):
                for ip in held:
                    if rset.range_for(ipaddress.ip_address(ip)):
                        raise CNIError(INTERNAL, f"failed to allocate for range {idx}: {ip} has been allocated to {container_id}, duplicate allocation is not allowed")
                wanted = next((ip for ip in pending if rset.range_for(ip)), None)
                if wanted is not None:
                    pending.remove(wanted)
                ip, rng = _allocate_one(store, rset, idx, container_id, ifname, wanted)
                taken.append((str(ip), idx))
                entry = {"address": f"{ip}/{rng.subnet.prefixlen}"}
                if rng.gateway is not None:
                    entry["gateway"] = str(rng.gateway)
                ips.append(entry)
            if pending:
                raise CNIError(INTERNAL, "failed to allocate all requested IPs: " + " ".join(map(str, pending)))
        except BaseException:
            for ip, _ in taken:
                store.release(ip)
            raise
    result: dict = {"cniVersion": "1.1.0", "ips": ips}
    if cfg.routes:
        result["routes"] = cfg.routes
    result["dns"] = parse_resolv_conf(cfg.resolv_conf) if cfg.resolv_conf else {}
    return result


def _allocate_one(store: Store, rset: RangeSet, idx: int, container_id: str, ifname: str, wanted: IPAddress | None):
    if wanted is not None:
        rng = rset.range_for(wanted)
        if wanted == rng.gateway:
            raise CNIError(INTERNAL, f"failed to allocate for range {idx}: requested ip {wanted} is subnet's gateway")
        if not store.reserve(container_id, ifname, str(wanted), idx):
            raise CNIError(INTERNAL, f"failed to allocate for range {idx}: requested IP address {wanted} is not available in range set {rset}")
        return wanted, rng
    last = store.last_reserved(idx)
    try:
        last_ip = ipaddress.ip_address(last) if last else None
    except ValueError:
        last_ip = None  # a corrupt marker only costs round-robin order once, as in the reference
    for ip, rng in rset.candidates(last_ip):
        if store.reserve(container_id, ifname, str(ip), idx):
            return ip, rng
    raise CNIError(INTERNAL, f"failed to allocate for range {idx}: no IP addresses available in range set: {rset}")


def release(cfg: IPAMConfig, container_id: str, ifname: str) -> list[str]:
    with Store(cfg.data_dir, cfg.network) as store:
        return store.release_attachment(container_id, ifname)


def collect_garbage(cfg: IPAMConfig, valid: list[dict]) -> list[str]:
    """Release every allocation whose (containerID, ifname) is not in `valid`."""
    keep = {(a.get("containerID", ""), a.get("ifname", "")) for a in valid}
    keep_ids = {cid for cid, _ in keep}
    released = []
    with Store(cfg.data_dir, cfg.network) as store:
        for ip, cid, ifname in list(store.allocations()):
            legacy_ok = ifname == "" and cid in keep_ids
            if (cid, ifname) not in keep and not legacy_ok:
                store.release(ip)
                released.append(ip)
    return released
