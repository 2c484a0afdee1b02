"""The records of the Kubernetes DNS specification 1.0.1, built from Services and EndpointSlices.

Pure: objects in, an index out. Names are lowercase with a trailing dot; lookups are
case-insensitive. The index also knows every name that exists without records of its own
(`default.svc.cluster.local.`...), so the server can tell NODATA from NXDOMAIN.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

SCHEMA_VERSION = "1.0.1"
TTL = 5


@dataclass(frozen=True)
class RR:
    name: str
    rtype: str       # A, SRV, PTR, CNAME, TXT
    data: tuple      # A: (ip,)  SRV: (priority, weight, port, target)  PTR/CNAME: (target,)  TXT: (text,)


@dataclass
class Index:
    zone: str
    records: dict[str, list[RR]] = field(default_factory=dict)
    names: set[str] = field(default_factory=set)   # every existing name, including empty non-terminals
    skipped: list[str] = field(default_factory=list)  # services too malformed to index, and why

    def add(self, rr: RR) -> None:
        self.records.setdefault(rr.name, []).append(rr)
        name = rr.name
        while name and name != ".":
            self.names.add(name)
            name = name.split(".", 1)[1] if "." in name[:-1] else "."

    def lookup(self, qname: str) -> tuple[str, list[RR]]:
        """('ok', records) or ('nxdomain', []); records may be empty (NODATA)."""
        name = qname.lower().rstrip(".") + "."
        if name in self.records:
            return "ok", self.records[name]
        if name in self.names:
            return "ok", []
        pod = self._pod_record(name)
        if pod is not None:
            return "ok", [pod]
        return "nxdomain", []

    def _pod_record(self, name: str) -> RR | None:
        """<a>-<b>-<c>-<d>.<ns>.pod.<zone> -> a.b.c.d, for any values (section 2.6)."""
        suffix = f".pod.{self.zone}"
        if not name.endswith(suffix):
            return None
        labels = name[: -len(suffix)].split(".")
        if len(labels) != 2:
            return None
        parts = labels[0].split("-")
        if len(parts) != 4 or not all(p.isdigit() and int(p) < 256 for p in parts):
            return None
        return RR(name, "A", (".".join(str(int(p)) for p in parts),))

    def in_zone(self, qname: str) -> bool:
        name = qname.lower().rstrip(".") + "."
        return name == self.zone or name.endswith("." + self.zone) or self._reverse_owned(name)

    def _reverse_owned(self, name: str) -> bool:
        return name.endswith(".in-addr.arpa.") and name in self.records


def reverse_name(ip: str) -> str:
    return ipaddress.ip_address(ip).reverse_pointer + "."


def build(services: list[dict], slices: dict[tuple[str, str], dict], zone: str = "cluster.local") -> Index:
    """The index of every service's records. A service (or its slices) too malformed to read
    is left out and named in `Index.skipped`; it never stops the others from resolving."""
    zone = zone.lower().rstrip(".") + "."
    idx = Index(zone)
    idx.add(RR(f"dns-version.{zone}", "TXT", (SCHEMA_VERSION,)))
    for svc in services:
        try:
            names, rrs = _service_records(svc, slices, zone)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            idx.skipped.append(f"{_ident(svc)}: {e.__class__.__name__}: {e}")
            continue
        idx.names.update(names)
        for rr in rrs:
            idx.add(rr)
    for rrs in idx.records.values():  # deterministic answers, no duplicates
        unique = list(dict.fromkeys(rrs))
        rrs[:] = unique
    return idx


def _ident(svc: object) -> str:
    try:
        return f"{svc['metadata']['namespace']}/{svc['metadata']['name']}"  # type: ignore[index]
    except (KeyError, TypeError):
        return "a service without namespace/name"


def _service_records(svc: dict, slices: dict[tuple[str, str], dict], zone: str) -> tuple[list[str], list[RR]]:
    ns, name = svc["metadata"]["namespace"].lower(), svc["metadata"]["name"].lower()
    spec = svc["spec"]
    fqdn = f"{name}.{ns}.svc.{zone}"
    names = [fqdn, f"{ns}.svc.{zone}"]
    out: list[RR] = []
    if spec["type"] == "ExternalName":
        return names, [RR(fqdn, "CNAME", (spec["externalName"].rstrip(".") + ".",))]
    named = [p for p in spec.get("ports", []) if p.get("name")]
    if spec.get("clusterIP") not in (None, "", "None"):
        ip = str(ipaddress.IPv4Address(spec["clusterIP"]))
        out.append(RR(fqdn, "A", (ip,)))
        out.append(RR(reverse_name(ip), "PTR", (fqdn,)))
        for p in named:
            out.append(RR(f"_{p['name']}._{p['protocol'].lower()}.{fqdn}", "SRV", (0, 100, int(p["port"]), fqdn)))
        return names, out
    # headless: the ready endpoints themselves; a terminating one (ready False, even while
    # still serving) is gone from DNS. ready absent or null (unknown) counts as ready, as in
    # CoreDNS: a slice stored before the conditions existed still resolves.
    for sl in (slices.get((ns, name)) or {}).get("items", []):
        for ep in sl.get("endpoints", []):
            ready = (ep.get("conditions") or {}).get("ready")
            if ready is not None and not ready:
                continue
            for addr in ep.get("addresses", []):
                addr = str(ipaddress.IPv4Address(addr))
                host = (ep.get("hostname") or addr.replace(".", "-")).lower()
                target = f"{host}.{fqdn}"
                out.append(RR(fqdn, "A", (addr,)))
                out.append(RR(target, "A", (addr,)))
                out.append(RR(reverse_name(addr), "PTR", (target,)))
                for p in named:
                    port = next((sp["port"] for sp in sl.get("ports", []) if sp.get("name") == p["name"]), None)
                    if port is not None:
                        out.append(RR(f"_{p['name']}._{p['protocol'].lower()}.{fqdn}", "SRV", (0, 100, int(port), target)))
    return names, out


def is_headless_without_endpoints(idx: Index, qname: str) -> bool:
    """The spec wants NXDOMAIN for a headless service with no ready endpoints."""
    name = qname.lower().rstrip(".") + "."
    return name.endswith(".svc." + idx.zone) and name.count(".") == len(idx.zone.split(".")) + 2 and \
        name in idx.names and name not in idx.records
