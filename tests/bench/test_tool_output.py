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
