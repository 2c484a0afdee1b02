import subprocess
import sys

import pytest

from podnet.store import open_store

pytestmark = pytest.mark.root


def test_agent_refuses_a_bad_cluster_config_and_names_the_field(netns, tmp_path):
    node = netns.new("node")
    subprocess.run(["ip", "-n", node, "link", "add", "eth0", "type", "veth", "peer", "name", "peer0"], check=True)
    subprocess.run(["ip", "-n", node, "addr", "add", "172.31.9.2/24", "dev", "eth0"], check=True)
    url = f"sqlite://{tmp_path}/store.db"
    store = open_store(url)
    store.put("/podnet/config", '{"Network": "10.244.0.0/16", "Backend": {"Type": "ipip"}}')
    r = subprocess.run(["ip", "netns", "exec", node, sys.executable, "-m", "podnet.cli.main", "agent", "--node", "n1",
                        "--store", url, "--iface", "eth0", "--state-dir", str(tmp_path / "state")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "Backend.Type" in r.stderr and "'ipip'" in r.stderr
    kvs, _ = store.list("/podnet/subnets/")
    assert kvs == []  # nothing was leased
    assert [l for l in subprocess.run(["ip", "-n", node, "-br", "link"], capture_output=True, text=True).stdout.split("\n")
            if l.startswith("podnet.")] == []
