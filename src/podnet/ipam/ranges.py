"""host-local range configuration: parsing, canonical defaults, and the round-robin iterator.

Semantics follow the reference host-local plugin: a range's start defaults to the address after
the network address, its end to the last address before the IPv4 broadcast (the last address for
IPv6), its gateway to the first address; the gateway is never handed out; a range set is a list
of ranges of one family, and allocation walks it round-robin from the last reserved address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from ..cni.errors import INVALID_NETWORK_CONFIG, CNIError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _bad(msg: str) -> CNIError:
    return CNIError(INVALID_NETWORK_CONFIG, msg)


def parse_ip(value: object, what: str) -> IPAddress:
    try:
        return ipaddress.ip_address(str(value).split("/")[0])
    except ValueError:
        raise _bad(f"invalid {what} {value!r}: not an IP address") from None


class Range:
    __slots__ = ("subnet", "start", "end", "gateway")

    def __init__(self, subnet: IPNetwork, start: IPAddress, end: IPAddress, gateway: IPAddress | None) -> None:
        self.subnet = subnet
        self.start = start
        self.end = end
        self.gateway = gateway

    @classmethod
    def parse(cls, raw: dict) -> "Range":
        if not isinstance(raw, dict) or "subnet" not in raw:
            raise _bad("range is missing 'subnet'")
        try:
            subnet = ipaddress.ip_network(str(raw["subnet"]), strict=False)
        except ValueError:
            raise _bad(f"invalid subnet {raw['subnet']!r}") from None
        if subnet.max_prefixlen - subnet.prefixlen < 2:
            raise _bad(f"Network {subnet} too small to allocate from")
        last = subnet.broadcast_address - 1 if subnet.version == 4 else subnet.broadcast_address
        start = parse_ip(raw["rangeStart"], "rangeStart") if raw.get("rangeStart") else subnet.network_address + 1
        end = parse_ip(raw["rangeEnd"], "rangeEnd") if raw.get("rangeEnd") else last
        gateway = parse_ip(raw["gateway"], "gateway") if raw.get("gateway") else subnet.network_address + 1
        for name, ip in (("RangeStart", start), ("RangeEnd", end)):
            if ip.version != subnet.version or ip not in subnet:
                raise _bad(f"{name} {ip} not in network {subnet}")
        if start > end:
            raise _bad(f"RangeStart {start} is after RangeEnd {end}")
        if gateway.version != subnet.version:
            raise _bad(f"gateway {gateway} is not in the family of {subnet}")
        return cls(subnet, start, end, gateway)

    def __contains__(self, ip: IPAddress) -> bool:
        return ip.version == self.start.version and self.start <= ip <= self.end

    def __str__(self) -> str:
        return f"{self.start}-{self.end}"

    def overlaps(self, other: "Range") -> bool:
        return self.start.version == other.start.version and self.start <= other.end and other.start <= self.end


class RangeSet(list):
    """A list of ranges of one address family; one address is allocated from each set."""

    @classmethod
    def parse(cls, raw: list) -> "RangeSet":
        if not isinstance(raw, list) or not raw:
            raise _bad("empty range set")
        ranges = cls(Range.parse(r) for r in raw)
        if len({r.subnet.version for r in ranges}) > 1:
            raise _bad("mixed address families in one range set")
        for i, a in enumerate(ranges):
            for b in ranges[i + 1:]:
                if a.overlaps(b):
                    raise _bad(f"subnets {a.subnet} and {b.subnet} overlap")
        return ranges

    def range_for(self, ip: IPAddress) -> Range | None:
        for r in self:
            if ip in r:
                return r
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self)

    def overlaps(self, other: "RangeSet") -> bool:
        return any(a.overlaps(b) for a in self for b in other)

    def candidates(self, last_reserved: IPAddress | None) -> Iterator[tuple[IPAddress, Range]]:
        """Every allocatable address once, starting after `last_reserved` when it is in the set."""
        start_idx, cursor = 0, None
        if last_reserved is not None:
            for i, r in enumerate(self):
                if last_reserved in r:
                    start_idx, cursor = i, last_reserved
                    break
        n = len(self)
        # Walk from the cursor to the end of its range, through the other ranges, then wrap
        # around to the part of the first range that lies before the cursor.
        for step in range(n + 1):
            r = self[(start_idx + step) % n]
            if step == 0:
                lo = int(cursor) + 1 if cursor is not None else int(r.start)
                hi = int(r.end)
            elif step == n:
                if cursor is None:
                    return
                lo, hi = int(r.start), int(cursor)
            else:
                lo, hi = int(r.start), int(r.end)
            make = type(r.start)
            for value in range(lo, hi + 1):
                ip = make(value)
                if ip != r.gateway:
                    yield ip, r
