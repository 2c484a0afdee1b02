"""A pod's live status from its supervisor's status file: what `get pods` shows and what
makes an endpoint ready. (Read on the node that runs the pod: in the lab, every node is on
this machine.)"""

from __future__ import annotations

from ..proc import pid_alive
from .supervisor import read_state

STATE = "podnet.io/state"      # annotation: the supervisor's status file
SUPERVISOR = "podnet.io/pid"   # annotation: the supervisor's PID (its process group holds the container)


def container_status(pod: dict) -> dict | None:
    """The container's ContainerStatus as its supervisor last recorded it, or None for a pod
    without one. A supervisor that is gone (killed) takes its container with it: then the
    container is reported terminated, whatever the file last said."""
    ann = pod.get("metadata", {}).get("annotations", {}) or {}
    path = ann.get(STATE)
    if not path:
        return None
    status = read_state(path)
    supervisor = int(ann.get(SUPERVISOR, "0") or 0)
    if status is None:
        status = {"name": "", "state": {"waiting": {"reason": "ContainerCreating"}}, "lastState": {}, "ready": False,
                  "restartCount": 0}
    alive = pid_alive(supervisor)
    if not alive and "terminated" not in status.get("state", {}):
        status = {**status, "ready": False,
                  "state": {"terminated": {"exitCode": 137, "reason": "Error", "message": "the pod's supervisor is gone"}}}
    return {k: v for k, v in status.items() if k not in ("pid", "supervisorPid")} | {"_alive": alive}


def phase(status: dict, restart_policy: str) -> str:
    """The pod phase for one container's status, as the kubelet derives it."""
    state = status.get("state", {})
    if "running" in state:
        return "Running"
    if "waiting" in state:
        return "Pending" if state["waiting"].get("reason") == "ContainerCreating" else "Running"
    terminated = state.get("terminated", {})
    if status.get("_alive") and restart_policy != "Never" and not (restart_policy == "OnFailure" and
                                                                   terminated.get("exitCode") == 0):
        return "Running"  # about to be restarted
    return "Succeeded" if terminated.get("exitCode") == 0 else "Failed"


def with_live_status(pod: dict) -> dict:
    """The pod with status.phase and containerStatuses[0] replaced by what its supervisor says."""
    status = container_status(pod)
    if status is None:
        return pod
    st = dict(pod.get("status", {}))
    live = {k: v for k, v in status.items() if not k.startswith("_")}
    names = [c.get("name", "") for c in pod.get("spec", {}).get("containers", [])]
    live["name"] = live.get("name") or (names[0] if names else "")
    st["containerStatuses"] = [live]
    st["phase"] = phase(status, pod.get("spec", {}).get("restartPolicy", "Always"))
    ready = bool(live.get("ready")) and st["phase"] == "Running"
    st["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
    return {**pod, "status": st}


def pod_ready(pod: dict) -> bool:
    """Ready to serve: its container runs (pods without a supervisor: their process lives)."""
    status = container_status(pod)
    if status is None:
        ann = pod.get("metadata", {}).get("annotations", {}) or {}
        pid = ann.get(SUPERVISOR)
        return pod.get("status", {}).get("phase") == "Running" and (pid_alive(int(pid)) if pid else True)
    return bool(status.get("ready")) and status.get("_alive", False)
