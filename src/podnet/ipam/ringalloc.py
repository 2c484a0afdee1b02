"""One peer's allocations on top of the ring (podnet.ipam.ring): which of its own addresses are
taken, by which handle. Only the owner of a range hands out its addresses, so allocating needs
no message to anyone; a peer with nothing free asks the peer with the most free space, which
gives part of it away (`donate`). The cluster range's network and broadcast addresses are
never handed out.

Allocation takes the lowest free address of my ranges: deterministic, and it keeps my space in
few runs, so what I can give away stays in large pieces. Costs grow with my allocations (a
sorted list), not with the size of the range.
"""

from __future__ import annotations

import bisect
import ipaddress

from .ring import Ring, RingError, ip_str


class RingAllocator:
    def __init__(self, ring: Ring, allocations: dict[str, str] | None = None) -> None:
        self.ring = ring
        self.reserved = {ring.start, ring.end - 1} if ring.end - ring.start > 2 else set()
        self.by_handle: dict[str, int] = {}
        self.used: list[int] = []  # sorted addresses taken (mine or, after a bad merge, orphans)
        for handle, ip in (allocations or {}).items():
            address = int(ipaddress.IPv4Address(ip))
            self.by_handle[handle] = address
            bisect.insort(self.used, address)

    # -- reading ---------------------------------------------------------------------------------
    def address_of(self, handle: str) -> str | None:
        address = self.by_handle.get(handle)
        return ip_str(address) if address is not None else None

    def allocations(self) -> dict[str, str]:
        return {h: ip_str(a) for h, a in sorted(self.by_handle.items())}

    def _taken_in(self, start: int, end: int) -> list[int]:
        """Taken or reserved addresses in [start, end), sorted."""
        lo, hi = bisect.bisect_left(self.used, start), bisect.bisect_left(self.used, end)
        return sorted(set(self.used[lo:hi]) | {r for r in self.reserved if start <= r < end})

    def _free_runs(self) -> list[tuple[int, int]]:
        """[start, end) runs of free addresses in my ranges."""
        runs = []
        for start, end in self.ring.ranges():
            at = start
            for taken in self._taken_in(start, end):
                if taken > at:
                    runs.append((at, taken))
                at = taken + 1
            if at < end:
                runs.append((at, end))
        return runs

    def free_count(self) -> int:
        return sum(b - a for a, b in self._free_runs())

    def orphans(self) -> dict[str, str]:
        """Allocations whose address is not in my ranges (never expected: reported by the router)."""
        return {h: ip_str(a) for h, a in self.by_handle.items() if self.ring.owner(a) != self.ring.me}

    # -- changing --------------------------------------------------------------------------------------
    def allocate(self, handle: str) -> str | None:
        """The handle's address: the one it holds, else the lowest free one of mine; None when I
        have nothing free (ask a donor)."""
        if handle in self.by_handle:
            return ip_str(self.by_handle[handle])
        runs = self._free_runs()
        if not runs:
            return None
        address = runs[0][0]
        self.by_handle[handle] = address
        bisect.insort(self.used, address)
        return ip_str(address)

    def claim(self, handle: str, ip: str) -> None:
        """Record a given address for `handle` (e.g. restoring after a restart)."""
        address = int(ipaddress.IPv4Address(ip))
        if self.ring.owner(address) != self.ring.me:
            raise RingError(f"claim: {ip} is not in a range of {self.ring.me} (owner: {self.ring.owner(address)})")
        if address in self.reserved:
            raise RingError(f"claim: {ip} is the network's network or broadcast address")
        held = self.by_handle.get(handle)
        if held == address:
            return
        i = bisect.bisect_left(self.used, address)
        if i < len(self.used) and self.used[i] == address:
            raise RingError(f"claim: {ip} is already taken")
        if held is not None:
            raise RingError(f"claim: {handle} already holds {ip_str(held)}")
        self.by_handle[handle] = address
        self.used.insert(i, address)

    def release(self, handle: str) -> bool:
        address = self.by_handle.pop(handle, None)
        if address is None:
            return False
        i = bisect.bisect_left(self.used, address)
        if i < len(self.used) and self.used[i] == address:
            del self.used[i]
        return True

    def donate(self, to: str) -> tuple[int, int] | None:
        """Give `to` the upper half (rounded up) of my largest free run; None with nothing free."""
        runs = self._free_runs()
        if not runs:
            return None
        start, end = max(runs, key=lambda r: (r[1] - r[0], -r[0]))
        give = (end - start + 1) // 2
        self.ring.give(end - give, end, to)
        return end - give, end

    def sync_free(self) -> bool:
        """My entries' free counts, as they are now, into the ring; True if any changed."""
        free = {}
        for e, end in self.ring.spans():
            if e.peer == self.ring.me:
                free[e.token] = end - e.token - len(self._taken_in(e.token, end))
        return self.ring.report_free(free)

    # -- disk -----------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"allocations": self.allocations()}

    @classmethod
    def from_dict(cls, data: dict, ring: Ring) -> "RingAllocator":
        raw = data.get("allocations", {}) if isinstance(data, dict) else None
        if not isinstance(raw, dict):
            raise RingError("allocations: must be an object of handle -> address")
        for handle, ip in raw.items():
            try:
                ipaddress.IPv4Address(ip)
            except (ValueError, TypeError):
                raise RingError(f"allocations.{handle}: {ip!r} is not an IPv4 address") from None
        if len(set(raw.values())) != len(raw):
            raise RingError("allocations: an address is held by two handles")
        return cls(ring, raw)
