"""Our plugins and the reference plugins on identical configs: same results, same kernel state,
same error codes. Each implementation runs in its own fresh node and container namespaces."""

from __future__ import annotations

import os

import pytest

from tests.conftest import ip_json, normalize, ns_path, run_plugin

pytestmark = pytest.mark.root
VERSIONS = ["0.3.1", "0.4.0", "1.0.0"]
IMPLS = ["ours", "reference"]


def bridge_conf(version: str, data_dir: str, subnet: str = "10.77.0.0/24", **extra) -> dict:
    conf = {
        "cniVersion": version, "name": "parity", "type": "bridge", "bridge": "pnbr0",
        "isGateway": True, "hairpinMode": True,
        "ipam": {"type": "host-local", "dataDir": data_dir, "subnet": subnet, "routes": [{"dst": "0.0.0.0/0"}]},
    }
    conf.update(extra)
    return conf


def kernel_state(host: str, container: str) -> dict:
    """What a user would check by hand, without names and MACs that differ run to run."""
    def addrs(ns, dev):
        return sorted((a["local"], a["prefixlen"]) for link in ip_json(ns, "addr", "show", "dev", dev)
                      for a in link.get("addr_info", []) if a.get("scope") != "link")

    def routes(ns):
        return sorted((r["dst"], r.get("gateway", ""), "<veth>" if r.get("dev", "").startswith("veth") else r.get("dev", ""))
                      for r in ip_json(ns, "route"))

    ports = ip_json(host, "-d", "link", "show", "master", "pnbr0")
    return {
        "container_addrs": addrs(container, "eth0"),
        "container_routes": routes(container),
        "container_link_up": "UP" in ip_json(container, "link", "show", "eth0")[0]["flags"],
        "bridge_addrs": addrs(host, "pnbr0"),
        "bridge_ports": len(ports),
        "port_hairpin": [p.get("linkinfo", {}).get("info_slave_data", {}).get("hairpin") for p in ports],
        "host_routes": routes(host),
    }


def bins(ours: str, reference: str) -> dict:
    return {"ours": ours, "reference": reference}


@pytest.mark.parametrize("version", VERSIONS)
def test_bridge_add_result_and_kernel_state_match(version, netns, ours, reference, tmp_path):
    seen = {}
    for impl in IMPLS:
        host, cont = netns.new("host"), netns.new("ctr")
        conf = bridge_conf(version, str(tmp_path / impl))
        r = run_plugin(bins(ours, reference)[impl], "bridge", "ADD", conf, host_ns=host, netns=ns_path(cont))
        assert r.rc == 0, (impl, r)
        seen[impl] = (normalize(r.json), kernel_state(host, cont))
    assert seen["ours"][0] == seen["reference"][0]
    assert seen["ours"][1] == seen["reference"][1]
    assert seen["ours"][1]["container_addrs"] == [("10.77.0.2", 24)]
    assert seen["ours"][1]["port_hairpin"] == [True]


@pytest.mark.parametrize("version", VERSIONS)
def test_bridge_error_paths_match(version, netns, ours, reference, tmp_path):
    codes = {}
    for impl in IMPLS:
        bindir = bins(ours, reference)[impl]
        host, cont, cont2 = netns.new("host"), netns.new("ctr"), netns.new("ctr2")
        data = tmp_path / impl
        conf = bridge_conf(version, str(data), subnet="10.78.0.0/30")  # room for exactly one pod
        c = {}
        assert run_plugin(bindir, "bridge", "ADD", conf, host_ns=host, netns=ns_path(cont)).rc == 0
        c["duplicate_add"] = run_plugin(bindir, "bridge", "ADD", conf, host_ns=host, netns=ns_path(cont))
        c["exhausted"] = run_plugin(bindir, "bridge", "ADD", conf, host_ns=host, netns=ns_path(cont2), container_id="c2")
        c["check_no_prev"] = run_plugin(bindir, "bridge", "CHECK", conf, host_ns=host, netns=ns_path(cont))
        c["malformed"] = run_plugin(bindir, "bridge", "ADD", '{"cniVersion": "1.0.0", "name": ', host_ns=host, netns=ns_path(cont))
        c["bad_version"] = run_plugin(bindir, "bridge", "ADD", dict(conf, cniVersion="9.9.9"), host_ns=host, netns=ns_path(cont))
        c["bad_container_id"] = run_plugin(bindir, "bridge", "ADD", conf, host_ns=host, netns=ns_path(cont), container_id="../../etc")
        c["missing_env"] = run_plugin(bindir, "bridge", "ADD", conf, host_ns=host, netns=ns_path(cont), env_drop=("CNI_NETNS",))
        allocations = [f for f in os.listdir(data / "parity") if f[0].isdigit()]
        assert allocations == ["10.78.0.2"], (impl, allocations)
        if impl == "ours":
            # Nothing half-made is left by the failed ADDs: one bridge port, no eth0 in cont2.
            # (The reference 1.1.1 leaves the veth pair of the exhausted ADD behind.)
            assert len(ip_json(host, "link", "show", "master", "pnbr0")) == 1
            assert not [l for l in ip_json(cont2, "link") if l["ifname"] == "eth0"]
        c["del"] = run_plugin(bindir, "bridge", "DEL", conf, host_ns=host, netns=ns_path(cont))
        c["del_again"] = run_plugin(bindir, "bridge", "DEL", conf, host_ns=host, netns=ns_path(cont))
        c["del_missing_netns"] = run_plugin(bindir, "bridge", "DEL", conf, host_ns=host, netns="/var/run/netns/pn-gone-0000", container_id="c3")
        assert not [f for f in os.listdir(data / "parity") if f[0].isdigit()], impl
        if impl == "ours":
            assert ip_json(host, "link", "show", "master", "pnbr0") == []
        assert ip_json(host, "link", "show", "pnbr0"), f"{impl}: DEL must never remove the bridge"
        codes[impl] = {k: (v.rc != 0, v.code) for k, v in c.items()}
    assert codes["ours"] == codes["reference"]
    expected_failures = {"duplicate_add", "exhausted", "check_no_prev", "malformed", "bad_version", "bad_container_id", "missing_env"}
    assert {k for k, (failed, _) in codes["ours"].items() if failed} == expected_failures
    assert codes["ours"]["malformed"] == (True, 6)
    assert codes["ours"]["bad_version"] == (True, 1)
    assert codes["ours"]["bad_container_id"] == (True, 4)


@pytest.mark.parametrize("version", VERSIONS)
def test_host_local_results_match(version, ours, reference, tmp_path):
    out = {}
    for impl in IMPLS:
        conf = {"cniVersion": version, "name": "hl", "type": "host-local",
                "ipam": {"type": "host-local", "dataDir": str(tmp_path / impl),
                         "ranges": [[{"subnet": "10.60.0.0/24", "rangeStart": "10.60.0.10", "rangeEnd": "10.60.0.11"}],
                                    [{"subnet": "fd00:60::/64"}]],
                         "routes": [{"dst": "0.0.0.0/0"}, {"dst": "fd00::/8", "gw": "fd00:60::1"}]}}
        runs = [run_plugin(bins(ours, reference)[impl], "host-local", "ADD", conf, netns="/x", container_id=f"c{i}")
                for i in range(3)]
        runs.append(run_plugin(bins(ours, reference)[impl], "host-local", "DEL", conf, netns="/x", container_id="c0"))
        runs.append(run_plugin(bins(ours, reference)[impl], "host-local", "ADD", conf, netns="/x", container_id="c9",
                               cni_args="IgnoreUnknown=1;IP=10.60.0.10"))
        out[impl] = [(r.rc, r.code, r.json if r.rc == 0 else None) for r in runs]
    assert out["ours"] == out["reference"]
    assert out["ours"][2][:2] == (1, 999)  # third ADD: the IPv4 range (2 addresses) is exhausted


@pytest.mark.parametrize("version", VERSIONS)
def test_ptp_matches(version, netns, ours, reference, tmp_path):
    seen = {}
    for impl in IMPLS:
        host, cont = netns.new("host"), netns.new("ctr")
        conf = {"cniVersion": version, "name": "ptpnet", "type": "ptp",
                "ipam": {"type": "host-local", "dataDir": str(tmp_path / impl), "subnet": "10.79.0.0/24",
                         "routes": [{"dst": "0.0.0.0/0"}]}}
        r = run_plugin(bins(ours, reference)[impl], "ptp", "ADD", conf, host_ns=host, netns=ns_path(cont))
        assert r.rc == 0, (impl, r)
        cstate = sorted((x["dst"], x.get("gateway", ""), x.get("scope", "")) for x in ip_json(cont, "route"))
        hroutes = sorted(x["dst"] for x in ip_json(host, "route"))
        haddrs = sorted(a["local"] + "/" + str(a["prefixlen"]) for l in ip_json(host, "addr") for a in l.get("addr_info", [])
                        if a.get("scope") != "link" and l["ifname"] != "lo")
        seen[impl] = (normalize(r.json), cstate, hroutes, haddrs)
        d = run_plugin(bins(ours, reference)[impl], "ptp", "DEL", conf, host_ns=host, netns=ns_path(cont))
        assert d.rc == 0, (impl, d)
        assert [l for l in ip_json(host, "link") if l["ifname"] != "lo"] == [], impl
    assert seen["ours"] == seen["reference"]


def test_loopback_matches(netns, ours, reference):
    seen = {}
    for impl in IMPLS:
        cont = netns.new("ctr", lo_up=False)
        conf = {"cniVersion": "1.0.0", "name": "lo", "type": "loopback"}
        r = run_plugin(bins(ours, reference)[impl], "loopback", "ADD", conf, netns=ns_path(cont), ifname="lo")
        up = "UP" in ip_json(cont, "link", "show", "lo")[0]["flags"]
        d = run_plugin(bins(ours, reference)[impl], "loopback", "DEL", conf, netns=ns_path(cont), ifname="lo")
        down = "UP" not in ip_json(cont, "link", "show", "lo")[0]["flags"]
        seen[impl] = (r.rc, normalize(r.json), up, d.rc, down)
    assert seen["ours"] == seen["reference"]
    assert seen["ours"][2] and seen["ours"][4]
