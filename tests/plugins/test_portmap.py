"""portmap: host ports reach the container from outside, from the node itself, and hairpin."""

from __future__ import annotations

import subprocess
import time

import pytest

from podnet.plugins import portmap
from tests.conftest import ip_json, ns_path, run_plugin

pytestmark = pytest.mark.root


def test_render_is_pure_and_tagged():
    cmds = portmap.render([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""}],
                          ["10.0.0.2"], "podnet n c eth0", snat=True)
    rules = [c["add"]["rule"] for c in cmds if "rule" in c.get("add", {})]
    tagged = [r for r in rules if r["comment"] == "podnet n c eth0"]
    assert [r["chain"] for r in tagged] == ["hostports", "postrouting", "postrouting"]
    assert tagged[0]["expr"][-1] == {"dnat": {"family": "ip", "addr": "10.0.0.2", "port": 80}}
    shared = [r["chain"] for r in rules if r["comment"] == "podnet hostports"]
    assert shared == ["prerouting", "output"]


@pytest.mark.parametrize("bad", [[{"hostPort": 0, "containerPort": 80}], [{"hostPort": 1, "containerPort": 80, "protocol": "icmp"}],
                                 [{"hostPort": 1, "containerPort": 80, "hostIP": "nope"}], "x"])
def test_bad_mappings_are_code_7(bad):
    from podnet.cni.errors import CNIError

    with pytest.raises(CNIError) as e:
        portmap.load_mappings({"runtimeConfig": {"portMappings": bad}})
    assert e.value.code == 7


def _wget(ns: str, url: str) -> bool:
    # (busybox-static's wget crashes with -T, so the timeout comes from coreutils)
    r = subprocess.run(["ip", "netns", "exec", ns, "timeout", "3", "busybox", "wget", "-q", "-O", "-", url],
                       capture_output=True, text=True, timeout=10)
    return r.returncode == 0 and "podnet-ok" in r.stdout


@pytest.mark.parametrize("impl", ["ours", "reference"])
def test_port_forwarding_reachability(impl, netns, ours, reference, tmp_path):
    bindir = {"ours": ours, "reference": reference}[impl]
    node, cont, client = netns.new("node"), netns.new("ctr"), netns.new("cli")
    # a client outside the node, on a link to it
    subprocess.run(["ip", "-n", node, "link", "add", "up0", "type", "veth", "peer", "name", "up1", "netns", client], check=True)
    subprocess.run(["ip", "-n", node, "addr", "add", "192.0.2.1/24", "dev", "up0"], check=True)
    subprocess.run(["ip", "-n", node, "link", "set", "up0", "up"], check=True)
    subprocess.run(["ip", "-n", client, "addr", "add", "192.0.2.2/24", "dev", "up1"], check=True)
    subprocess.run(["ip", "-n", client, "link", "set", "up1", "up"], check=True)
    version = "1.0.0"
    bridge = {"cniVersion": version, "name": "pm", "type": "bridge", "bridge": "pnbr2", "isGateway": True,
              "hairpinMode": True, "ipam": {"type": "host-local", "dataDir": str(tmp_path), "subnet": "10.82.0.0/24",
                                               "routes": [{"dst": "0.0.0.0/0"}]}}
    r = run_plugin(bindir, "bridge", "ADD", bridge, host_ns=node, netns=ns_path(cont))
    assert r.rc == 0, r
    pm = {"cniVersion": version, "name": "pm", "type": "portmap", "snat": True, "prevResult": r.json,
          "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}}
    p = run_plugin(bindir, "portmap", "ADD", pm, host_ns=node, netns=ns_path(cont))
    assert p.rc == 0, p
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("podnet-ok\n")
    server = subprocess.Popen(["ip", "netns", "exec", cont, "busybox", "httpd", "-f", "-p", "80", "-h", str(www)])
    try:
        time.sleep(0.3)
        seen = {
            "from_outside": _wget(client, "http://192.0.2.1:8080/"),
            "from_node_host_ip": _wget(node, "http://192.0.2.1:8080/"),
            "from_node_localhost": _wget(node, "http://127.0.0.1:8080/"),
            "hairpin": _wget(cont, "http://192.0.2.1:8080/"),
        }
    finally:
        server.kill()
        server.wait()
    assert seen == {k: True for k in seen}, (impl, seen)
    d = run_plugin(bindir, "portmap", "DEL", pm, host_ns=node, netns=ns_path(cont))
    assert d.rc == 0, d
    if impl == "ours":
        out = subprocess.run(["ip", "netns", "exec", node, "nft", "-j", "list", "table", "inet", "podnet_portmap"],
                             capture_output=True, text=True).stdout
        assert "podnet pm c1 eth0" not in out


def test_unsupported_backends_are_code_2(ours, netns):
    from tests.conftest import run_plugin

    host = netns.new("host")  # never run a plugin's ADD in the root namespace, even one meant to fail

    prev = {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}], "dns": {}}
    pm = {"cniVersion": "1.0.0", "name": "n", "type": "portmap", "backend": "iptables", "prevResult": prev,
          "runtimeConfig": {"portMappings": [{"hostPort": 1, "containerPort": 1}]}}
    r = run_plugin(ours, "portmap", "ADD", pm, host_ns=host, netns="/x")
    assert (r.rc, r.code) == (1, 2) and "backend" in r.json["msg"]
    br = {"cniVersion": "1.0.0", "name": "n", "type": "bridge", "ipMasq": True, "ipMasqBackend": "iptables",
          "ipam": {"type": "host-local", "subnet": "10.0.0.0/24"}}
    r = run_plugin(ours, "bridge", "ADD", br, host_ns=host, netns="/x")
    assert (r.rc, r.code) == (1, 2) and "ipMasqBackend" in r.json["msg"]
    assert [l["ifname"] for l in ip_json(host, "link")] == ["lo"]
