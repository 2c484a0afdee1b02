"""Calico-style block IPAM on both stores: claims, allocation, borrowing, release, races."""

from __future__ import annotations

import ipaddress
import json
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podnet.api import keys
from podnet.api.ippool import parse_ippool
from podnet.ipam import blocks
from podnet.ipam.blocks import BlockAllocator, IPAMError
from podnet.store import open_store
from tests.store.test_store import store  # noqa: F401 - the same fixture: each test on SQLite and etcd


def put_pool(store, name="p", cidr="10.244.0.0/16", block=26, **spec):
    pool = parse_ippool({"apiVersion": "podnet.io/v1", "kind": "IPPool", "metadata": {"name": name},
                         "spec": {"cidr": cidr, "blockSize": block, **spec}})
    store.put(f"{keys.IPPOOLS}{name}", json.dumps(pool))


def wipe(store):
    for kv in store.list("/podnet/")[0]:
        store.delete(kv.key)


def check_invariants(store):
    """No address in two blocks' allocations, every block owned by at most one node and indexed
    under it, every handle pointing at an allocation that names it."""
    seen = {}
    for b in blocks.load_blocks(store):
        for o, a in b.allocations.items():
            ip = b.ip(o)
            assert ip not in seen, f"{ip} allocated twice"
            seen[ip] = a["handle"]
        if b.affinity:
            assert store.get(blocks.affinity_key(b.affinity, b.cidr)) is not None
    for kv in store.list(keys.IPAM_AFFINITIES)[0]:
        node = kv.key[len(keys.IPAM_AFFINITIES):].split("/")[0]
        b = blocks.get_block(store, blocks.cidr_of_key(kv.key))
        assert b is not None and b.affinity == node, f"{kv.key} indexes a block {node} does not own"
    for kv in store.list(keys.IPAM_HANDLES)[0]:
        for ip in json.loads(kv.value)["ips"]:
            assert seen.get(ip) == kv.key[len(keys.IPAM_HANDLES):]
    return seen


def test_claim_assign_release(store):
    put_pool(store)
    a = BlockAllocator(store, "n1")
    ip1, ip2 = a.assign("h1", "default/p1"), a.assign("h2")
    assert ip1 == "10.244.0.0" and ip2 == "10.244.0.1"  # every address of a block is usable
    assert a.assign("h1") == ip1  # the same handle again: the same address (a retried ADD)
    assert a.own_blocks() == [ipaddress.ip_network("10.244.0.0/26")]
    assert blocks.get_block(store, ipaddress.ip_network("10.244.0.0/26")).affinity == "n1"
    b = BlockAllocator(store, "n2")
    assert b.assign("h3") == "10.244.0.64"  # the next node claims the next block
    assert a.release("h1") == [ip1] and a.release("h1") == []
    assert a.assign("h4") == "10.244.0.2"  # round-robin: a released address is reused last
    check_invariants(store)


def test_requested_pool_and_node_selector(store):
    put_pool(store, "zone-a", "10.244.0.0/24", nodeSelector='zone == "a"')
    put_pool(store, "manual", "10.244.1.0/24", assignmentMode="Manual")
    store.put(f"{keys.NODES}n1", json.dumps({"metadata": {"name": "n1", "labels": {"zone": "a"}}}))
    assert BlockAllocator(store, "n1").assign("h1").startswith("10.244.0.")
    with pytest.raises(IPAMError, match="no enabled IP pool selects node n2"):
        BlockAllocator(store, "n2").assign("h2")
    assert BlockAllocator(store, "n2").assign("h3", requested=["manual"]).startswith("10.244.1.")
    assert BlockAllocator(store, "n2").assign("h4", requested=["10.244.1.0/24"]).startswith("10.244.1.")
    with pytest.raises(IPAMError, match="'nope' does not exist"):
        BlockAllocator(store, "n2").assign("h5", requested=["nope"])


def test_borrowing_when_the_pool_has_no_free_block(store):
    put_pool(store, cidr="10.244.0.0/29", block=30)  # two blocks of four
    a, b = BlockAllocator(store, "a"), BlockAllocator(store, "b")
    mine = [a.assign(f"a{i}") for i in range(4)]
    theirs = [b.assign("b0")]
    assert {ipaddress.ip_address(ip) in ipaddress.ip_network("10.244.0.0/30") for ip in mine} == {True}
    borrowed = a.assign("a4")  # a's block is full, no free block: borrow from b's
    assert ipaddress.ip_address(borrowed) in ipaddress.ip_network("10.244.0.4/30") and borrowed not in theirs
    assert json.loads(store.get(blocks.borrowed_key(borrowed)).value) == {"node": "a", "block": "10.244.0.4/30"}
    for i in range(5, 7):
        a.assign(f"a{i}")
    with pytest.raises(IPAMError, match="no free address left"):  # 8 addresses, 8 handed out
        a.assign("a7")
    a.release("a4")
    assert store.get(blocks.borrowed_key(borrowed)) is None
    check_invariants(store)


def test_empty_blocks_go_back_after_the_grace_period(store):
    put_pool(store, cidr="10.244.0.0/24", block=28)
    a = BlockAllocator(store, "a", grace=60)
    ip = a.assign("h")
    a.release("h")
    block = blocks.get_block(store, ipaddress.ip_network("10.244.0.0/28"))
    assert block.affinity == "a" and block.empty_since
    assert a.release_empty_blocks(now=block.empty_since + 30) == []
    assert a.release_empty_blocks(now=block.empty_since + 61) == ["10.244.0.0/28"]
    assert a.own_blocks() == [] and blocks.load_blocks(store) == []
    assert BlockAllocator(store, "b").assign("x") == ip  # the block is free for anyone again


def test_release_node(store):
    put_pool(store, cidr="10.244.0.0/29", block=30)
    a, b = BlockAllocator(store, "a"), BlockAllocator(store, "b")
    for i in range(4):
        a.assign(f"a{i}")
    b.assign("b0")
    borrowed = a.assign("a4")
    assert blocks.release_node(store, "a") == ["10.244.0.0/30"]
    left = check_invariants(store)
    assert set(left.values()) == {"b0"} and store.get(blocks.borrowed_key(borrowed)) is None
    assert [blk.affinity for blk in blocks.load_blocks(store)] == ["b"]


def test_release_node_keeps_a_live_nodes_block(store):
    """The block's owner stays; the leaving node only borrowed from it. Emptied, it keeps its
    owner (who still announces it) and starts its grace period, rather than vanishing."""
    put_pool(store, cidr="10.244.0.0/30", block=30)
    a, b = BlockAllocator(store, "a"), BlockAllocator(store, "b")
    for i in range(4):
        a.assign(f"a{i}")
    for i in range(4):
        a.release(f"a{i}")
    borrowed = b.assign("b0")  # no free block: b borrows from a's
    assert store.get(blocks.borrowed_key(borrowed)) is not None
    assert blocks.release_node(store, "b") == []
    block = blocks.get_block(store, ipaddress.ip_network("10.244.0.0/30"))
    assert block is not None and block.affinity == "a" and not block.allocations and block.empty_since
    check_invariants(store)


def test_a_pool_made_again_with_another_block_size_never_overlaps_old_blocks(store):
    put_pool(store, cidr="10.244.0.0/24", block=26)
    BlockAllocator(store, "a").assign("x")  # a owns 10.244.0.0/26, still in its grace period after the pool goes
    put_pool(store, cidr="10.244.0.0/24", block=25)
    BlockAllocator(store, "b").assign("y")
    assert sorted(str(blk.cidr) for blk in blocks.load_blocks(store)) == ["10.244.0.0/26", "10.244.0.128/25"]
    check_invariants(store)


def test_the_full_pass_indexes_a_block_its_owner_never_indexed(store):
    put_pool(store, cidr="10.244.0.0/24", block=26)
    a = BlockAllocator(store, "a")
    a.assign("x")
    store.delete(blocks.affinity_key("a", ipaddress.ip_network("10.244.0.0/26")))  # died between the two writes
    assert a.own_blocks() == []
    assert a.repair_index() == ["10.244.0.0/26"] and a.repair_index() == []
    assert a.own_blocks() == [ipaddress.ip_network("10.244.0.0/26")]
    check_invariants(store)


def test_200_adds_across_4_nodes_at_once_get_200_addresses(store):
    put_pool(store)
    allocators = {n: BlockAllocator(store, n) for n in ("n1", "n2", "n3", "n4")}
    got, errors = [], []

    def add(node, i):
        try:
            got.append(allocators[node].assign(f"{node}-{i}"))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=add, args=(n, i)) for i in range(50) for n in allocators]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(got) == 200 and len(set(got)) == 200
    check_invariants(store)


def test_claim_races_give_each_block_one_owner(store):
    """Separate allocators for the same few blocks (no shared lock): claims race in the store."""
    put_pool(store, cidr="10.244.0.0/27", block=29)  # four blocks of eight
    got, errors = [], []

    def add(node, i):
        try:
            got.append(BlockAllocator(store, node).assign(f"{node}-{i}"))
        except IPAMError as e:
            errors.append(e)

    threads = [threading.Thread(target=add, args=(f"n{k % 6}", k)) for k in range(36)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == len(set(got)) == 32 and len(errors) == 4  # 32 addresses, no more
    check_invariants(store)


ops = st.lists(st.tuples(st.sampled_from(["assign", "release", "gc"]), st.sampled_from(["a", "b", "c"]),
                         st.integers(0, 11)), max_size=40)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=ops)
def test_any_sequence_keeps_the_invariants(tmp_path_factory, ops):
    store = open_store(f"sqlite://{tmp_path_factory.mktemp('ipam')}/s.db")
    put_pool(store, cidr="10.244.0.0/28", block=30)  # 16 addresses in 4 blocks: full and borrowing often
    allocators = {n: BlockAllocator(store, n, grace=0) for n in "abc"}
    live: dict[str, str] = {}
    for op, node, k in ops:
        handle = f"h{k}"
        if op == "assign":
            try:
                ip = allocators[node].assign(handle)
            except IPAMError:
                assert handle not in live and len(live) == 16  # only a full pool refuses
                continue
            assert live.setdefault(handle, ip) == ip
        elif op == "release":
            assert allocators[node].release(handle) == ([live.pop(handle)] if handle in live else [])
        else:
            allocators[node].release_empty_blocks()
        seen = check_invariants(store)
        assert {h: ip for ip, h in seen.items()} == live
    store.close()
