"""The benches read other tools' output; odd output is a reason, never a traceback."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "bench")


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", os.path.join(BENCH, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("stdout,why", [
    (json.dumps({"start": {}, "intervals": [], "end": {}, "error": "the server is busy running a test. try again later"}),
     "the server is busy"),
    (json.dumps({"start": {}, "end": {}}), "end.sum_received"),
    ("iperf3: error - unable to connect to server", "not JSON"),
    ("", "not JSON"),
    ("[1, 2]", "odd JSON"),
])
def test_iperf3_without_a_result_is_a_reason(stdout, why):
    gbps, reason = load("pod_network")._bits_per_second(stdout, "")
    assert gbps is None and why in reason


def test_iperf3_with_a_result_is_read():
    doc = {"end": {"sum_received": {"bits_per_second": 12.5e9}}}
    assert load("pod_network")._bits_per_second(json.dumps(doc), "") == (12.5e9, "")


SMOKE = [("cni_latency", ["-n", "2"]), ("agent_cni_latency", ["-n", "2"]), ("antispoof", ["-r", "2", "-n", "5"]),
         ("policy", ["--policies", "20", "--pods", "30", "--connects", "60"]),
         ("pod_network", ["-t", "1", "-n", "1", "-r", "1"]), ("bgp_convergence", ["--sizes", "2"]),
         ("services", ["--sizes", "20", "--latency-sizes", "10", "--connects", "10", "--dns-seconds", "1"]),
         ("proxy_latency", ["--services", "20", "--samples", "1"])]


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.parametrize("name,args", SMOKE, ids=[s[0] for s in SMOKE])
def test_every_bench_runs_to_its_end_on_a_tiny_size(name, args):
    """`make bench` must finish: each bench, run small, ends with its figures and no traceback."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, os.path.join(BENCH, f"{name}.py"), *args], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stdout[-2000:] + r.stderr[-3000:]
    assert r.stdout.strip(), "no figures printed"
