"""Process liveness, shared by the lab (pod status) and the agent (endpoint readiness)."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def pod_running(pod: dict) -> bool:
    """Running in the store and, when the lab recorded its process, that process is alive."""
    if pod.get("status", {}).get("phase") != "Running":
        return False
    pid = pod.get("metadata", {}).get("annotations", {}).get("podnet.io/pid")
    return pid_alive(int(pid)) if pid else True
