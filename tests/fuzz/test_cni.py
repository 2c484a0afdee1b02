"""Fuzzing every plugin with mutated configs and environments (a bounded run in `make test`,
many more examples in `make fuzz`), each in a private node namespace."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.fuzz.strategies import EXAMPLES


pytestmark = pytest.mark.fuzz

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


@pytest.mark.root
@pytest.mark.parametrize("plugin", ["bridge", "ptp", "loopback", "host-local", "portmap", "podnet"])
def test_plugin_answers_every_input_with_a_spec_error_and_leaves_nothing(netns, ours, tmp_path, plugin):
    node = netns.new("node")
    pod = netns.new("pod")
    env = dict(os.environ, FUZZ_CNI_PATH=ours, PYTHONPATH=ROOT)
    r = subprocess.run(["ip", "netns", "exec", node, sys.executable, os.path.join(HERE, "cni_worker.py"), plugin,
                        f"/var/run/netns/{pod}", str(tmp_path), str(EXAMPLES or 40)],
                       capture_output=True, text=True, env=env, timeout=1800)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-6000:]
