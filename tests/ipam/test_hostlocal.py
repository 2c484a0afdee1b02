"""host-local allocation semantics, GC, and the store under concurrency and kill -9."""

from __future__ import annotations

import ipaddress
import json
import os
import random
import signal
import subprocess
import time

import pytest

from podnet.cni.errors import CNIError
from podnet.ipam import hostlocal
from podnet.ipam.ranges import RangeSet
from podnet.ipam.store import Store


def cfg(tmp_path, ranges, **kw) -> hostlocal.IPAMConfig:
    conf = {"name": "net", "ipam": {"type": "host-local", "dataDir": str(tmp_path), "ranges": ranges, **kw}}
    return hostlocal.IPAMConfig.from_conf(conf)


def addr(result, i=0) -> str:
    return result["ips"][i]["address"]


def test_defaults_skip_network_gateway_and_broadcast(tmp_path):
    c = cfg(tmp_path, [[{"subnet": "10.0.0.0/29"}]])
    got = [addr(hostlocal.allocate(c, f"c{i}", "eth0")) for i in range(5)]
    assert got == [f"10.0.0.{i}/29" for i in range(2, 7)]
    with pytest.raises(CNIError, match="no IP addresses available in range set: 10.0.0.1-10.0.0.6"):
        hostlocal.allocate(c, "c9", "eth0")


def test_round_robin_continues_after_release(tmp_path):
    c = cfg(tmp_path, [[{"subnet": "10.0.0.0/29"}]])
    hostlocal.allocate(c, "a", "eth0")  # .2
    hostlocal.allocate(c, "b", "eth0")  # .3
    hostlocal.release(c, "a", "eth0")
    assert addr(hostlocal.allocate(c, "c", "eth0")) == "10.0.0.4/29"  # not the freed .2


def test_wraps_across_ranges_of_a_set(tmp_path):
    c = cfg(tmp_path, [[{"subnet": "10.0.0.0/30"}, {"subnet": "10.0.1.0/30"}]])
    assert [addr(hostlocal.allocate(c, f"c{i}", "eth0")) for i in range(2)] == ["10.0.0.2/30", "10.0.1.2/30"]
    hostlocal.release(c, "c0", "eth0")
    assert addr(hostlocal.allocate(c, "c2", "eth0")) == "10.0.0.2/30"


def test_dual_stack_one_address_per_set(tmp_path):
    c = cfg(tmp_path, [[{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/120"}]])
    r = hostlocal.allocate(c, "c", "eth0")
    assert [ip["address"] for ip in r["ips"]] == ["10.0.0.2/24", "fd00::2/120"]


def test_duplicate_add_is_an_error_and_keeps_first_allocation(tmp_path):
    c = cfg(tmp_path, [[{"subnet": "10.0.0.0/24"}]])
    hostlocal.allocate(c, "c", "eth0")
    with pytest.raises(CNIError, match="duplicate allocation is not allowed"):
        hostlocal.allocate(c, "c", "eth0")
    with Store(str(tmp_path), "net") as s:
        assert [ip for ip, *_ in s.allocations()] == ["10.0.0.2"]
    assert addr(hostlocal.allocate(c, "c", "eth1")) == "10.0.0.3/24"  # other ifname: fine


def test_requested_ip_and_its_errors(tmp_path):
    base = {"name": "net", "ipam": {"type": "host-local", "dataDir": str(tmp_path), "ranges": [[{"subnet": "10.0.0.0/24"}]]}}
    c = hostlocal.IPAMConfig.from_conf(base, {"IP": "10.0.0.50"})
    assert addr(hostlocal.allocate(c, "a", "eth0")) == "10.0.0.50/24"
    with pytest.raises(CNIError, match="not available"):
        hostlocal.allocate(hostlocal.IPAMConfig.from_conf(base, {"IP": "10.0.0.50"}), "b", "eth0")
    with pytest.raises(CNIError, match="gateway"):
        hostlocal.allocate(hostlocal.IPAMConfig.from_conf(base, {"IP": "10.0.0.1"}), "b", "eth0")
    with pytest.raises(CNIError, match="failed to allocate all requested IPs: 192.168.9.9"):
        hostlocal.allocate(hostlocal.IPAMConfig.from_conf(dict(base, runtimeConfig={"ips": ["192.168.9.9/24"]})), "b", "eth0")
    with Store(str(tmp_path), "net") as s:  # the failures left nothing behind
        assert sorted(ip for ip, *_ in s.allocations()) == ["10.0.0.50"]


def test_failed_second_range_set_releases_the_first(tmp_path):
    c = cfg(tmp_path, [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.1.0.0/30"}]])
    hostlocal.allocate(c, "a", "eth0")
    with pytest.raises(CNIError, match="range 1"):
        hostlocal.allocate(c, "b", "eth0")
    with Store(str(tmp_path), "net") as s:
        assert sorted(cid for _, cid, _ in s.allocations()) == ["a", "a"]


@pytest.mark.parametrize("ranges,msg", [
    ([[{"subnet": "10.0.0.0/31"}]], "too small"),
    ([[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.1.1"}]], "not in network"),
    ([[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.0.0.0/25"}]], "overlaps"),
    ([[{"subnet": "10.0.0.0/24"}, {"subnet": "fd00::/64"}]], "mixed"),
    ([[{"subnet": "banana"}]], "invalid subnet"),
    ([], "no IP ranges"),
])
def test_bad_config_is_code_7(tmp_path, ranges, msg):
    with pytest.raises(CNIError, match=msg) as e:
        cfg(tmp_path, ranges)
    assert e.value.code == 7


def test_legacy_subnet_form_and_resolv_conf(tmp_path):
    (tmp_path / "resolv.conf").write_text("nameserver 10.96.0.10\nsearch a.svc b.svc\noptions ndots:5\n")
    conf = {"name": "net", "ipam": {"type": "host-local", "dataDir": str(tmp_path), "subnet": "10.5.0.0/16",
                                    "rangeStart": "10.5.3.0", "gateway": "10.5.0.254",
                                    "resolvConf": str(tmp_path / "resolv.conf")}}
    r = hostlocal.allocate(hostlocal.IPAMConfig.from_conf(conf), "c", "eth0")
    assert r["ips"] == [{"address": "10.5.3.0/16", "gateway": "10.5.0.254"}]
    assert r["dns"] == {"nameservers": ["10.96.0.10"], "search": ["a.svc", "b.svc"], "options": ["ndots:5"]}


def test_gc_releases_everything_not_valid_including_half_written(tmp_path):
    c = cfg(tmp_path, [[{"subnet": "10.0.0.0/24"}]])
    for cid in ("keep", "drop1", "drop2"):
        hostlocal.allocate(c, cid, "eth0")
    hostlocal.allocate(c, "keep", "net1")
    (tmp_path / "net" / "10.0.0.99").write_bytes(b"")  # a reservation cut short by kill -9
    released = hostlocal.collect_garbage(c, [{"containerID": "keep", "ifname": "eth0"}, {"containerID": "keep", "ifname": "net1"}])
    assert sorted(released) == ["10.0.0.3", "10.0.0.4", "10.0.0.99"]
    with Store(str(tmp_path), "net") as s:
        assert sorted((cid, ifn) for _, cid, ifn in s.allocations()) == [("keep", "eth0"), ("keep", "net1")]


def test_candidates_visit_every_address_once():
    rs = RangeSet.parse([{"subnet": "10.0.0.0/29"}, {"subnet": "10.0.1.0/29", "gateway": "10.0.1.6"}])
    for last in (None, "10.0.0.4", "10.0.1.5", "10.0.0.6"):
        seen = [str(ip) for ip, _ in rs.candidates(ipaddress.ip_address(last) if last else None)]
        assert len(seen) == len(set(seen)) == 10  # 6 + 6 minus the two gateways
        assert "10.0.0.1" not in seen and "10.0.1.6" not in seen


# -- the executable under concurrency --------------------------------------------------------

def _conf(tmp_path, version="1.1.0"):
    return json.dumps({"cniVersion": version, "name": "conc", "type": "host-local",
                       "ipam": {"type": "host-local", "dataDir": str(tmp_path), "subnet": "10.40.0.0/16"}})


def _spawn(ours, conf, cid, command="ADD"):
    env = dict(os.environ, CNI_COMMAND=command, CNI_CONTAINERID=cid, CNI_NETNS="/x", CNI_IFNAME="eth0", CNI_PATH=ours)
    p = subprocess.Popen([os.path.join(ours, "host-local")], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    p.stdin.write(conf.encode())
    p.stdin.close()
    return p


@pytest.mark.slow
def test_200_concurrent_adds_get_200_distinct_addresses(ours, tmp_path):
    conf = _conf(tmp_path)
    procs = [_spawn(ours, conf, f"c{i}") for i in range(200)]
    results = []
    for p in procs:
        out = p.stdout.read()
        assert p.wait() == 0, p.stderr.read()
        results.append(json.loads(out)["ips"][0]["address"])
    assert len(set(results)) == 200
    files = [f for f in os.listdir(tmp_path / "conc") if f[0].isdigit()]
    assert sorted(files) == sorted(r.split("/")[0] for r in results)


@pytest.mark.slow
def test_kill_9_during_adds_leaves_nothing_gc_does_not_reclaim(ours, tmp_path):
    conf = _conf(tmp_path)
    rng = random.Random(7)
    completed = []
    for round_ in range(6):
        procs = [(f"r{round_}c{i}", _spawn(ours, conf, f"r{round_}c{i}")) for i in range(25)]
        time.sleep(rng.uniform(0.005, 0.04))
        for cid, p in procs:
            if rng.random() < 0.6:
                p.send_signal(signal.SIGKILL)
        for cid, p in procs:
            out = p.stdout.read()
            if p.wait() == 0 and out:
                completed.append(cid)
    # What the runtime knows about is exactly the ADDs that returned a result.
    valid = [{"containerID": cid, "ifname": "eth0"} for cid in completed]
    gc_conf = json.loads(conf)
    gc_conf["cni.dev/valid-attachments"] = valid
    p = _spawn(ours, json.dumps(gc_conf), "", command="GC")
    assert p.wait() == 0, p.stdout.read() + p.stderr.read()
    with Store(str(tmp_path), "conc") as s:
        owners = sorted(cid for _, cid, _ in s.allocations())
    assert owners == sorted(completed)
    # and the store still works: no stale lock, no broken marker
    p = _spawn(ours, conf, "after")
    assert p.wait() == 0, p.stdout.read()


def test_a_held_lock_times_out_with_code_11(tmp_path):
    import fcntl as _fcntl

    (tmp_path / "net").mkdir()
    fd = os.open(tmp_path / "net" / "lock", os.O_RDWR | os.O_CREAT)
    _fcntl.flock(fd, _fcntl.LOCK_EX)
    try:
        with pytest.raises(CNIError) as e:
            with Store(str(tmp_path), "net", lock_timeout=0.2):
                pass
        assert e.value.code == 11
    finally:
        os.close(fd)
    with Store(str(tmp_path), "net", lock_timeout=0.2):  # free again
        pass


def test_status_is_50_when_a_range_set_is_full(ours, tmp_path):
    conf = {"cniVersion": "1.1.0", "name": "st", "type": "host-local",
            "ipam": {"type": "host-local", "dataDir": str(tmp_path), "subnet": "10.0.0.0/30"}}
    from tests.conftest import run_plugin

    assert run_plugin(ours, "host-local", "STATUS", conf).rc == 0
    assert run_plugin(ours, "host-local", "ADD", conf, netns="/x").rc == 0
    r = run_plugin(ours, "host-local", "STATUS", conf)
    assert (r.rc, r.code) == (1, 50) and "no free address" in r.json["msg"]
