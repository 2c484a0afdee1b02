"""A pod's status as the kubelet reports it, from what it knows of the sandbox and from the
pod's runner (a ContainerStatus file per container). Pure, except for reading that file and
asking whether the supervisor still lives."""

from __future__ import annotations

from ..proc import pid_alive
from ..runtime.supervisor import read_state


def container_status(name: str, state_path: str, supervisor_pid: int, waiting: str = "ContainerCreating") -> dict:
    """The container's ContainerStatus (`waiting` the reason while it has none yet). A
    supervisor that is gone (killed) took its container with it: then the container is
    terminated, whatever the file last said."""
    status = read_state(state_path) if state_path else None
    if status is None:
        if not pid_alive(supervisor_pid):
            return pending_status(name, waiting)  # never started: not "terminated"
        status = {"state": {"waiting": {"reason": waiting}}, "lastState": {}, "ready": False, "restartCount": 0}
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


def pending_status(name: str, reason: str) -> dict:
    """A container that has no status file yet: waiting for its sandbox or its init containers."""
    return {"name": name, "state": {"waiting": {"reason": reason}}, "lastState": {}, "ready": False, "restartCount": 0}


def init_done(status: dict) -> bool:
    return status.get("state", {}).get("terminated", {}).get("exitCode") == 0


def init_failed(status: dict, restart_policy: str, runner_alive: bool) -> bool:
    """An init container that failed and will not be run again: the pod has failed."""
    terminated = status.get("state", {}).get("terminated")
    return bool(terminated) and terminated.get("exitCode") != 0 and (restart_policy == "Never" or not runner_alive)


def pod_phase(inits: list[dict], containers: list[dict], restart_policy: str, runner_alive: bool) -> str:
    """The phase as the kubelet derives it: Pending until the init containers are done and a
    container has started; Running while one runs or will be restarted; then Succeeded (all
    exited 0) or Failed."""
    if any(init_failed(s, restart_policy, runner_alive) for s in inits):
        return "Failed"
    if not all(init_done(s) for s in inits):
        return "Pending"
    phases = [phase(s, restart_policy, runner_alive) for s in containers]
    if "Running" in phases:
        return "Running"
    if "Pending" in phases:
        return "Pending"
    return "Failed" if "Failed" in phases else "Succeeded"


def pod_status(previous: dict, pod_ip: str, host_ip: str, containers: list[dict], restart_policy: str,
               runner_alive: bool, now: str, problem: tuple[str, str] | None = None, inits: list[dict] | None = None) -> dict:
    """The pod's status: phase, podIP(s), hostIP, conditions (PodScheduled, Initialized,
    ContainersReady, Ready), initContainerStatuses and containerStatuses. `problem` (reason,
    message): the sandbox could not be made yet (the pod stays Pending with that reason)."""
    inits = inits or []
    st = {k: v for k, v in previous.items() if k in ("startTime",)}
    st["hostIP"] = host_ip
    st.setdefault("startTime", now)
    if pod_ip:
        st["podIP"] = pod_ip
        st["podIPs"] = [{"ip": pod_ip}]
    if problem is not None:
        reason, message = problem
        waiting = {"reason": reason, **({"message": message} if message else {})}
        containers = [{**pending_status(c.get("name", ""), reason), "state": {"waiting": waiting}} for c in containers]
        st["phase"] = "Pending"
        ready = initialized = False
    else:
        st["phase"] = pod_phase(inits, containers, restart_policy, runner_alive)
        initialized = all(init_done(s) for s in inits)
        ready = st["phase"] == "Running" and bool(containers) and all(c.get("ready") for c in containers)
    if inits:
        st["initContainerStatuses"] = inits
    st["containerStatuses"] = containers
    conditions = {c["type"]: c for c in previous.get("conditions", [])}
    for ctype, value in (("PodScheduled", True), ("Initialized", initialized or not inits), ("ContainersReady", ready),
                         ("Ready", ready)):
        want = "True" if value else "False"
        old = conditions.get(ctype)
        conditions[ctype] = old if old and old.get("status") == want else {"type": ctype, "status": want,
                                                                             "lastTransitionTime": now}
    st["conditions"] = [conditions[t] for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")]
    return st
