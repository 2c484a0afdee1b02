"""Malformed input to every plugin executable gets the spec's error JSON on stdout (never a
Python internal message or a traceback) and leaves nothing behind."""

from __future__ import annotations

import os

import pytest

from tests.conftest import ip_json, run_plugin

PLUGINS = ("bridge", "host-local", "loopback", "portmap", "ptp", "podnet")
BROKEN = ("{not json", "[1,2", '{"cniVersion": "1.0.0", "name": "n", "type": "bridge"', "\xff\xfe", "[" * 5000)


@pytest.mark.root
@pytest.mark.parametrize("plugin", PLUGINS)
@pytest.mark.parametrize("stdin", BROKEN, ids=["not-json", "open-list", "open-object", "not-utf8", "deep"])
def test_malformed_config_is_error_6(ours, netns, plugin, stdin):
    node = netns.new("node")
    r = run_plugin(ours, plugin, "ADD", stdin, host_ns=node, netns="/var/run/netns/none")
    assert r.rc == 1, r
    assert r.json is not None, f"no error JSON on stdout: {r}"
    assert r.code == 6, r
    assert "Scanner" not in r.json["msg"] and "NULL" not in r.json["msg"], r
    assert "Traceback" not in r.stderr, r


@pytest.mark.root
@pytest.mark.parametrize("plugin", ("bridge", "ptp", "loopback"))
def test_regular_file_as_netns_is_named(ours, netns, tmp_path, plugin):
    node = netns.new("node")
    fake = tmp_path / "not-a-netns"
    fake.write_text("")
    data = tmp_path / "ipam"
    conf = {"cniVersion": "1.0.0", "name": "t", "type": plugin, "bridge": "pnt0",
            "ipam": {"type": "host-local", "subnet": "10.99.0.0/24", "dataDir": str(data)}}
    r = run_plugin(ours, plugin, "ADD", conf, host_ns=node, netns=str(fake))
    assert r.rc == 1 and r.json is not None, r
    assert r.json["msg"] == f'failed to open netns "{fake}": not a network namespace', r
    assert r.code == 999, r  # the reference's code for this case
    # nothing left behind: no device in the node, no address reserved
    assert [link["ifname"] for link in ip_json(node, "link")] == ["lo"]
    reserved = [f for f in os.listdir(data / "t")] if (data / "t").exists() else []
    assert not [f for f in reserved if f[0].isdigit()], reserved
