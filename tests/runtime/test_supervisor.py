"""The supervisor: restart policy, the kubelet's back-off, status files shaped like a
ContainerStatus, start errors named, stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from podnet.runtime.supervisor import read_state


def start(tmp_path, *command, restart="Always", backoff="0.3:0.6", grace="5"):
    state = tmp_path / "state.json"
    log = tmp_path / "out.log"
    proc = subprocess.Popen([sys.executable, "-m", "podnet.runtime.supervisor", "--state", str(state), "--log", str(log),
                             "--restart", restart, "--backoff", backoff, "--grace", grace, "--name", "c", "--", *command],
                            stdin=subprocess.DEVNULL)
    return proc, str(state), log


def wait_state(path, predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status = read_state(path)
        if status is not None and predicate(status):
            return status
        time.sleep(0.02)
    raise AssertionError(f"status never matched: {status}")


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        proc.wait(10)


def test_a_missing_command_is_a_start_error_then_crash_loop(tmp_path):
    proc, state, _ = start(tmp_path, "no-such-command-here")
    try:
        status = wait_state(state, lambda s: s["restartCount"] >= 2 and "waiting" in s["state"])
        assert status["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        last = status["lastState"]["terminated"]
        assert last["reason"] == "StartError" and last["exitCode"] == 128
        assert last["message"] == 'exec: "no-such-command-here": executable file not found in $PATH'
        assert status["ready"] is False and proc.poll() is None  # the supervisor keeps trying
    finally:
        stop(proc)


def test_a_crashing_process_is_restarted_with_growing_back_off(tmp_path):
    proc, state, log = start(tmp_path, sys.executable, "-c",
                             "import os; print('run', os.environ['PODNET_RESTART_COUNT'], flush=True); raise SystemExit(3)",
                             backoff="0.2:0.4")
    try:
        status = wait_state(state, lambda s: s["restartCount"] >= 3)
        assert status["lastState"]["terminated"]["exitCode"] == 3
        assert status["lastState"]["terminated"]["reason"] == "Error"
        lines = log.read_text().split()
        assert lines[:6] == ["run", "0", "run", "1", "run", "2"]  # every run sees its restart count
    finally:
        stop(proc)


@pytest.mark.parametrize("restart,code,restarted", [("Never", 0, False), ("Never", 1, False), ("OnFailure", 0, False),
                                                   ("OnFailure", 1, True), ("Always", 0, True)])
def test_restart_policies(tmp_path, restart, code, restarted):
    proc, state, _ = start(tmp_path, sys.executable, "-c", f"raise SystemExit({code})", restart=restart)
    try:
        if restarted:
            wait_state(state, lambda s: s["restartCount"] >= 1)
            assert proc.poll() is None
        else:
            assert proc.wait(10) == 0
            status = read_state(state)
            assert status["restartCount"] == 0
            assert status["state"]["terminated"]["reason"] == ("Completed" if code == 0 else "Error")
    finally:
        stop(proc)


def test_running_state_names_the_pid_and_sigterm_stops_everything(tmp_path):
    proc, state, _ = start(tmp_path, "sleep", "60")
    try:
        status = wait_state(state, lambda s: "running" in s["state"])
        assert status["ready"] is True and status["pid"] > 0 and status["supervisorPid"] == proc.pid
        child = status["pid"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        status = read_state(state)
        assert status["state"]["terminated"]["exitCode"] == 128 + signal.SIGTERM
        with pytest.raises(ProcessLookupError):
            os.kill(child, 0)
    finally:
        stop(proc)


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path):
    proc, state, _ = start(tmp_path, sys.executable, "-c",
                           "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); "
                           "time.sleep(60)", grace="0.5")
    try:
        wait_state(state, lambda s: "running" in s["state"])
        time.sleep(0.3)  # let it install its handler
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert time.monotonic() - t0 < 5
        assert read_state(state)["state"]["terminated"]["exitCode"] == 128 + signal.SIGKILL
    finally:
        stop(proc)
