import subprocess
import sys

import pytest

pytestmark = pytest.mark.root


def test_demo_pings_and_leaves_nothing_behind():
    before = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    r = subprocess.run([sys.executable, "-m", "podnet.cli.main", "demo"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 packets received" in r.stdout and "demo passed" in r.stdout
    after = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert [l for l in after.splitlines() if "pn-demo" in l] == [] and after.count("pn-") == before.count("pn-")
