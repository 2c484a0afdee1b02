"""The trace's parts without a walk: SRC/DST resolution, the policy explanation (checked against
the evaluator on every e2e truth-table case), and reading `ss`."""

from __future__ import annotations

import pytest

from podnet.policy.evaluate import allowed
from podnet.trace import ResolveError
from podnet.trace.kernel import Kernel, KernelError, parse_ss
from podnet.trace.netpol import explain

from tests.policy.cases import CASES, NS
from tests.policy.test_evaluate import world
from tests.trace.canned import Canned


@pytest.fixture
def inv():
    return Canned.load("vxlan-2nodes.json").inventory()


def test_resolve_pods(inv):
    e = inv.resolve("default/b:8080")
    assert (e.kind, e.name, e.ip, e.port, e.node) == ("pod", "default/b", "10.244.2.2", 8080, "node2")
    assert inv.resolve("b").name == "default/b" and inv.resolve("pod/default/b").ip == "10.244.2.2"
    assert inv.resolve("10.244.2.2:80").kind == "pod"
    src = inv.resolve("a", source=True)
    assert src.netns and src.netns.startswith("pn-")


def test_resolve_services_nodes_and_addresses(inv):
    s = inv.resolve("svc/default/web:80")
    assert (s.kind, s.ip, s.port) == ("service", "10.96.70.237", 80)
    assert inv.resolve("svc/web").port == 80  # one port: no need to say it
    assert inv.service_protocol(s) == "tcp"
    n = inv.resolve("node2")
    assert (n.kind, n.ip, n.netns) == ("node", "172.31.0.12", "pn-trdev-node2")
    assert inv.resolve("node/node1:22").port == 22
    assert inv.resolve("172.31.0.12").kind == "node"
    o = inv.resolve("192.0.2.1:53")
    assert (o.kind, o.ip, o.port) == ("ip", "192.0.2.1", 53)


@pytest.mark.parametrize("spec, source, message", [
    ("nosuch", False, "no pod default/nosuch"),
    ("x/y", False, "no pod x/y"),
    ("svc/default/web", True, "a Service sends nothing"),
    ("svc/default/web:81", False, "has no port 81"),
    ("svc/default/nope:80", False, "no Service default/nope"),
    ("default/b:70000", False, "not 1-65535"),
    ("default/a:80", True, "a source has no port"),
    ("a/b/c/d", False, "expected"),
])
def test_resolve_errors(inv, spec, source, message):
    with pytest.raises(ResolveError, match=message):
        inv.resolve(spec, source=source)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_explanation_agrees_with_the_evaluator(case):
    ip_of = {f"{p.namespace}/{p.name}": p.ip for p in world().pods}
    ip_of.update({f"node{i}": f"10.244.{i}.0/24" for i in (1, 2, 3)})
    labels = {n: {"ns": n, "kubernetes.io/metadata.name": n, **case.ns_labels.get(n, {})} for n in NS}
    w = world(*case.specs(ip_of), namespaces=labels)
    for port, proto in case.blocked:
        for s in w.pods:
            for d in w.pods:
                if s == d:
                    continue
                eg = explain(w, "egress", s, d.ip, port, proto)
                ing = explain(w, "ingress", d, s.ip, port, proto)
                assert (eg.allowed and ing.allowed) == allowed(w, s, d, port, proto), (s, d, port, proto)
                for ex in (eg, ing):
                    if ex.allowed and ex.allowed_by:
                        assert ex.responsible()[0]["rule"] is not None
                    if not ex.allowed:
                        assert ex.isolating and ex.responsible()[0]["name"].startswith("p")


def test_explanation_says_why_rules_miss():
    w = world(("x", {"podSelector": {"matchLabels": {"pod": "a"}},
                     "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}], "ports": [{"port": 81}]}]}))
    a, b, c = (next(p for p in w.pods if p.namespace == "x" and p.name == n) for n in "abc")
    ex = explain(w, "ingress", a, b.ip, 80, "TCP")
    assert not ex.allowed and ex.misses == ["x/p0 rule 0: tcp/80 not in its ports (tcp/81)"]
    ex = explain(w, "ingress", a, c.ip, 81, "TCP")
    assert "peer 10.244.3.2 (x/c) not in its from" in ex.misses[0]
    ex = explain(w, "ingress", a, b.ip, 81, "TCP")
    assert ex.allowed and ex.responsible() == [{"kind": "NetworkPolicy", "namespace": "x", "name": "p0",
                                                 "direction": "ingress", "rule": 0}]
    assert explain(w, "ingress", a, "172.31.0.11", 80, "TCP").allowed  # from its own node


def test_parse_ss():
    out = ("LISTEN 0      5      0.0.0.0:8080 0.0.0.0:* users:((\"python3\",pid=4093,fd=3))\n"
           "LISTEN 0      128    [::]:22      [::]:*\n"
           "UNCONN 0      0      10.244.2.2%eth0:53 0.0.0.0:*\n"
           "LISTEN 0      4096   *:9000 *:*\n")
    assert parse_ss(out) == [("0.0.0.0", 8080, "python3 (pid 4093)"), ("::", 22, ""), ("10.244.2.2", 53, ""),
                             ("*", 9000, "")]


def test_kernel_reader_runs_plain_commands_and_caches():
    seen = []

    def run(argv):
        seen.append(argv)
        if argv[-1] == "tables":
            return 0, '{"nftables": [{"metainfo": {}}, {"table": {"family": "ip", "name": "podnet_proxy"}}]}', ""
        if "nosuch" in argv:
            return 2, "", "RTNETLINK answers: Network is unreachable"
        return 0, '[{"dst": "10.0.0.1", "dev": "eth0"}]', ""

    k = Kernel(run)
    r = k.route_get("pn-x", "10.0.0.1", src="10.0.0.2", iif="eth0", proto="tcp", dport=80)
    assert r.cmd == "ip -n pn-x -j route get 10.0.0.1 from 10.0.0.2 iif eth0 ipproto tcp dport 80"
    k.route_get("pn-x", "10.0.0.1", src="10.0.0.2", iif="eth0", proto="tcp", dport=80)
    assert len(seen) == 1
    with pytest.raises(KernelError, match="Network is unreachable"):
        k.route_get("pn-x", "nosuch")
    assert k.nft("pn-x", "table", "inet", "podnet_agent") is None  # no such table: not even asked
    assert not any("podnet_agent" in a for a in seen)
