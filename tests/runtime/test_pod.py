"""A pod's runner: init containers in order and to completion, then all app containers at
once; SIGTERM stops every container within the grace period."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from podnet.runtime.container import read_state


def container(tmp_path, name, *argv, **extra):
    return {"name": name, "argv": list(argv), "env": {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            "state": str(tmp_path / f"{name}.state.json"), "log": str(tmp_path / f"{name}.log"), **extra}


def start(tmp_path, spec):
    path = tmp_path / "pod.json"
    path.write_text(json.dumps({"backoff": [0.2, 0.4], **spec}))
    return subprocess.Popen([sys.executable, "-m", "podnet.runtime.pod", str(path)])


def wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition never held")


def running(tmp_path, name):
    return "running" in ((read_state(str(tmp_path / f"{name}.state.json")) or {}).get("state") or {})


def test_init_containers_run_in_order_before_the_app_containers(tmp_path):
    order = tmp_path / "order"
    spec = {"restartPolicy": "Always", "grace": 2,
            "initContainers": [container(tmp_path, "one", "sh", "-c", f"sleep 0.3; echo one >> {order}"),
                               container(tmp_path, "two", "sh", "-c", f"echo two >> {order}")],
            "containers": [container(tmp_path, "a", "sh", "-c", f"echo a >> {order}; exec sleep 30"),
                           container(tmp_path, "b", "sh", "-c", f"echo b >> {order}; exec sleep 30")]}
    proc = start(tmp_path, spec)
    try:
        wait_for(lambda: running(tmp_path, "a") and running(tmp_path, "b"))
        lines = order.read_text().split()
        assert lines[:2] == ["one", "two"] and sorted(lines[2:]) == ["a", "b"]
        assert read_state(str(tmp_path / "one.state.json"))["state"]["terminated"]["exitCode"] == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    for name in ("a", "b"):
        assert "terminated" in read_state(str(tmp_path / f"{name}.state.json"))["state"]


def test_a_failing_init_container_is_retried_and_holds_the_app_back(tmp_path):
    marker = tmp_path / "tries"
    spec = {"restartPolicy": "Always", "grace": 1,
            "initContainers": [container(tmp_path, "init", "sh", "-c", f"echo x >> {marker}; exit 1")],
            "containers": [container(tmp_path, "app", "sleep", "30")]}
    proc = start(tmp_path, spec)
    try:
        wait_for(lambda: (read_state(str(tmp_path / "init.state.json")) or {}).get("restartCount", 0) >= 2)
        assert not (tmp_path / "app.state.json").exists()  # never started
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def test_with_restart_policy_never_a_failed_init_container_ends_the_pod(tmp_path):
    spec = {"restartPolicy": "Never", "grace": 1,
            "initContainers": [container(tmp_path, "init", "false")],
            "containers": [container(tmp_path, "app", "sleep", "30")]}
    proc = start(tmp_path, spec)
    assert proc.wait(10) == 0
    assert read_state(str(tmp_path / "init.state.json"))["state"]["terminated"]["exitCode"] == 1
    assert not (tmp_path / "app.state.json").exists()


def test_sigterm_stops_every_container_within_the_grace_period(tmp_path):
    stubborn = "import signal,time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(60)"
    spec = {"restartPolicy": "Always", "grace": 1,
            "containers": [container(tmp_path, "polite", "sleep", "60"),
                           container(tmp_path, "stubborn", sys.executable, "-c", stubborn)]}
    proc = start(tmp_path, spec)
    wait_for(lambda: running(tmp_path, "polite") and running(tmp_path, "stubborn"))
    time.sleep(0.3)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert time.monotonic() - t0 < 4
    assert read_state(str(tmp_path / "polite.state.json"))["state"]["terminated"]["exitCode"] == 143
    assert read_state(str(tmp_path / "stubborn.state.json"))["state"]["terminated"]["exitCode"] == 137
