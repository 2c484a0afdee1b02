"""`podnet trace` in a real 2-node vxlan lab: pod to pod across nodes (both nodes, the VXLAN hop
to node2's underlay address, DELIVERED), to a Service (the DNAT to the endpoint), with node1's
FDB entry for node2 deleted (NO_NEIGHBOUR at that hop), under a deny policy (DROPPED naming it);
with --probe (one real packet confirms the walk; every lab namespace's nft ruleset is the same
before and after, also when the probe is interrupted)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from podnet.api.networkpolicy import parse_network_policy
from podnet.apiserver import objects
from podnet.lab import policies, topology
from podnet.lab.state import ns_prefix
from podnet.trace import Inventory, Kernel, Walk
from podnet.trace.model import NO_NEIGHBOUR

from tests.lab.conftest import module_lab, pods_a_b_and_web, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow]
PODNET = os.path.join(os.path.dirname(sys.executable), "podnet")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with module_lab(tmp_path_factory, "r", 2) as lab:
        with topology.store_context(lab.state):
            store = lab.store()
            try:
                pods_a_b_and_web(lab, store)
            finally:
                store.close()
        yield lab


def trace(lab, *args) -> tuple[int, dict | str]:
    env = {**os.environ, "PODNET_LAB_DIR": lab.state.directory}
    p = subprocess.run([PODNET, "trace", *args, "-o", "json"], capture_output=True, text=True, env=env, timeout=60)
    try:
        return p.returncode, json.loads(p.stdout)
    except ValueError:
        return p.returncode, p.stdout + p.stderr


def pods(lab) -> dict[str, dict]:
    return {p["metadata"]["name"]: p for p in lab.pods()}


def node_ip(lab, name: str) -> str:
    return lab.state.node(name).ip


def test_pod_to_pod_across_nodes(lab):
    rc, t = wait_for(lambda: (lambda r: r if r[0] == 0 else None)(trace(lab, "default/a", "default/b:8080")),
                     timeout=20) or trace(lab, "default/a", "default/b:8080")
    assert rc == 0, t
    assert t["version"] == 1 and t["verdict"] == "DELIVERED"
    assert len(t["hops"]) >= 4
    assert {"node1", "node2"} <= {h["node"] for h in t["hops"]}
    enc = [h for h in t["hops"] if h["stage"] == "encapsulate"]
    assert len(enc) == 1 and enc[0]["node"] == "node1"
    assert enc[0]["outer"]["dst"] == node_ip(lab, "node2") and enc[0]["outer"]["src"] == node_ip(lab, "node1")
    dec = [h for h in t["hops"] if h["stage"] == "decapsulate"]
    assert len(dec) == 1 and dec[0]["node"] == "node2"
    last = t["hops"][-1]
    assert last["stage"] == "deliver" and last["netns"] == pods(lab)["b"]["metadata"]["annotations"]["podnet.io/netns"]


def test_to_a_service_shows_the_dnat(lab):
    b_ip = pods(lab)["b"]["status"]["podIP"]

    def dnat():
        rc, t = trace(lab, "default/a", "svc/default/web:80")
        return (rc, t) if rc == 0 and any(h["stage"] == "dnat" for h in t["hops"]) else None

    result = wait_for(dnat, timeout=20)  # the endpoint slice and the proxy's maps follow the Service
    assert result, trace(lab, "default/a", "svc/default/web:80")
    _, t = result
    hop = next(h for h in t["hops"] if h["stage"] == "dnat")
    assert hop["node"] == "node1" and hop["candidates"] == [f"{b_ip}:8080"]
    assert f"DNAT to {b_ip}:8080" in hop["decision"]
    assert t["verdict"] == "DELIVERED" and t["hops"][-1]["packet"]["dst"] == b_ip


def test_a_deleted_fdb_entry_is_a_miss_at_that_hop(lab):
    node1, node2_ip = lab.state.node("node1").netns, node_ip(lab, "node2")
    with topology.store_context(lab.state):
        store = lab.store()
        try:
            inv = Inventory.load(store, {n.name: n.netns for n in lab.state.nodes}, {lab.state.underlay: "underlay"})
        finally:
            store.close()
    src, dst = inv.resolve("default/a", source=True), inv.resolve("default/b:8080")
    before = Walk(Kernel(), inv).run(src, dst, "tcp")
    dev = next(h.out for h in before.hops if h.stage == "encapsulate")
    fdb = json.loads(subprocess.run(["bridge", "-n", node1, "-j", "fdb", "show", "dev", dev], capture_output=True,
                                    text=True, check=True).stdout)
    mac = next(e["mac"] for e in fdb if e.get("dst") == node2_ip)
    try:
        t = None
        for _ in range(3):  # the agent puts the entry back at its next resync: read right after deleting
            subprocess.run(["bridge", "-n", node1, "fdb", "del", mac, "dev", dev, "dst", node2_ip], check=True)
            t = Walk(Kernel(), inv).run(src, dst, "tcp")
            if t.verdict == NO_NEIGHBOUR:
                break
        assert t.verdict == NO_NEIGHBOUR, (t.verdict, t.reason)
        hop = t.hops[t.at - 1]
        assert hop.stage == "encapsulate" and hop.node == "node1" and hop.out == dev and mac in t.reason
    finally:
        subprocess.run(["bridge", "-n", node1, "fdb", "replace", mac, "dev", dev, "dst", node2_ip, "self", "permanent"],
                       check=True)
    assert Walk(Kernel(), inv).run(src, dst, "tcp").verdict == "DELIVERED"


def lab_namespaces(lab) -> list[str]:
    prefix = ns_prefix(lab.state.name)
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]


def rulesets(lab) -> dict[str, str]:
    """Every lab namespace's `nft list ruleset`, byte for byte, except the packet count of the
    antispoof table's `not-ipv4` counter: young pods' own IPv6 chatter (router solicitations,
    MLD) lands there whenever it likes, while the probe sends IPv4 only."""
    return {ns: NOT_IPV4.sub(r"\1packets - bytes -", subprocess.run(
        ["ip", "netns", "exec", ns, "nft", "list", "ruleset"], capture_output=True, text=True, check=True).stdout)
        for ns in lab_namespaces(lab)}


NOT_IPV4 = re.compile(r"(counter not-ipv4 \{\s*)packets \d+ bytes \d+")


def stable_rulesets(lab, timeout: float = 30) -> dict[str, str]:
    """The rulesets once two readings a second apart agree (the agents settled)."""
    last, deadline = rulesets(lab), time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(1)
        now = rulesets(lab)
        if now == last:
            return now
        last = now
    return last


def same(before: dict[str, str], after: dict[str, str]) -> str:
    """'' when every namespace's ruleset is byte-identical, else the differences."""
    import difflib
    out = [f"{ns}: only {'after' if ns in after else 'before'}" for ns in set(before) ^ set(after)]
    for ns in sorted(set(before) & set(after)):
        if before[ns] != after[ns]:
            out.append("".join(difflib.unified_diff(before[ns].splitlines(True), after[ns].splitlines(True), ns, ns)))
    return "\n".join(out)


def test_probe_confirms_pod_to_pod_and_leaves_nothing(lab):
    wait_for(lambda: trace(lab, "default/a", "default/b:8080")[0] == 0, timeout=20)
    before = stable_rulesets(lab)
    rc, t = trace(lab, "default/a", "default/b:8080", "--probe")
    assert not same(before, rulesets(lab)), same(before, rulesets(lab))
    assert rc == 0 and t["verdict"] == "DELIVERED", t
    assert t["probe"]["confirmed"] >= 2 and all(h["probe"] for h in t["hops"]), t["probe"]
    first, last = t["hops"][0], t["hops"][-1]
    assert first["probe"]["status"] == "confirmed", first
    assert last["probe"]["status"] == "confirmed" and last["stage"] == "deliver", last
    assert not [h for h in t["hops"] if h["probe"]["status"] == "contradicted"], t["hops"]
    assert any(n.startswith("probe:") for n in t["notes"])


def test_an_interrupted_probe_removes_its_tables(lab):
    before = stable_rulesets(lab)
    src = pods(lab)["a"]["metadata"]["annotations"]["podnet.io/netns"]
    env = {**os.environ, "PODNET_LAB_DIR": lab.state.directory}
    p = subprocess.Popen([PODNET, "trace", "default/a", "default/b:8080", "--probe", "-o", "json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and p.poll() is None:
            tables = subprocess.run(["ip", "netns", "exec", src, "nft", "list", "tables"], capture_output=True,
                                    text=True).stdout
            if "podnet_probe_" in tables:
                break
            time.sleep(0.02)
        assert p.poll() is None, "the probe ended before its table was seen"
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130, (p.returncode, out, err)
    after = rulesets(lab)
    assert not same(before, after), same(before, after)
    assert not [ns for ns, r in after.items() if "podnet_probe_" in r]


def deny_b(lab) -> None:
    """NetworkPolicy deny-b: pod b admits nothing; returns once every node enforces it."""
    with topology.store_context(lab.state):
        store = lab.store()
        try:
            objects.apply(store, parse_network_policy(
                {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "deny-b"},
                 "spec": {"podSelector": {"matchLabels": {"app": "b"}}, "policyTypes": ["Ingress"]}}, "test"))
            assert not policies.wait_enforced(lab.state, store.revision(), timeout=15)
        finally:
            store.close()


def test_under_a_deny_policy_the_trace_names_it(lab):
    deny_b(lab)
    rc, t = trace(lab, "default/a", "default/b:8080")
    assert rc == 1, t
    assert t["verdict"] == "DROPPED" and "deny-b" in t["reason"] and not t["notes"]
    hop = t["hops"][t["at"] - 1]
    assert hop["stage"] == "policy" and hop["node"] == "node2" and hop["result"] == "drop"
    assert t["responsible"] == [{"kind": "NetworkPolicy", "namespace": "default", "name": "deny-b",
                                 "direction": "ingress", "rule": None}]


def test_probe_under_the_deny_policy_sees_the_drop(lab):
    deny_b(lab)  # (as in the test before; applying it again changes nothing)
    before = stable_rulesets(lab)
    rc, t = trace(lab, "default/a", "default/b:8080", "--probe")
    assert not same(before, rulesets(lab)), same(before, rulesets(lab))
    assert rc == 1 and t["verdict"] == "DROPPED" and "contradicts" not in t["reason"], t
    at = t["hops"][t["at"] - 1]
    assert at["probe"]["status"] == "confirmed" and any("drop" in e for e in at["probe"]["events"]), at["probe"]
    assert t["hops"][0]["probe"]["status"] == "confirmed"
