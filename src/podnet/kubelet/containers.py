"""A pod's containers as one supervised process tree: the pod's runner (podnet.runtime.pod),
started inside the pod's namespaces (its network namespace and the mount namespace `ip netns
exec` makes for its /etc files, then its UTS namespace), runs every container and restarts
them per restartPolicy. Its process group holds the pod, so stopping the group stops
everything the pod started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from ..proc import pid_alive


def start(netns: str, uts: str, spec_path: str, env: dict[str, str]) -> subprocess.Popen:
    """Start the pod's runner (it starts the containers); its Popen."""
    cmd = ["ip", "netns", "exec", netns, "nsenter", f"--uts={uts}", "--", sys.executable, "-m", "podnet.runtime.pod", spec_path]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env,
                            start_new_session=True)


def stop(supervisor_pid: int, grace: float) -> None:
    """SIGTERM to the supervisor (it passes SIGTERM on and kills after `grace`), then SIGKILL
    to the whole group once grace (plus a little) is over."""
    if not pid_alive(supervisor_pid):
        _kill_group(supervisor_pid)
        return
    try:
        os.kill(supervisor_pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace + 2
    while pid_alive(supervisor_pid) and time.monotonic() < deadline:
        _reap(supervisor_pid)
        time.sleep(0.05)
    _kill_group(supervisor_pid)


def _kill_group(pgid: int) -> None:
    if pgid <= 0:
        return
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    _reap(pgid)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
