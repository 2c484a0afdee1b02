"""Subnet leases (flannel semantics) on a real store, and the pure backend renderer."""

import ipaddress
import threading

import pytest

from podnet.agent import leases, render
from podnet.api import cluster
from podnet.store import open_store

CFG = cluster.parse({"Network": "10.244.0.0/16", "SubnetLen": 24, "SubnetMax": "10.244.4.0"}, backends={"vxlan": lambda f, s: f})


@pytest.fixture
def store(tmp_path):
    s = open_store(f"sqlite://{tmp_path}/s.db")
    yield s
    s.close()


def test_first_free_subnet_then_reuse_by_node(store):
    a = leases.acquire(store, CFG, "a", "172.31.0.11", {}, 30)
    b = leases.acquire(store, CFG, "b", "172.31.0.12", {}, 30)
    assert (str(a.subnet), str(b.subnet)) == ("10.244.1.0/24", "10.244.2.0/24")
    again = leases.acquire(store, CFG, "a", "172.31.0.11", {"VtepMAC": "x"}, 30)
    assert again.subnet == a.subnet and again.vtep_mac == "x" and again.lease_id != a.lease_id


def test_previous_subnet_is_preferred_after_expiry(store):
    lease = leases.acquire(store, CFG, "a", "ip", {}, 30, previous=ipaddress.ip_network("10.244.3.0/24"))
    assert str(lease.subnet) == "10.244.3.0/24"


def test_exhaustion_is_a_clear_error(store):
    for n in range(4):
        leases.acquire(store, CFG, f"n{n}", "ip", {}, 30)
    with pytest.raises(leases.LeaseError, match="no free subnet left in 10.244.1.0-10.244.4.0"):
        leases.acquire(store, CFG, "n9", "ip", {}, 30)


def test_racing_nodes_never_share_a_subnet(tmp_path):
    url = f"sqlite://{tmp_path}/race.db"
    got, errors = [], []

    def take(n):
        try:
            s = open_store(url)  # every node opens the fresh store at the same moment
            try:
                got.append(leases.acquire(s, CFG, f"n{n}", "ip", {}, 30).subnet)
            finally:
                s.close()
        except Exception as e:  # noqa: BLE001 - recorded, so a dying thread fails the test
            errors.append(e)

    threads = [threading.Thread(target=take, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(got)) == 4


def lease(subnet, node, ip, mac="", btype="vxlan"):
    return leases.Lease(ipaddress.ip_network(subnet), node, ip, btype, {"VtepMAC": mac} if mac else {})


def test_masquerade_never_touches_pod_to_pod():
    rule = render.masquerade_rules(["10.244.0.0/16"], ["10.244.0.0/16"])[-1]["add"]["rule"]
    matches = [e["match"] for e in rule["expr"] if "match" in e]
    assert matches[0]["op"] == "==" and matches[1]["op"] == "!="
    assert matches[1]["right"] == {"prefix": {"addr": "10.244.0.0", "len": 16}}


def test_masquerade_of_routed_pools():
    """natOutgoing pools are masqueraded towards anything outside every pool; none: no rule."""
    rule = render.masquerade_rules(["10.244.0.0/17"], ["10.244.128.0/17", "10.244.0.0/17"])[-1]["add"]["rule"]
    matches = [e["match"] for e in rule["expr"] if "match" in e]
    assert matches[0]["right"] == {"prefix": {"addr": "10.244.0.0", "len": 17}}
    assert matches[1] == {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                          "right": {"set": [{"prefix": {"addr": "10.244.0.0", "len": 17}},
                                            {"prefix": {"addr": "10.244.128.0", "len": 17}}]}}
    assert not [c for c in render.masquerade_rules([], ["10.244.0.0/16"]) if "rule" in c.get("add", {})]


def test_overlay_guard_accepts_vxlan_only_from_peers():
    from podnet.agent.render import no_overlay_guard, overlay_guard

    cmds = overlay_guard("10.244.0.0/16", 8472, ["172.31.0.13", "172.31.0.12"])
    elems = [c["add"]["element"]["elem"] for c in cmds if "element" in c.get("add", {})]
    assert elems == [["172.31.0.12", "172.31.0.13"]]
    rules = [c["add"]["rule"] for c in cmds if "rule" in c.get("add", {})]
    assert [r["chain"] for r in rules] == ["input", "forward"]
    assert all({"drop": None} in r["expr"] for r in rules)
    assert not [c for c in overlay_guard("10.244.0.0/16", 8472, []) if "element" in c.get("add", {})]
    assert no_overlay_guard()[-1] == {"delete": {"table": {"family": "ip", "name": "podnet_overlay"}}}
