"""The libcni-style runner: conflists, chaining, cache, reverse DEL, GC, with either plugin set."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest

from podnet.cni.errors import CNIError
from podnet.cni.runner import ConfList, Runner, RuntimeConf
from tests.conftest import ip_json, ns_path


def conflist(tmp_path, version="1.0.0", **bridge_extra) -> dict:
    return {"cniVersion": version, "name": "rnet", "plugins": [
        {"type": "bridge", "bridge": "pnbr1", "isGateway": True, "hairpinMode": True,
         "ipam": {"type": "host-local", "dataDir": str(tmp_path / "ipam"), "subnet": "10.81.0.0/24"}, **bridge_extra},
        {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
    ]}


def podnet_cni(host_ns: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", host_ns, sys.executable, "-m", "podnet.cli.main", "cni", "run", *args],
                          capture_output=True, text=True, timeout=60)


def test_injection_of_name_version_capabilities_and_prev_result():
    net = ConfList.parse(json.dumps({"cniVersion": "0.4.0", "name": "n", "plugins": [
        {"type": "a", "capabilities": {"portMappings": True, "bandwidth": False}}]}).encode())
    rt = RuntimeConf(container_id="c", capability_args={"portMappings": [{"hostPort": 1}], "bandwidth": {"x": 1}})
    prev = {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}], "dns": {}}
    conf = json.loads(Runner(["/nonexistent"]).plugin_config(net, net.plugins[0], rt, prev))
    assert conf["name"] == "n" and conf["cniVersion"] == "0.4.0"
    assert conf["runtimeConfig"] == {"portMappings": [{"hostPort": 1}]}  # bandwidth not declared true
    assert conf["prevResult"]["ips"][0]["version"] == "4"  # converted to the list's version


def test_single_conf_is_wrapped_into_a_list():
    net = ConfList.parse(b'{"cniVersion":"1.0.0","name":"n","type":"bridge"}')
    assert [p["type"] for p in net.plugins] == ["bridge"]


@pytest.mark.parametrize("doc,code", [("{", 6), ('{"cniVersion":"1.0.0","name":"n","plugins":[]}', 7),
                                      ('{"cniVersion":"7.0.0","name":"n","type":"x"}', 1),
                                      ('{"cniVersion":"1.0.0","name":"bad/name","type":"x"}', 7),
                                      ('{"cniVersion":"1.0.0","name":"n"}', 7)])
def test_bad_conflists(doc, code):
    with pytest.raises(CNIError) as e:
        ConfList.parse(doc.encode())
    assert e.value.code == code


@pytest.mark.root
@pytest.mark.parametrize("impl", ["ours", "reference"])
def test_conflist_add_check_del_with_cache(impl, netns, ours, reference, tmp_path):
    bindir = {"ours": ours, "reference": reference}[impl]
    host, cont = netns.new("host"), netns.new("ctr")
    conf = tmp_path / "net.conflist"
    conf.write_text(json.dumps(conflist(tmp_path)))
    cache = tmp_path / "cache"
    common = ["--conf", str(conf), "--netns", ns_path(cont), "--container-id", "c1", "--cni-path", bindir,
              "--cache-dir", str(cache)]
    caps = json.dumps({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]})
    add = podnet_cni(host, "ADD", *common, "--cap-args", caps)
    assert add.returncode == 0, add.stdout + add.stderr
    result = json.loads(add.stdout)
    assert result["ips"][0]["address"] == "10.81.0.2/24"
    entry = json.loads((cache / "results" / "rnet-c1-eth0").read_text())
    assert entry["kind"] == "cniCacheV1" and entry["result"] == result
    assert json.loads(base64.b64decode(entry["config"]))["name"] == "rnet"
    chk = podnet_cni(host, "CHECK", *common)
    assert chk.returncode == 0, chk.stdout
    dl = podnet_cni(host, "DEL", *common)
    assert dl.returncode == 0, dl.stdout
    assert not (cache / "results" / "rnet-c1-eth0").exists()
    assert ip_json(host, "link", "show", "master", "pnbr1") == []
    assert podnet_cni(host, "DEL", *common).returncode == 0  # idempotent
    chk2 = podnet_cni(host, "CHECK", *common)
    assert chk2.returncode == 1 and json.loads(chk2.stdout)["code"] == 999


@pytest.mark.root
def test_runner_gc_releases_what_is_not_valid(netns, ours, tmp_path):
    host = netns.new("host")
    conts = [netns.new("ctr") for _ in range(3)]
    doc = conflist(tmp_path, version="1.1.0")
    conf = tmp_path / "net.conflist"
    conf.write_text(json.dumps(doc))
    for i, c in enumerate(conts):
        r = podnet_cni(host, "ADD", "--conf", str(conf), "--netns", ns_path(c), "--container-id", f"c{i}",
                       "--cni-path", ours, "--cache-dir", str(tmp_path / "cache"))
        assert r.returncode == 0, r.stdout
    valid = json.dumps([{"containerID": "c1", "ifname": "eth0"}])
    r = podnet_cni(host, "GC", "--conf", str(conf), "--cni-path", ours, "--cache-dir", str(tmp_path / "cache"),
                   "--valid-attachments", valid)
    assert r.returncode == 0, r.stdout
    left = sorted(f for f in os.listdir(tmp_path / "ipam" / "rnet") if f[0].isdigit())
    assert left == ["10.81.0.3"]
    assert sorted(os.listdir(tmp_path / "cache" / "results")) == ["rnet-c1-eth0"]
    st = podnet_cni(host, "STATUS", "--conf", str(conf), "--cni-path", ours)
    assert st.returncode == 0, st.stdout


def test_cli_reports_missing_plugin_as_cni_error(tmp_path):
    conf = tmp_path / "n.conf"
    conf.write_text('{"cniVersion":"1.0.0","name":"n","type":"nosuchplugin"}')
    r = subprocess.run([sys.executable, "-m", "podnet.cli.main", "cni", "run", "DEL", "--conf", str(conf),
                        "--container-id", "c", "--cni-path", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 1 and json.loads(r.stdout)["code"] == 7 and "nosuchplugin" in json.loads(r.stdout)["msg"]


@pytest.mark.root
def test_failed_add_in_the_middle_of_a_chain_leaves_nothing(netns, ours, tmp_path):
    host, cont = netns.new("host"), netns.new("ctr")
    conf = tmp_path / "net.conflist"
    conf.write_text(json.dumps(conflist(tmp_path)))
    bad_caps = json.dumps({"portMappings": [{"hostPort": 0, "containerPort": 80}]})
    r = podnet_cni(host, "ADD", "--conf", str(conf), "--netns", ns_path(cont), "--container-id", "c1",
                   "--cni-path", ours, "--cache-dir", str(tmp_path / "cache"), "--cap-args", bad_caps)
    assert r.returncode == 1 and json.loads(r.stdout)["code"] == 7, r.stdout
    assert [f for f in os.listdir(tmp_path / "ipam" / "rnet") if f[0].isdigit()] == []
    assert ip_json(host, "link", "show", "master", "pnbr1") == []
    assert [l["ifname"] for l in ip_json(cont, "link")] == ["lo"]
    assert not (tmp_path / "cache" / "results" / "rnet-c1-eth0").exists()
