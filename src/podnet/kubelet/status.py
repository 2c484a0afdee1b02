"""A pod's status as the kubelet reports it, from what it knows of the sandbox and from the
container's supervisor (its ContainerStatus file). Pure, except for reading that file and
asking whether the supervisor still lives."""

from __future__ import annotations

from ..proc import pid_alive
from ..runtime.supervisor import read_state

CREATING = {"waiting": {"reason": "ContainerCreating"}}


def container_status(name: str, state_path: str, supervisor_pid: int) -> dict:
    """The container's ContainerStatus. A supervisor that is gone (killed) took its container
    with it: then the container is terminated, whatever the file last said."""
    status = read_state(state_path) if state_path else None
    if status is None:
        status = {"state": CREATING, "lastState": {}, "ready": False, "restartCount": 0}
    status = {k: v for k, v in status.items() if k not in ("pid", "supervisorPid", "started")}
    status["name"] = name
    if supervisor_pid and not pid_alive(supervisor_pid) and "terminated" not in status.get("state", {}):
        status.update(ready=False, state={"terminated": {"exitCode": 137, "reason": "Error",
                                                         "message": "the container's supervisor is gone"}})
    return status


def phase(status: dict, restart_policy: str, supervisor_alive: bool) -> str:
    """The pod phase for its one container's status, as the kubelet derives it."""
    state = status.get("state", {})
    if "running" in state:
        return "Running"
    if "waiting" in state:
        return "Pending" if state["waiting"].get("reason") in ("ContainerCreating", "PodInitializing") else "Running"
    terminated = state.get("terminated", {})
    restarts = restart_policy == "Always" or restart_policy == "OnFailure" and terminated.get("exitCode") != 0
    if supervisor_alive and restarts:
        return "Running"  # about to be restarted
    return "Succeeded" if terminated.get("exitCode") == 0 else "Failed"


def pod_status(previous: dict, pod_ip: str, host_ip: str, container: dict | None, restart_policy: str,
               supervisor_alive: bool, now: str, problem: tuple[str, str] | None = None) -> dict:
    """The pod's status: phase, podIP(s), hostIP, conditions (PodScheduled, Initialized,
    ContainersReady, Ready) and containerStatuses. `problem` (reason, message): the sandbox
    could not be made yet (the pod stays Pending with that reason)."""
    st = {k: v for k, v in previous.items() if k in ("startTime",)}
    st["hostIP"] = host_ip
    st.setdefault("startTime", now)
    if pod_ip:
        st["podIP"] = pod_ip
        st["podIPs"] = [{"ip": pod_ip}]
    if problem is not None or container is None:
        reason, message = problem or ("ContainerCreating", "")
        st["phase"] = "Pending"
        waiting = {"reason": reason, **({"message": message} if message else {})}
        st["containerStatuses"] = [{"name": (container or {}).get("name", ""), "state": {"waiting": waiting},
                                    "lastState": {}, "ready": False, "restartCount": 0}] if container is not None else []
        ready = False
    else:
        st["phase"] = phase(container, restart_policy, supervisor_alive)
        st["containerStatuses"] = [container]
        ready = bool(container.get("ready")) and st["phase"] == "Running"
    conditions = {c["type"]: c for c in previous.get("conditions", [])}
    for ctype, value in (("PodScheduled", True), ("Initialized", True), ("ContainersReady", ready), ("Ready", ready)):
        want = "True" if value else "False"
        old = conditions.get(ctype)
        conditions[ctype] = old if old and old.get("status") == want else {"type": ctype, "status": want,
                                                                             "lastTransitionTime": now}
    st["conditions"] = [conditions[t] for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")]
    return st
