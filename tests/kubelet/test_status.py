"""The pod status the kubelet reports, from the sandbox and the container's supervisor (pure)."""

from __future__ import annotations

import json
import os

from podnet.api.pod import is_ready
from podnet.kubelet.status import container_status, phase, pod_phase, pod_status

RUNNING = {"state": {"running": {"startedAt": "t"}}, "lastState": {}, "ready": True, "restartCount": 0}


def test_a_running_container_makes_a_ready_running_pod():
    st = pod_status({}, "10.244.1.5", "172.31.0.11", [{"name": "c", **RUNNING}], "Always", True, "now")
    assert st["phase"] == "Running" and st["podIP"] == "10.244.1.5" and st["podIPs"] == [{"ip": "10.244.1.5"}]
    assert {c["type"]: c["status"] for c in st["conditions"]} == {"PodScheduled": "True", "Initialized": "True",
                                                                 "ContainersReady": "True", "Ready": "True"}
    assert is_ready({"metadata": {}, "status": st})
    assert not is_ready({"metadata": {"deletionTimestamp": "t"}, "status": st})  # being deleted: no endpoint


def test_conditions_keep_their_transition_time_until_they_change():
    first = pod_status({}, "10.244.1.5", "h", [{"name": "c", **RUNNING}], "Always", True, "t1")
    same = pod_status(first, "10.244.1.5", "h", [{"name": "c", **RUNNING}], "Always", True, "t2")
    assert same["conditions"] == first["conditions"] and same["startTime"] == "t1"
    down = pod_status(first, "10.244.1.5", "h", [{"name": "c", "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                                                   "ready": False, "restartCount": 1}], "Always", True, "t3")
    assert {c["type"]: c["lastTransitionTime"] for c in down["conditions"]}["Ready"] == "t3"


def test_phases_follow_the_restart_policy():
    done = {"state": {"terminated": {"exitCode": 0}}}
    failed = {"state": {"terminated": {"exitCode": 3}}}
    assert phase(done, "Never", False) == "Succeeded" and phase(failed, "Never", False) == "Failed"
    assert phase(failed, "OnFailure", True) == "Running"  # about to be restarted
    assert phase(done, "OnFailure", True) == "Succeeded"
    assert phase({"state": {"waiting": {"reason": "ContainerCreating"}}}, "Always", True) == "Pending"


def test_a_pod_whose_sandbox_cannot_be_made_stays_pending_with_the_reason():
    st = pod_status({}, "", "h", [{"name": "c"}], "Always", False, "now", problem=("ContainerCreating", "CNI ADD failed: x"))
    assert st["phase"] == "Pending" and "podIP" not in st
    assert st["containerStatuses"][0]["state"]["waiting"] == {"reason": "ContainerCreating", "message": "CNI ADD failed: x"}


def test_a_dead_supervisor_takes_its_container_with_it(tmp_path):
    path = tmp_path / "c.state.json"
    path.write_text(json.dumps({**RUNNING, "pid": 4242, "supervisorPid": 4241}))
    alive = container_status("c", str(path), os.getpid())
    assert "running" in alive["state"] and "pid" not in alive and alive["name"] == "c"
    gone = container_status("c", str(path), 2 ** 22 + 7)  # no such process
    assert gone["state"]["terminated"]["exitCode"] == 137 and gone["ready"] is False


def done(code=0):
    return {"state": {"terminated": {"exitCode": code}}, "ready": False, "restartCount": 0}


def test_several_containers_are_ready_only_together():
    waiting = {"name": "b", "state": {"waiting": {"reason": "CrashLoopBackOff"}}, "ready": False, "restartCount": 2}
    st = pod_status({}, "10.244.1.5", "h", [{"name": "a", **RUNNING}, waiting], "Always", True, "now")
    assert st["phase"] == "Running" and [c["name"] for c in st["containerStatuses"]] == ["a", "b"]
    assert {c["type"]: c["status"] for c in st["conditions"]}["Ready"] == "False"
    both = pod_status({}, "10.244.1.5", "h", [{"name": "a", **RUNNING}, {"name": "b", **RUNNING}], "Always", True, "now")
    assert {c["type"]: c["status"] for c in both["conditions"]}["Ready"] == "True"


def test_init_containers_gate_the_phase_and_initialized():
    init_running = {"name": "i", **RUNNING}
    app = {"name": "a", "state": {"waiting": {"reason": "PodInitializing"}}, "ready": False, "restartCount": 0}
    st = pod_status({}, "10.244.1.5", "h", [app], "Always", True, "now", inits=[init_running])
    assert st["phase"] == "Pending" and st["initContainerStatuses"][0]["name"] == "i"
    assert {c["type"]: c["status"] for c in st["conditions"]}["Initialized"] == "False"
    st = pod_status({}, "10.244.1.5", "h", [{"name": "a", **RUNNING}], "Always", True, "now", inits=[{"name": "i", **done()}])
    assert st["phase"] == "Running" and {c["type"]: c["status"] for c in st["conditions"]}["Initialized"] == "True"
    assert pod_phase([done(1)], [app], "Never", True) == "Failed"      # it will not be rerun
    assert pod_phase([done(1)], [app], "Always", True) == "Pending"    # it will be
    assert pod_phase([], [done(0), done(0)], "Never", False) == "Succeeded"
    assert pod_phase([], [done(0), done(2)], "Never", False) == "Failed"
    assert pod_phase([], [done(0), {"name": "x", **RUNNING}], "Never", True) == "Running"


def test_a_container_without_a_status_file_of_a_dead_runner_never_ran(tmp_path):
    st = container_status("late", str(tmp_path / "late.state.json"), 2 ** 22 + 7, "PodInitializing")
    assert st["state"] == {"waiting": {"reason": "PodInitializing"}}
