"""The walk's decisions on canned kernel output (no root): recorded from a 2-node vxlan lab
(tests/trace/data, made with tests/trace/canned.py) with pods a, a2, b2 (app=b) on node1 and
b (app=b) on node2, Services web (app=b, 80 -> 8080), empty (no endpoints) and np (NodePort /
LoadBalancer to a2); the second recording has NetworkPolicy deny-b (app=b, Ingress, no rules).
Edits to a recording make the kernel say something else: an FDB entry gone, a route missing."""

from __future__ import annotations

import json

import pytest

from podnet.trace import TraceError, Walk
from podnet.trace.model import DELIVERED, DROPPED, NO_NEIGHBOUR, NO_ROUTE, REFUSED, VERSION
from podnet.trace.render import BOLD, text

from tests.trace.canned import Canned

NODE2_IP = "172.31.0.12"
B, B2 = "10.244.2.2", "10.244.1.5"


@pytest.fixture
def lab():
    return Canned.load("vxlan-2nodes.json")


@pytest.fixture
def denied():
    return Canned.load("vxlan-2nodes-deny-b.json")


def go(canned: Canned, src: str, dst: str, proto: str | None = None, endpoint: str | None = None, inv=None):
    inv = inv or canned.inventory()
    s, d = inv.resolve(src, source=True), inv.resolve(dst)
    proto = proto or inv.service_protocol(d) or ("tcp" if d.port else "icmp")
    return Walk(canned.kernel(), inv).run(s, d, proto, endpoint=endpoint)


def stages(trace):
    return [(h.place, h.stage) for h in trace.hops]


def only(trace, stage):
    hops = [h for h in trace.hops if h.stage == stage]
    assert len(hops) == 1, stages(trace)
    return hops[0]


def test_pod_to_pod_across_nodes_through_vxlan(lab):
    t = go(lab, "default/a", "default/b:8080")
    assert t.verdict == DELIVERED and t.exit_code == 0, t.reason
    assert not lab.unknown, lab.unknown  # every command the walk ran was in the recording
    assert stages(t) == [
        ("pod default/a", "route"), ("node node1", "route"), ("node node1", "policy"), ("node node1", "encapsulate"),
        ("node node1", "route"), ("underlay", "bridge"), ("node node2", "decapsulate"), ("node node2", "route"),
        ("node node2", "policy"), ("node node2", "bridge"), ("pod default/b", "deliver")]
    enc = only(t, "encapsulate")
    assert enc.node == "node1" and enc.out == "podnet.1"
    assert enc.outer.dst == NODE2_IP and enc.outer.src == "172.31.0.11" and enc.outer.dport == 8472
    assert "VNI 1" in enc.decision and enc.highlight == f"{NODE2_IP} (node2)"
    assert next(e.data for e in enc.evidence if "FDB" in e.summary)["dst"] == NODE2_IP
    dec = only(t, "decapsulate")
    assert dec.node == "node2" and dec.in_ == "eth0" and dec.out == "podnet.1"
    # the outer packet's hops carry both headers; the inner one is the flow throughout
    assert all(h.packet.dst == B and h.packet.dport == 8080 for h in t.hops)
    assert t.hops[4].outer.dst == NODE2_IP
    assert t.hops[-1].netns == lab.inventory().pod_netns(lab.inventory().pod("default", "b"))
    assert "python3" in t.hops[-1].decision


def test_hooks_say_where_a_probe_sees_each_hop(lab):
    t = go(lab, "default/a", "default/b:8080")
    assert [h.hook for h in t.hops] == ["output", "forward", "forward", "postrouting", "output", None, "input",
                                        "forward", "forward", None, "input"]


def test_same_node_goes_over_the_bridge(lab):
    t = go(lab, "default/a", "default/a2")
    assert t.verdict == DELIVERED and t.protocol == "icmp"
    assert stages(t) == [("pod default/a", "route"), ("node node1", "bridge"), ("node node1", "policy"),
                         ("node node1", "policy"), ("pod default/a2", "deliver")]
    bridge = only(t, "bridge")
    assert bridge.in_.startswith("veth") and bridge.out.startswith("veth") and "cni0" in bridge.decision
    assert not [h for h in t.hops if h.stage == "encapsulate"]


def test_nothing_listening_is_refused(lab):
    t = go(lab, "default/a", "default/a2:8080")
    assert t.verdict == REFUSED and t.exit_code == 1
    assert t.hops[-1].result == "refused" and "TCP reset" in t.hops[-1].decision


def test_service_dnat_lists_every_endpoint_and_follows_the_first(lab):
    t = go(lab, "default/a", "svc/default/web:80")
    assert t.verdict == DELIVERED
    dnat = only(t, "dnat")
    assert dnat.node == "node1" and dnat.hook == "prerouting"
    assert dnat.candidates == [f"{B2}:8080", f"{B}:8080"]
    assert f"DNAT to {B2}:8080" in dnat.decision and "Service default/web" in dnat.decision
    assert dnat.packet.dst == B2 and dnat.packet.dport == 8080
    assert any("service-ips" in e.source for e in dnat.evidence) and any("endpoints" in e.source for e in dnat.evidence)
    assert t.hops[-1].place == "pod default/b2"


def test_endpoint_option_picks_the_branch(lab):
    t = go(lab, "default/a", "svc/default/web:80", endpoint=B)
    assert t.verdict == DELIVERED
    assert f"DNAT to {B}:8080" in only(t, "dnat").decision and "--endpoint" in only(t, "dnat").decision
    assert only(t, "encapsulate").outer.dst == NODE2_IP
    assert t.hops[-1].place == "pod default/b"


def test_endpoint_that_is_not_a_candidate_is_an_error(lab):
    with pytest.raises(TraceError, match="not an endpoint"):
        go(lab, "default/a", "svc/default/web:80", endpoint="10.244.9.9")


def test_service_without_endpoints_is_rejected(lab):
    t = go(lab, "default/a", "svc/default/empty:80")
    assert t.verdict == DROPPED and t.at == 2
    assert t.responsible == [{"kind": "Service", "namespace": "default", "name": "empty"}]
    assert "rejected" in t.hops[-1].decision


def test_nodeport_dnat_and_masquerade(lab):
    t = go(lab, "default/b", "node1:30987")
    dnat = only(t, "dnat")
    assert dnat.node == "node1" and "NodePort tcp/30987" in dnat.decision and "Service default/np" in dnat.decision
    masq = [h for h in t.hops if h.stage == "masquerade"]
    assert [h.node for h in masq] == ["node2", "node1"]  # ip-masq leaving node2, then the NodePort's own
    assert t.hops[-1].packet.src == "10.244.1.1"


def test_outside_destination_is_masqueraded_and_ends_where_routes_end(lab):
    t = go(lab, "default/a", "8.8.8.8")
    masq = only(t, "masquerade")
    assert masq.node == "node1" and "podnet ip-masq" in masq.decision and masq.packet.src == "172.31.0.11"
    assert t.verdict == NO_ROUTE and t.hops[-1].place == "underlay"


def test_policy_drop_names_the_policy_at_the_destination_node(denied):
    t = go(denied, "default/a", "default/b:8080")
    assert t.verdict == DROPPED and t.exit_code == 1
    hop = t.hops[t.at - 1]
    assert hop.stage == "policy" and hop.node == "node2" and hop.hook == "forward" and hop.result == "drop"
    assert t.responsible == [{"kind": "NetworkPolicy", "namespace": "default", "name": "deny-b",
                              "direction": "ingress", "rule": None}]
    assert "deny-b" in t.reason and "deny-b" in hop.decision
    assert any("ingress-isolated" in e.source and "jump" in e.summary for e in hop.evidence)
    assert not t.notes  # the kernel isolates b as the policy says


def test_policy_drop_through_a_service_on_the_endpoint_chosen(denied):
    t = go(denied, "default/a", "svc/default/web:80", endpoint=B)
    assert t.verdict == DROPPED and t.hops[t.at - 1].node == "node2"
    t = go(denied, "default/a", "svc/default/web:80")  # the first endpoint, b2, is on node1
    assert t.verdict == DROPPED and t.hops[t.at - 1].node == "node1"


def test_policy_the_kernel_does_not_enforce_yet_is_noted(lab, denied):
    inv = lab.inventory()
    inv.policies = denied.inventory().policies
    inv.world = None
    inv.__post_init__()
    t = go(lab, "default/a", "default/b:8080", inv=inv)
    assert t.verdict == DROPPED
    assert any("does not yet isolate" in n for n in t.notes)


def test_missing_fdb_entry_is_no_neighbour_at_the_encapsulation(lab):
    cmd = lab.find("node1", "fdb show dev podnet.1")
    lab.set_json(cmd, [])
    t = go(lab, "default/a", "default/b:8080")
    assert t.verdict == NO_NEIGHBOUR and t.exit_code == 1
    hop = t.hops[t.at - 1]
    assert hop.stage == "encapsulate" and hop.node == "node1" and hop.result == "no-neighbour"
    assert "no FDB entry" in hop.decision and "5e:32:30:c2:73:ff" in t.reason


def test_missing_vtep_neighbour_is_no_neighbour(lab):
    lab.set_json(lab.find("node1", "neigh show dev podnet.1"), [])
    t = go(lab, "default/a", "default/b:8080")
    assert t.verdict == NO_NEIGHBOUR and t.hops[-1].stage == "encapsulate" and "10.244.2.0" in t.reason


def test_gateway_nobody_answers_is_no_neighbour(lab):
    """Pod a's gateway 10.244.1.1 is cni0's: without that address nothing on the bridge answers ARP."""
    cmd = lab.find("node1", "address show")
    links = lab.json_of(cmd)
    for link in links:
        link["addr_info"] = [a for a in link.get("addr_info", []) if a.get("local") != "10.244.1.1"]
    lab.set_json(cmd, links)
    t = go(lab, "default/a", "default/b:8080")
    assert t.verdict == NO_NEIGHBOUR and t.hops[-1].stage == "bridge" and t.hops[-1].node == "node1"


def test_no_route_on_the_node(lab):
    cmd = lab.find("pn-trdev-node1 -j route get 10.244.2.2 from 10.244.1.3 iif cni0")
    lab.fail(cmd, "RTNETLINK answers: Network is unreachable")
    t = go(lab, "default/a", "default/b:8080")
    assert t.verdict == NO_ROUTE and t.exit_code == 1
    hop = t.hops[t.at - 1]
    assert hop.node == "node1" and hop.stage == "route" and "Network is unreachable" in hop.decision


def test_unreachable_route_type_is_no_route(lab):
    cmd = lab.find("pn-trdev-node1 -j route get 10.244.2.2 from 10.244.1.3 iif cni0")
    lab.set_json(cmd, [{"type": "unreachable", "dst": B, "flags": []}])
    t = go(lab, "default/a", "default/b:8080")
    assert t.verdict == NO_ROUTE and "unreachable" in t.reason


def test_vxlan_from_a_stranger_is_dropped_by_the_guard(lab):
    cmd = lab.find("node2", "podnet_overlay peers")
    doc = lab.json_of(cmd)
    doc["nftables"][1]["set"]["elem"] = ["172.31.0.99"]
    lab.set_json(cmd, doc)
    t = go(lab, "default/a", "default/b:8080")
    assert t.verdict == DROPPED and t.hops[-1].stage == "decapsulate" and t.hops[-1].node == "node2"


def test_from_a_node(lab):
    t = go(lab, "node1", "default/b:8080")
    assert t.verdict == DELIVERED and t.hops[0].place == "node node1" and t.hops[0].hook == "output"


def test_json_is_versioned_and_stable(lab):
    doc = go(lab, "default/a", "default/b:8080").to_json()
    assert doc["version"] == VERSION == 1
    assert {"version", "src", "dst", "protocol", "verdict", "reason", "at", "responsible", "hops", "notes"} <= set(doc)
    hop = doc["hops"][3]
    assert {"index", "node", "netns", "place", "stage", "in", "out", "decision", "highlight", "result", "hook",
            "packet", "outer", "candidates", "evidence", "probe"} <= set(hop)
    assert hop["probe"] is None and hop["outer"]["dst"] == NODE2_IP
    assert set(hop["evidence"][0]) == {"source", "summary", "data"}
    assert json.loads(json.dumps(doc)) == doc
    assert doc["src"]["name"] == "default/a" and doc["dst"]["port"] == 8080


def test_text_is_one_line_per_hop_and_bold_only_when_asked(lab):
    t = go(lab, "default/a", "default/b:8080")
    plain = text(t)
    lines = plain.splitlines()
    assert len(lines) == 1 + len(t.hops) + 1 and lines[-1].startswith("DELIVERED")
    assert BOLD not in plain
    bold = text(t, bold=True)
    assert f"{BOLD}{NODE2_IP} (node2)" in bold and f"{BOLD}DELIVERED" in bold
    assert "[ip -n" in text(t, evidence=True)


# -- the routed (bgp) mode: /32 routes to veths, BIRD's routes between nodes, proxy ARP ----------
@pytest.fixture
def routed():
    return Canned.load("bgp-2nodes.json")


def test_routed_pod_to_pod_uses_the_bgp_route_and_no_bridge_on_the_nodes(routed):
    t = go(routed, "default/a", "default/b:8080")
    assert t.verdict == DELIVERED and not routed.unknown, routed.unknown
    assert stages(t) == [("pod default/a", "route"), ("node node1", "route"), ("node node1", "policy"),
                         ("underlay", "bridge"), ("node node2", "route"), ("node node2", "policy"),
                         ("pod default/b", "deliver")]
    assert "proto bird" in t.hops[1].decision and "via 172.31.0.12 dev eth0" in t.hops[1].decision
    assert any("proxy ARP" in e.summary for e in t.hops[0].evidence)  # 169.254.1.1 belongs to nobody


def test_routed_without_proxy_arp_nobody_answers_the_gateway(routed):
    cmd = routed.find("node1", "proxy_arp")
    routed.commands[cmd] = [0, "0\n", ""]
    t = go(routed, "default/a", "default/b:8080")
    assert t.verdict == NO_NEIGHBOUR and t.hops[-1].stage == "neighbour" and "169.254.1.1" in t.reason


def test_endpoint_without_a_service_on_the_path_is_noted(lab):
    t = go(lab, "default/a", "default/b:8080", endpoint=B)
    assert t.verdict == DELIVERED and any("--endpoint" in n for n in t.notes)
