"""`podnet trace --probe` without root: the nft rules each namespace on the path gets, and the
correlation of canned `nft monitor trace` lines with the walk's hops (recording: the 2-node
vxlan lab of tests/trace/data)."""

from __future__ import annotations

import pytest

from podnet.trace import probe as P
from podnet.trace.render import text
from tests.trace.canned import Canned
from tests.trace.test_walk import go

A, B, N1, N2 = "10.244.1.3", "10.244.2.2", "172.31.0.11", "172.31.0.12"
SRC, NODE1, U, NODE2, DST = "pn-trdev-p-733bb8cfe5", "pn-trdev-node1", "pn-trdev-u", "pn-trdev-node2", \
    "pn-trdev-p-f7d383f553"
T = "podnet_probe_t"
INNER = f"ip saddr {A} ip daddr {B} tcp dport 8080 tcp flags & (syn | ack) == syn"
OUTER = f"udp dport 8472 ip saddr {N1} ip daddr {N2}"


@pytest.fixture
def walked():
    return go(Canned.load("vxlan-2nodes.json"), "default/a", "default/b:8080")


def pkt(table, chain, dev, src=A, dst=B, tail="tcp sport 40000 tcp dport 8080 tcp flags == syn", fam="inet", tid="1"):
    return f'trace id {tid} {fam} {table} {chain} packet: {dev} ip saddr {src} ip daddr {dst} ip ttl 64 {tail} '


def chain(table, chain_, dev, **kw):
    return [pkt(table, chain_, dev, **kw), f"trace id 1 inet {table} {chain_} policy accept "]


def delivered_lines():
    outer = {"src": N1, "dst": N2, "tail": "udp sport 5000 udp dport 8472"}
    return {
        SRC: chain(T, "output", 'oif "eth0"') + chain(T, "postrouting", 'oif "eth0"'),
        NODE1: chain(T, "prerouting", 'iif "cni0"') + chain(T, "forward", 'iif "cni0" oif "podnet.1"')
        + chain(T, "postrouting", 'oif "podnet.1"') + chain(T, "output", 'oif "eth0"', **outer)
        + chain(T, "postrouting", 'oif "eth0"', **outer),
        U: chain(T, "prerouting", 'iif "u-node1"', fam="bridge", **outer)
        + chain(T, "forward", 'iif "u-node1" oif "u-node2"', fam="bridge", **outer),
        NODE2: chain(T, "prerouting", 'iif "eth0"', **outer) + chain(T, "input", 'iif "eth0"', **outer)
        + chain(T, "prerouting", 'iif "podnet.1"') + chain(T, "forward", 'iif "podnet.1" oif "cni0"')
        + chain(T, "postrouting", 'oif "cni0"'),
        DST: chain(T, "prerouting", 'iif "eth0"') + chain(T, "input", 'iif "eth0"'),
    }


def test_each_namespace_traces_exactly_its_tuples(walked):
    m = P.matches(walked)
    assert list(m) == [SRC, NODE1, U, NODE2, DST]
    assert m[SRC] == [INNER] and m[DST] == [INNER]
    assert m[NODE1] == [INNER, OUTER] and set(m[NODE2]) == {INNER, OUTER}
    assert m[U] == [OUTER]                    # the underlay only ever sees the outer header
    assert P.l2_namespaces(walked) == {U}     # bridged there: a bridge table sees it


def test_the_rule_text():
    text_ = P.ruleset(T, [INNER, OUTER])
    assert text_.startswith(f"table inet {T} {{\n")
    for hook in P.HOOKS:
        assert f"type filter hook {hook} priority -400; policy accept;" in text_
    assert text_.count(f"{INNER} meta nftrace set 1") == 2 and text_.count(f"{OUTER} meta nftrace set 1") == 2
    br = P.ruleset(T, [OUTER], "bridge")
    assert br.startswith(f"table bridge {T}") and "hook input" not in br and "hook forward" in br


def test_tuple_forms():
    from podnet.trace.model import Packet
    assert P._match(Packet(A, B, "udp", 5353, 53)) == f"ip saddr {A} ip daddr {B} udp sport 5353 udp dport 53"
    assert P._match(Packet(A, B, "icmp")) == f"ip saddr {A} ip daddr {B} icmp type echo-request"


def test_a_service_probe_matches_before_and_after_dnat():
    t = go(Canned.load("vxlan-2nodes.json"), "default/a", "svc/default/web:80")
    node1 = P.matches(t)[NODE1]
    svc = t.hops[0].packet.dst
    assert f"ip saddr {A} ip daddr {svc} tcp dport 80 tcp flags & (syn | ack) == syn" in node1 and any("dport 8080" in m for m in node1)
    assert P.sent_packet(t).dst == svc and P.sent_packet(t).dport == 80


def test_parse():
    ev = P.parse(delivered_lines()[NODE1] + ["garbage", ""])
    assert len(ev) == 10
    assert ev[0].chain == "prerouting" and ev[0].iif == "cni0" and ev[0].oif is None
    assert ev[2].iif == "cni0" and ev[2].oif == "podnet.1"
    assert ev[1].verdict == "accept" and ev[0].verdict is None
    assert "ip saddr 10.244.1.3" in ev[0].short() and "ttl" not in ev[0].short()
    drop = P.parse([f"trace id 9 inet podnet_policy forward rule ip daddr {B} drop (verdict drop)"])[0]
    assert drop.verdict == "drop"


def run(walked, lines):
    by_ns = {ns: P.seen(P.parse(ls), T) for ns, ls in lines.items()}
    counts = P.correlate(walked, by_ns)
    P.summarize(walked, counts, "one tcp packet")
    return counts


def test_every_hop_confirmed(walked):
    counts = run(walked, delivered_lines())
    assert counts == {"confirmed": len(walked.hops), "contradicted": 0, "unobserved": 0}, \
        [(h.index, h.place, h.stage, h.probe) for h in walked.hops]
    assert walked.verdict == "DELIVERED" and "contradict" not in walked.reason
    assert walked.to_json()["probe"]["confirmed"] == len(walked.hops)
    assert any(n.startswith("probe:") for n in walked.notes)
    assert "✓" in text(walked)


def test_nothing_seen_is_unobserved(walked):
    lines = delivered_lines()
    del lines[DST], lines[NODE2]
    run(walked, lines)
    st = {h.index: h.probe["status"] for h in walked.hops}
    assert st[1] == "confirmed" and st[len(walked.hops)] == "unobserved"
    assert "not seen arriving" in walked.reason


def test_wrong_device_is_not_a_confirmation(walked):
    lines = delivered_lines()
    lines[DST] = chain(T, "prerouting", 'iif "eth9"') + chain(T, "input", 'iif "eth9"')
    run(walked, lines)
    assert walked.hops[-1].probe["status"] == "unobserved"


def test_a_drop_where_the_walk_passes_contradicts(walked):
    lines = delivered_lines()
    lines[NODE2] = chain(T, "prerouting", 'iif "eth0"', src=N1, dst=N2, tail="udp dport 8472") \
        + [f"trace id 1 inet podnet_overlay input rule ip saddr {N1} drop (verdict drop)"]
    del lines[DST]
    counts = run(walked, lines)
    assert counts["contradicted"] >= 1
    dec = next(h for h in walked.hops if h.stage == "decapsulate")
    assert dec.probe["status"] == "contradicted" and "drop" in dec.probe["events"][0]
    assert walked.verdict == "DELIVERED" and "the probe contradicts this" in walked.reason


def test_a_predicted_drop():
    t = go(Canned.load("vxlan-2nodes-deny-b.json"), "default/a", "default/b:8080")
    assert t.verdict == "DROPPED"
    at = t.hops[t.at - 1]
    lines = delivered_lines()
    lines[at.netns] = chain(T, "prerouting", 'iif "podnet.1"') + [
        "trace id 1 inet podnet_policy forward rule drop (verdict drop)"]
    run(t, lines)
    assert at.probe["status"] == "confirmed"
    lines[at.netns] = chain(T, "prerouting", 'iif "podnet.1"') + chain(T, "forward", 'iif "podnet.1" oif "cni0"')
    for h in t.hops:
        h.probe = None
    t.reason = "x"
    run(t, lines)
    assert at.probe["status"] == "contradicted" and "contradicts" in t.reason


def test_the_sender():
    from podnet.trace.model import Packet
    argv = P._send_argv("pn-x", Packet(A, B, "tcp", 40000, 8080))
    assert argv[:4] == ["ip", "netns", "exec", "pn-x"] and "s.bind(('10.244.1.3', 40000))" in argv[-1]
    compile(argv[-1], "probe", "exec")
    udp = P._send_argv("pn-x", Packet(A, B, "udp", None, 53))[-1]
    assert "SOCK_DGRAM" in udp and f"s.bind(({A!r}, 0))" in udp and "send(" in udp
    compile(udp, "probe", "exec")
    icmp = P._send_argv("pn-x", Packet(A, B, "icmp"))[-1]
    assert "SOCK_RAW" in icmp and f"s.sendto(msg, ({B!r}, 0))" in icmp
    compile(icmp, "probe", "exec")
