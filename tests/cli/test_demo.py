import subprocess
import sys

import pytest

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_demo_grid_is_all_reachable_and_leaves_nothing_behind():
    before = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    r = subprocess.run([sys.executable, "-m", "podnet.cli.main", "demo"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "all 36 pairs reach each other" in r.stdout
    assert " X" not in r.stdout.split("reachability")[1].split("all 36")[0]
    after = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "pn-demo" not in after and after.count("pn-") == before.count("pn-")
