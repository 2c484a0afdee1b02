"""A pod's container as a supervised process in the pod's namespaces (network, and the mount
namespace `ip netns exec` makes for its resolv.conf). The supervisor (podnet.runtime) restarts
it per restartPolicy and keeps its ContainerStatus in a file; its process group holds the
container, so stopping the group stops everything the pod started."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from ..proc import pid_alive
from ..runtime.supervisor import command as supervised


def start(netns: str, name: str, argv: list[str], env: dict[str, str], state_path: str, log_path: str,
          restart_policy: str, grace: float) -> subprocess.Popen:
    """Start the container's supervisor (it starts the process); the supervisor's Popen."""
    for stale in (state_path, f"{state_path}.tmp"):
        if os.path.exists(stale):
            os.unlink(stale)
    os.makedirs(os.path.dirname(state_path), exist_ok=True)
    cmd = supervised(argv, state_path, log_path, restart_policy, name, grace=grace)
    return subprocess.Popen(["ip", "netns", "exec", netns, *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, env=env, start_new_session=True)


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
