"""Weave's ring (podnet.ipam.ring) and one peer's allocations on it (podnet.ipam.ringalloc):
unit cases, then properties over random histories of many peers: the merge is a join
(commutative, associative, idempotent), no address is ever claimed by two peers or allocated
twice, including across a partition and its healing, and the whole range stays owned."""

from __future__ import annotations

import copy
import ipaddress
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podnet.ipam.ring import Entry, Ring, RingError, join
from podnet.ipam.ringalloc import RingAllocator

CIDR = "10.244.0.0/24"
START = int(ipaddress.IPv4Address("10.244.0.0"))
EXAMPLES = int(os.environ.get("PODNET_FUZZ", "0") or 0) or 150


def seeded(me: str, peers=("a", "b", "c"), cidr=CIDR) -> Ring:
    r = Ring(cidr, me)
    r.seed(list(peers))
    return r


# -- units -------------------------------------------------------------------------------------------
def test_seed_splits_alike_on_every_peer_and_covers_the_range():
    a, b, observer = seeded("a"), seeded("b"), seeded("z")
    assert a.entries == b.entries == observer.entries
    assert a.shares() == {"a": 86, "b": 85, "c": 85}  # 256 split as evenly as it goes, in name order
    assert a.ranges("b") == [(START + 86, START + 171)]
    assert not a.merge(b)  # the same ring: nothing to take
    one = seeded("a", peers=("a",))
    assert one.ranges() == [(START, START + 256)]
    with pytest.raises(RingError, match="already initialised"):
        seeded("a").seed(["a", "b"])
    with pytest.raises(RingError, match="fewer addresses"):
        Ring("10.0.0.0/31", "a").seed(["a", "b", "c"])


def test_give_and_merge_move_a_range():
    a, b = seeded("a"), seeded("b")
    a.give(START + 40, START + 86, "b")
    assert a.owner("10.244.0.40") == "b" and a.owner("10.244.0.39") == "a"
    assert b.merge(a) and b.ranges() == [(START + 40, START + 171)]
    assert a.merge(b) is False
    with pytest.raises(RingError, match="belongs to b"):
        a.give(START + 30, START + 50, "c")


def test_reclaim_takes_a_dead_peers_ranges_and_the_dead_cannot_come_back_with_its_old_ring():
    a, c_old = seeded("a"), seeded("c")
    assert a.reclaim("c") == 85
    assert a.ranges() == [(START, START + 86), (START + 171, START + 256)]
    b = seeded("b")
    assert b.merge(a) and b.owner(START + 200) == "a"
    with pytest.raises(RingError, match="is mine"):
        c_old.merge(a)  # c was removed: it must start afresh, not with its old ring
    with pytest.raises(RingError):
        a.reclaim("a")


def test_merge_refuses_forgeries():
    a, b = seeded("a"), seeded("b")
    forged = copy.deepcopy(b)
    forged.entries[0] = Entry(START, "b", 5, 0)  # a's first range, claimed by b
    with pytest.raises(RingError, match="is mine"):
        a.merge(forged)
    split = copy.deepcopy(b)
    split.entries.insert(1, Entry(START + 10, "b", 0, 0))  # a token cutting a's range
    with pytest.raises(RingError, match="splits a range of mine"):
        a.merge(split)
    twin = copy.deepcopy(b)
    twin.entries[2] = Entry(START + 171, "c", 0, 3)  # same token and version, other content
    with pytest.raises(RingError, match="two entries"):
        b.merge(twin)
    with pytest.raises(RingError, match="cannot merge"):
        a.merge(Ring("10.245.0.0/24", "x"))


def test_to_and_from_dict_and_errors_name_the_field():
    a = seeded("a")
    a.give(START + 10, START + 20, "c")
    again = Ring.from_dict(a.to_dict(), "b")
    assert again.entries == a.entries and again.me == "b"
    for bad, field in (({"cidr": "nope"}, "ring.cidr"), ({"cidr": CIDR, "entries": {}}, "ring.entries"),
                       ({"cidr": CIDR, "entries": [["10.244.0.0", "a", -1, 0]]}, "ring.entries[0]"),
                       ({"cidr": CIDR, "entries": [["10.244.0.9", "a", 0, 0]]}, "first token"),
                       ({"cidr": CIDR, "entries": [["10.244.0.0", "a", 0, 0], ["10.244.0.0", "b", 0, 0]]}, "twice")):
        with pytest.raises(RingError, match=field.replace("[", r"\[").replace("]", r"\]")):
            Ring.from_dict(bad, "a")


def test_allocator_takes_the_lowest_free_address_and_never_the_network_or_broadcast():
    a = RingAllocator(seeded("a", peers=("a",)))
    assert a.allocate("x") == "10.244.0.1" and a.allocate("y") == "10.244.0.2" and a.allocate("x") == "10.244.0.1"
    assert a.release("x") and not a.release("x")
    assert a.allocate("z") == "10.244.0.1"
    assert a.free_count() == 256 - 2 - 2
    taken = {a.allocate(f"h{i}") for i in range(300)}
    assert None in taken and "10.244.0.255" not in taken and len(taken - {None}) == 252
    a.claim("y", "10.244.0.2")  # what it holds: fine
    with pytest.raises(RingError, match="already taken"):
        a.claim("new", "10.244.0.2")


def test_donate_gives_half_of_the_largest_free_run_and_never_a_taken_address():
    ring = seeded("a", peers=("a", "b"))  # a: .0-.127
    a = RingAllocator(ring)
    for i in range(10):
        a.allocate(f"h{i}")  # .1-.10
    start, end = a.donate("b")
    assert (start, end) == (START + 69, START + 128)  # the run .11-.127 (117), its upper 59
    assert ring.owner(START + 69) == "b" and ring.owner(START + 68) == "a"
    assert all(ring.owner(ipaddress.IPv4Address(ip)) == "a" for ip in a.allocations().values())
    assert a.sync_free() and ring.free_of()["a"] == a.free_count()
    empty = RingAllocator(seeded("c", peers=("a",)))
    assert empty.allocate("x") is None and empty.donate("a") is None


def test_allocations_round_trip_and_orphans_are_reported():
    ring = seeded("a", peers=("a", "b"))
    a = RingAllocator(ring)
    a.allocate("x")
    again = RingAllocator.from_dict(a.to_dict(), ring)
    assert again.allocations() == {"x": "10.244.0.1"}
    stray = RingAllocator(ring, {"y": "10.244.0.200"})  # in b's range
    assert stray.orphans() == {"y": "10.244.0.200"}
    with pytest.raises(RingError, match="two handles"):
        RingAllocator.from_dict({"allocations": {"p": "10.244.0.1", "q": "10.244.0.1"}}, ring)


# -- properties -------------------------------------------------------------------------------------
PEERS = ("a", "b", "c", "d")

ops = st.lists(st.one_of(
    st.tuples(st.just("alloc"), st.sampled_from(PEERS), st.integers(0, 40)),
    st.tuples(st.just("release"), st.sampled_from(PEERS), st.integers(0, 40)),
    st.tuples(st.just("donate"), st.sampled_from(PEERS), st.sampled_from(PEERS)),
    st.tuples(st.just("merge"), st.sampled_from(PEERS), st.sampled_from(PEERS)),
    st.tuples(st.just("free"), st.sampled_from(PEERS), st.just(0)),
), max_size=60)


class Cluster:
    """Peers with their rings and allocators; `links` says who may merge whose ring."""

    def __init__(self, seeds=("a", "b", "c")):
        self.rings = {p: seeded(p, peers=seeds) for p in PEERS}  # d is an observer of the seed
        self.allocs = {p: RingAllocator(r) for p, r in self.rings.items()}
        self.snapshots: list[list[Entry]] = []

    def run(self, history, can_talk=lambda a, b: True):
        for op, p, arg in history:
            alloc = self.allocs[p]
            if op == "alloc":
                if alloc.allocate(f"{p}-{arg}") is None:  # out of space: ask the donor, as the router does
                    donor = self.rings[p].donor()
                    if donor is not None and can_talk(p, donor) and self.allocs[donor].donate(p):
                        self.rings[p].merge(self.rings[donor])
                        alloc.allocate(f"{p}-{arg}")
            elif op == "release":
                alloc.release(f"{p}-{arg}")
            elif op == "donate" and p != arg and can_talk(p, arg):
                if self.allocs[p].donate(arg):
                    self.rings[arg].merge(self.rings[p])
            elif op == "merge" and can_talk(p, arg):
                self.rings[arg].merge(self.rings[p])
            elif op == "free":
                alloc.sync_free()
            self.snapshots.append(list(self.rings[p].entries))

    def gossip_everything(self):
        for _ in range(len(PEERS)):
            for p in PEERS:
                for q in PEERS:
                    self.rings[q].merge(self.rings[p])

    def check_safe(self):
        # no address is claimed (owned in its own ring) by two peers
        claims = {}
        for p, ring in self.rings.items():
            for a, b in ring.ranges(p):
                for address in range(a, b):
                    assert address not in claims, f"{address} claimed by {claims[address]} and {p}"
                    claims[address] = p
        # nor allocated twice, and every allocation is in its peer's own ranges
        seen = {}
        for p, alloc in self.allocs.items():
            assert alloc.orphans() == {}, (p, alloc.orphans())
            for ip in alloc.allocations().values():
                assert ip not in seen, f"{ip} allocated by {seen[ip]} and {p}"
                seen[ip] = p


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops)
def test_merge_is_a_join_over_any_history(history):
    c = Cluster()
    c.run(history)
    snaps = c.snapshots[-6:] or [c.rings["a"].entries]
    for x in snaps:
        assert join(x, x) == sorted(x)
        for y in snaps:
            assert join(x, y) == join(y, x)
            for z in snaps:
                assert join(join(x, y), z) == join(x, join(y, z))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops)
def test_addresses_are_conserved_and_rings_converge(history):
    c = Cluster()
    c.run(history)
    c.check_safe()
    c.gossip_everything()
    rings = list(c.rings.values())
    assert all(r.entries == rings[0].entries for r in rings)  # one ring everywhere
    assert sum(rings[0].shares().values()) == 256 and rings[0].entries[0].token == START
    c.check_safe()


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops, ops)
def test_a_partition_then_its_healing_never_gives_an_address_to_two_peers(before, during):
    c = Cluster(seeds=("a", "b", "c", "d"))
    c.run(before)
    side = {"a": 0, "b": 0, "c": 1, "d": 1}
    c.run(during, can_talk=lambda p, q: side[p] == side[q])  # {a, b} and {c, d} cannot talk
    c.check_safe()
    c.gossip_everything()  # healed
    c.check_safe()
    assert sum(c.rings["a"].shares().values()) == 256
