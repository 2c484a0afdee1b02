"""The mesh's topology (who is reachable, through whom) and wire formats, without root."""

from __future__ import annotations

import asyncio

import pytest

from podnet.mesh import protocol
from podnet.mesh.status import render
from podnet.mesh.topology import PeerEntry, Topology


def entry(name, conns, version=1, incarnation=1):
    return PeerEntry(name, incarnation, version, f"172.31.0.{ord(name[-1])}", 6783, conns)


def test_routes_use_connections_both_ends_report_and_go_through_a_third_peer():
    t = Topology(entry("a", ["b", "c"]))
    t.merge([entry("b", ["a", "c"]), entry("c", ["b"])])  # c does not report a: a-c is not a connection
    assert t.routes() == {"b": "b", "c": "b"}
    t.merge([entry("c", ["a", "b"], version=2)])
    assert t.routes() == {"b": "b", "c": "c"}
    t.merge([entry("d", [])])
    assert t.unreachable() == ["d"]


def test_merge_keeps_newer_versions_and_newer_incarnations_never_my_own_entry():
    t = Topology(entry("a", []))
    assert t.merge([entry("b", ["x"], version=5)])
    assert not t.merge([entry("b", ["y"], version=4)])  # older
    assert t.merge([entry("b", ["z"], version=1, incarnation=2)])  # restarted: a newer incarnation
    assert t.peers["b"].connections == ["z"]
    assert not t.merge([entry("a", ["evil"], version=99)])
    assert t.set_my_connections({"b"}) and t.peers["a"].version == 2 and not t.set_my_connections({"b"})


def test_sleeve_header_round_trip_and_garbage_is_refused():
    frame = bytes(range(60))
    src, dst, hops, got = protocol.parse_sleeve(protocol.sleeve("node1", "node3", frame, hops=3))
    assert (src, dst, hops, got) == ("node1", "node3", 3, frame)
    for bad in (b"", b"XX\x01\x08", protocol.sleeve("a", "b", b"short")):
        with pytest.raises(protocol.ProtocolError):
            protocol.parse_sleeve(bad)


def test_messages_are_length_prefixed_json_and_oversized_ones_are_refused():
    async def read(data: bytes):
        r = asyncio.StreamReader()
        r.feed_data(data)
        r.feed_eof()
        return await protocol.read_message(r)

    assert asyncio.run(read(protocol.encode({"type": "hello", "name": "a"}))) == {"type": "hello", "name": "a"}
    with pytest.raises(protocol.ProtocolError, match="at most"):
        asyncio.run(read(b"\xff\xff\xff\xff"))
    with pytest.raises(protocol.ProtocolError, match="type"):
        asyncio.run(read(protocol.encode({"no": "type"})))


def test_status_text_names_connections_relays_and_shares():
    st = {"name": "node1", "uid": "1", "address": "172.31.0.11:6783", "encryption": False,
          "peers": [{"name": "node1", "reachable": True, "via": None}, {"name": "node2", "reachable": True, "via": None},
                    {"name": "node3", "reachable": True, "via": "node2"}],
          "connections": [{"direction": "->", "address": "172.31.0.12:6783", "state": "established", "peer": "node2",
                           "encapsulation": "sleeve", "reason": ""},
                          {"direction": "->", "address": "172.31.0.13:6783", "state": "failed", "peer": "node3",
                           "encapsulation": "", "reason": "connect: timed out"}],
          "unreachable": [],
          "ipam": {"status": "ready", "range": "10.244.0.0/16", "allocations": {}, "free": 10, "error": "",
                   "shares": {"node1": 50.0, "node2": 50.0},
                   "ranges": [{"peer": "node1", "size": 32768}, {"peer": "node2", "size": 32768}]}}
    text = render(st)
    assert "established, sleeve    node2" in text and "failed" in text and "(connect: timed out)" in text
    assert "node3 is reached through node2" in text and "50.0%" in text


def test_sealed_messages_open_only_with_the_same_password_and_frames_stay_bound_to_their_peers():
    from podnet.mesh import crypto

    key, other = crypto.password_key(b"secret"), crypto.password_key(b"guess")
    na, nb = b"a" * 16, b"b" * 16
    a, b = crypto.Channel(key, na, nb), crypto.Channel(key, nb, na)
    assert b.open(a.seal(b"hello")) == b"hello" and a.open(b.seal(b"back")) == b"back"
    wrong = crypto.Channel(other, nb, na)
    with pytest.raises(crypto.CryptoError, match="different password"):
        wrong.open(crypto.Channel(key, na, nb).seal(b"hello"))
    box = crypto.Sleeve(key)
    sealed = box.seal(b"frame" * 10, protocol.bound("node1", "node2"))
    assert b"frame" not in sealed and box.open(sealed, protocol.bound("node1", "node2")) == b"frame" * 10
    with pytest.raises(crypto.CryptoError):
        box.open(sealed, protocol.bound("node3", "node2"))  # replayed as if from another peer
    with pytest.raises(crypto.CryptoError):
        crypto.Sleeve(other).open(sealed, protocol.bound("node1", "node2"))
    with pytest.raises(crypto.CryptoError, match="empty"):
        crypto.password_key(b"")
