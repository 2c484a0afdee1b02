"""One container's life under podnet.runtime.container: probes drive `ready` and restarts,
hooks run around the process, a stop is graceful. Exec probes only: no network needed."""

from __future__ import annotations

import sys
import threading
import time

from podnet.runtime.container import Container, read_state

FAST = {"periodSeconds": 0.1, "timeoutSeconds": 2, "successThreshold": 1, "failureThreshold": 1, "initialDelaySeconds": 0}


def exec_probe(*command, **overrides):
    return {"exec": {"command": list(command)}, **FAST, **overrides}


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition never held")


def launch(tmp_path, argv, **kw) -> tuple[Container, threading.Thread, str]:
    state = str(tmp_path / "c.state.json")
    c = Container("c", argv, state, str(tmp_path / "c.log"), backoff=(0.2, 0.4), grace=5, **kw)
    t = threading.Thread(target=c.run, daemon=True)
    t.start()
    return c, t, state


def status(state):
    return read_state(state) or {}


def test_readiness_follows_its_probe_both_ways(tmp_path):
    flag = tmp_path / "ready"
    c, t, state = launch(tmp_path, ["sleep", "30"], probes={"readinessProbe": exec_probe("test", "-f", str(flag))})
    try:
        wait_for(lambda: "running" in status(state).get("state", {}))
        time.sleep(0.5)
        assert status(state)["ready"] is False  # running, but the probe fails
        flag.touch()
        wait_for(lambda: status(state)["ready"] is True)
        flag.unlink()
        wait_for(lambda: status(state)["ready"] is False)
        assert status(state)["restartCount"] == 0  # readiness never restarts
    finally:
        c.stop(1)
        t.join(10)


def test_a_failing_liveness_probe_restarts_the_container_and_counts_it(tmp_path):
    alive = tmp_path / "alive"
    alive.touch()
    c, t, state = launch(tmp_path, ["sleep", "30"], probes={"livenessProbe": exec_probe("test", "-f", str(alive))})
    try:
        first = wait_for(lambda: status(state).get("pid"))
        time.sleep(0.5)
        assert status(state)["pid"] == first and status(state)["restartCount"] == 0
        alive.unlink()  # "hung": the probe fails from now on
        s = wait_for(lambda: status(state) if status(state).get("restartCount", 0) >= 1 else None)
        assert "failed liveness probe" in s["lastState"]["terminated"]["message"]
        alive.touch()
        wait_for(lambda: status(state).get("pid") not in (0, first))  # the restarted process runs on
    finally:
        c.stop(1)
        t.join(10)


def test_a_startup_probe_holds_readiness_back_until_it_passes(tmp_path):
    started = tmp_path / "started"
    c, t, state = launch(tmp_path, ["sleep", "30"], probes={"startupProbe": exec_probe("test", "-f", str(started),
                                                                                        failureThreshold=1000)})
    try:
        wait_for(lambda: "running" in status(state).get("state", {}))
        time.sleep(0.4)
        assert status(state)["ready"] is False and status(state)["started"] is False
        started.touch()
        wait_for(lambda: status(state)["ready"] is True and status(state)["started"] is True)
    finally:
        c.stop(1)
        t.join(10)


def test_stop_runs_pre_stop_first_then_sigterm(tmp_path):
    order = tmp_path / "order"
    script = f"import signal,sys,time\ndef bye(*_):\n open({str(order)!r},'a').write('term\\n'); sys.exit(0)\n" \
             "signal.signal(signal.SIGTERM, bye)\nprint('up', flush=True)\ntime.sleep(60)"
    c, t, state = launch(tmp_path, [sys.executable, "-c", script], pre_stop=["sh", "-c", f"echo prestop >> {order}"])
    wait_for(lambda: "up" in (tmp_path / "c.log").read_text() if (tmp_path / "c.log").exists() else False)
    c.stop(5)
    t.join(10)
    assert order.read_text().split() == ["prestop", "term"]
    assert status(state)["state"]["terminated"]["exitCode"] == 0


def test_a_process_ignoring_sigterm_is_killed_when_the_grace_period_ends(tmp_path):
    script = "import signal,time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('up', flush=True)\ntime.sleep(60)"
    c, t, state = launch(tmp_path, [sys.executable, "-c", script])
    wait_for(lambda: "up" in (tmp_path / "c.log").read_text() if (tmp_path / "c.log").exists() else False)
    t0 = time.monotonic()
    c.stop(1)
    t.join(10)
    took = time.monotonic() - t0
    assert 0.9 <= took < 5
    assert status(state)["state"]["terminated"]["exitCode"] == 137  # SIGKILL
