"""Weave's ring: the cluster range divided among peers, with no consensus on each allocation.

The ring is a map token -> Entry: a token is the first address of a range, which runs to the
next token (the last to the end of the cluster range); the entry says which peer owns it, at
which version, and how many of its addresses were free when the owner last said so. Only an
owner changes its entries (giving a range away, reporting its free count), and every change
bumps the entry's version; peers merge what they hear by keeping, per token, the higher
version. That is a join of a map of versioned registers, so merging is commutative,
associative and idempotent, and peers that have heard the same changes hold the same ring,
whatever the order. Tokens are never removed.

Because a range changes hands only by its owner's act, no address is ever owned by two peers,
not even across a partition: each side can only give away what it owns. The ring starts with a
`seed`: the initial peers split the range the same way without talking (Weave's
`--ipalloc-init seed=`). A peer that is gone for good is removed by `reclaim` (`rmpeer`) on a
live peer, which takes its ranges.

A merge that would break the rules is refused with RingError: two different entries for one
token at the same version, someone else changing an entry of mine, or a token inside a range I
own that I did not make (someone splitting my range).

See weaveworks/weave `ipam/ring` and `docs/ipam.md` for the design this follows.
"""

from __future__ import annotations

import bisect
import ipaddress
from dataclasses import dataclass, replace


class RingError(ValueError):
    pass


@dataclass(frozen=True, order=True)
class Entry:
    token: int      # the first address of the range this entry starts
    peer: str       # its owner
    version: int
    free: int       # free addresses in the range, as its owner last said (a hint for donor choice)


def ip_str(value: int) -> str:
    return str(ipaddress.IPv4Address(value))


def join(a: list[Entry], b: list[Entry]) -> list[Entry]:
    """The join of two rings' entries: per token, the entry with the higher version (equal
    versions are the same entry in a consistent cluster; the higher one is kept so the join
    stays a join even then)."""
    out = {e.token: e for e in a}
    for e in b:
        have = out.get(e.token)
        if have is None or (e.version, e.peer, e.free) > (have.version, have.peer, have.free):
            out[e.token] = e
    return sorted(out.values())


class Ring:
    def __init__(self, cidr: str, me: str) -> None:
        net = ipaddress.IPv4Network(cidr, strict=True)
        self.cidr = str(net)
        self.start = int(net.network_address)
        self.end = self.start + net.num_addresses
        self.me = me
        self.entries: list[Entry] = []

    # -- reading ---------------------------------------------------------------------------------
    def is_empty(self) -> bool:
        return not self.entries

    def _tokens(self) -> list[int]:
        return [e.token for e in self.entries]

    def _index(self, token: int) -> int | None:
        i = bisect.bisect_left(self._tokens(), token)
        return i if i < len(self.entries) and self.entries[i].token == token else None

    def _end_of(self, i: int) -> int:
        return self.entries[i + 1].token if i + 1 < len(self.entries) else self.end

    def _containing(self, address: int) -> int | None:
        """Index of the entry whose range holds `address`."""
        if not self.entries or not self.start <= address < self.end:
            return None
        i = bisect.bisect_right(self._tokens(), address) - 1
        return i if i >= 0 else None

    def owner(self, ip: int | str | ipaddress.IPv4Address) -> str | None:
        address = ip if isinstance(ip, int) else int(ipaddress.IPv4Address(ip))
        i = self._containing(address)
        return self.entries[i].peer if i is not None else None

    def ranges(self, peer: str | None = None) -> list[tuple[int, int]]:
        """[start, end) of the ranges `peer` (me by default) owns, adjacent ones joined."""
        peer = self.me if peer is None else peer
        out: list[tuple[int, int]] = []
        for i, e in enumerate(self.entries):
            if e.peer != peer:
                continue
            a, b = e.token, self._end_of(i)
            if out and out[-1][1] == a:
                out[-1] = (out[-1][0], b)
            else:
                out.append((a, b))
        return out

    def spans(self) -> list[tuple[Entry, int]]:
        """Every entry with the end of its range."""
        return [(e, self._end_of(i)) for i, e in enumerate(self.entries)]

    def shares(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e, end in self.spans():
            out[e.peer] = out.get(e.peer, 0) + end - e.token
        return out

    def free_of(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.entries:
            out[e.peer] = out.get(e.peer, 0) + e.free
        return out

    def donor(self, exclude: set[str] | frozenset[str] = frozenset()) -> str | None:
        """The peer other than me (and not excluded) with the most free addresses."""
        candidates = [(-free, peer) for peer, free in self.free_of().items()
                      if peer != self.me and peer not in exclude and free > 0]
        return min(candidates)[1] if candidates else None

    # -- changing (only what is mine) -----------------------------------------------------------------
    def seed(self, peers: list[str]) -> None:
        """The initial split among `peers`, computed alike by each of them."""
        names = sorted(set(peers))
        if not names:
            raise RingError("seed: no peers given")
        size, n = self.end - self.start, len(names)
        if size < n:
            raise RingError(f"seed: {self.cidr} has fewer addresses than the {n} seed peers")
        seeded, at = [], self.start
        for i, name in enumerate(names):
            part = size // n + (1 if i < size % n else 0)
            seeded.append(Entry(at, name, 0, part))
            at += part
        if self.entries and self.entries != seeded:
            raise RingError(f"seed: the ring of {self.cidr} is already initialised differently")
        self.entries = seeded

    def _split(self, at: int) -> None:
        """A token at `at` (inside a range of mine) if there is none: the range is cut in two."""
        if at >= self.end or self._index(at) is not None:
            return
        i = self._containing(at)
        if i is None:
            raise RingError(f"{ip_str(at)} is outside {self.cidr} or the ring is empty")
        e = self.entries[i]
        if e.peer != self.me:
            raise RingError(f"{ip_str(at)} is in a range of {e.peer}, not of {self.me}")
        self.entries.insert(i + 1, Entry(at, self.me, e.version + 1, 0))
        self.entries[i] = replace(e, version=e.version + 1)

    def give(self, start: int, end: int, to: str) -> None:
        """Hand [start, end), entirely mine, to `to`."""
        if not self.start <= start < end <= self.end:
            raise RingError(f"give: [{ip_str(start)}, {ip_str(end)}) is not a range inside {self.cidr}")
        for a, b in self._overlapping(start, end):
            if a.peer != self.me:
                raise RingError(f"give: {ip_str(max(a.token, start))} belongs to {a.peer}, not to {self.me}")
        self._split(start)
        self._split(end)
        for i, e in enumerate(self.entries):
            if start <= e.token < end:
                self.entries[i] = Entry(e.token, to, e.version + 1, self._end_of(i) - e.token)

    def _overlapping(self, start: int, end: int) -> list[tuple[Entry, int]]:
        out = [(e, b) for e, b in self.spans() if e.token < end and b > start]
        covered = sum(min(b, end) - max(e.token, start) for e, b in out)
        if covered != end - start:
            raise RingError(f"[{ip_str(start)}, {ip_str(end)}) is not all in the ring yet")
        return out

    def report_free(self, free: dict[int, int]) -> bool:
        """My entries' free counts (token -> free); True if any changed."""
        changed = False
        for i, e in enumerate(self.entries):
            if e.peer == self.me and e.token in free and free[e.token] != e.free:
                self.entries[i] = replace(e, free=free[e.token], version=e.version + 1)
                changed = True
        return changed

    def reclaim(self, dead: str) -> int:
        """rmpeer: me takes every range `dead` owns; the number of addresses taken."""
        if dead == self.me:
            raise RingError(f"rmpeer: {self.me} cannot reclaim its own space")
        taken = 0
        for i, e in enumerate(self.entries):
            if e.peer == dead:
                taken += self._end_of(i) - e.token
                self.entries[i] = replace(e, peer=self.me, version=e.version + 1)
        return taken

    # -- merging -----------------------------------------------------------------------------------
    def merge(self, other: "Ring") -> bool:
        """Take what `other` knows that is newer; True if this ring changed."""
        if other.cidr != self.cidr:
            raise RingError(f"merge: a ring of {other.cidr} cannot merge into one of {self.cidr}")
        self._check(other)
        entries = join(self.entries, other.entries)
        if entries and entries[0].token != self.start:
            raise RingError(f"merge: the ring of {self.cidr} would not start at {ip_str(self.start)}")
        changed = entries != self.entries
        self.entries = entries
        return changed

    def _check(self, other: "Ring") -> None:
        """What no one but me may do to my entries, and two writers of one version."""
        mine = {e.token: e for e in self.entries}
        for theirs in other.entries:
            have = mine.get(theirs.token)
            if have is None:
                i = self._containing(theirs.token)
                if i is not None and self.entries[i].peer == self.me and theirs.peer != self.me:
                    raise RingError(f"merge: a token at {ip_str(theirs.token)} ({theirs.peer}) splits a range of mine "
                                    f"({self.me})")
            elif theirs.version > have.version and have.peer == self.me:
                raise RingError(f"merge: entry {ip_str(theirs.token)} is mine ({self.me}, version {have.version}); "
                                f"someone made it {theirs.peer} at version {theirs.version}")
            elif theirs.version == have.version and theirs != have:
                raise RingError(f"merge: two entries for {ip_str(theirs.token)} at version {have.version}: "
                                f"{have.peer} ({have.free} free) and {theirs.peer} ({theirs.free} free)")

    # -- wire and disk ---------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"cidr": self.cidr, "entries": [[ip_str(e.token), e.peer, e.version, e.free] for e in self.entries]}

    @classmethod
    def from_dict(cls, data: dict, me: str) -> "Ring":
        if not isinstance(data, dict):
            raise RingError("ring: must be an object with cidr and entries")
        try:
            ring = cls(data.get("cidr"), me)
        except (ValueError, TypeError) as e:
            raise RingError(f"ring.cidr: {e}") from None
        raw = data.get("entries", [])
        if not isinstance(raw, list):
            raise RingError("ring.entries: must be a list")
        entries = []
        for i, item in enumerate(raw):
            try:
                token, peer, version, free = item
                e = Entry(int(ipaddress.IPv4Address(token)), peer, version, free)
            except (ValueError, TypeError) as err:
                raise RingError(f"ring.entries[{i}]: want [first address, peer, version, free], not {item!r} ({err})") from None
            if not isinstance(peer, str) or not peer or not isinstance(version, int) or not isinstance(free, int) \
                    or version < 0 or free < 0 or not ring.start <= e.token < ring.end:
                raise RingError(f"ring.entries[{i}]: {item!r} is not a valid entry of {ring.cidr}")
            entries.append(e)
        entries.sort()
        if len({e.token for e in entries}) != len(entries):
            raise RingError("ring.entries: a token appears twice")
        if entries and entries[0].token != ring.start:
            raise RingError(f"ring.entries: the first token must be {ip_str(ring.start)}")
        ring.entries = entries
        return ring
