import re
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.root, pytest.mark.slow]


def leftovers(output: str) -> list[str]:
    """The namespaces of the demo's lab (named in its first line) still present: only what this
    demo made counts, as a shared machine may hold other runs' namespaces meanwhile."""
    name = re.search(r"lab (demo[0-9a-f]{4}):", output).group(1)
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(f"pn-{name}-")]


def test_demo_grid_then_policy_and_leaves_nothing_behind():
    r = subprocess.run([sys.executable, "-m", "podnet.cli.main", "demo"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "all 36 pairs reach each other" in r.stdout
    assert " X" not in r.stdout.split("reachability")[1].split("all 36")[0]
    # then backends accept only frontends: each backend is blocked from the 2 other backends
    assert "6 pairs blocked, as the policy model says for all 36" in r.stdout
    after_policy = r.stdout.split("backends-from-frontends")[1].split("pairs blocked")[0]
    assert after_policy.count(" X") == 6
    assert leftovers(r.stdout) == []


def test_demo_bgp_shows_sessions_and_routes():
    r = subprocess.run([sys.executable, "-m", "podnet.cli.main", "demo", "--backend", "bgp"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "all 36 pairs reach each other" in r.stdout and "2 underlay segments" in r.stdout
    assert r.stdout.count("| node-to-node mesh | up    |") == 6  # 3 nodes, 2 sessions each
    assert r.stdout.count("blackhole 10.244.") == 3 and "proto bird" in r.stdout and "dev vxlan.podnet" in r.stdout
    assert "default via 169.254.1.1 dev eth0" in r.stdout
    assert "6 pairs blocked, as the policy model says for all 36" in r.stdout
    assert leftovers(r.stdout) == []
