"""The agent's registries: a backend from another module is offered by the CLI and driven by the
agent; a controller that raises is retried with back-off while the others keep syncing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def podnet(*args: str, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "podnet.cli.main", *args], capture_output=True, text=True, env=env, timeout=300)
    if check:
        assert r.returncode == 0, f"podnet {' '.join(args)}: {r.stdout}{r.stderr}"
    return r


def test_a_controller_that_raises_is_retried_and_the_others_keep_syncing(tmp_path):
    from podnet.agent import daemon
    from podnet.agent.controllers import Controller

    calls: dict[str, int] = {"broken": 0, "fine": 0}

    class Broken(Controller):
        name = "broken"

        def sync(self, full: bool) -> None:
            calls["broken"] += 1
            raise RuntimeError("no")

    class Fine(Controller):
        name = "fine"

        def sync(self, full: bool) -> None:
            calls["fine"] += 1

    agent = daemon.Agent("n1", "sqlite:///nowhere", "eth0", str(tmp_path), controllers=(Broken, Fine))
    for round_ in range(3):
        agent.pending |= {"broken", "fine"}
        agent.run_pending(rev=round_)
    assert calls == {"broken": 1, "fine": 3}      # backing off: not called again at once
    assert "broken" in agent.pending              # but still owed a sync
    agent._retry_at["broken"] = time.monotonic() - 1  # the back-off is over
    agent.run_pending(rev=4)
    assert calls["broken"] == 2 and agent._failures["broken"] == 2
    assert agent._retry_at["broken"] - time.monotonic() > 0.5  # the second failure waits longer (1 s)


def test_a_failing_controller_does_not_block_policy_status(tmp_path):
    from podnet.agent import daemon
    from podnet.agent.controllers import Controller

    class Broken(Controller):
        name = "routes"

        def sync(self, full: bool) -> None:
            raise OSError("netlink said no")

    agent = daemon.Agent("n1", "sqlite:///nowhere", "eth0", str(tmp_path), controllers=(Broken,))
    agent.pending.add("routes")
    agent.run_pending(rev=7)
    assert json.load(open(tmp_path / "policy-status.json"))["revision"] == 7


@pytest.mark.root
@pytest.mark.slow
def test_a_backend_from_another_module_is_offered_and_driven(tmp_path):
    env = dict(os.environ, PODNET_BACKENDS="tests.agent.sample_backend", PYTHONPATH=ROOT,
               PODNET_LAB_DIR=str(tmp_path / "lab"))
    assert "static-gw" in podnet("lab", "up", "--help", env=env).stdout
    plain = {k: v for k, v in env.items() if k != "PODNET_BACKENDS"}
    assert "static-gw" not in podnet("lab", "up", "--help", env=plain).stdout
    name = "g" + uuid.uuid4().hex[:5]
    try:
        podnet("lab", "up", "--nodes", "2", "--backend", "static-gw", "--name", name, env=env)
        node1 = f"pn-{name}-node1"
        routes = json.loads(subprocess.run(["ip", "-n", node1, "-j", "route", "show", "proto", "158"], capture_output=True,
                                           text=True).stdout or "[]")
        assert [(r["dst"], r.get("gateway")) for r in routes] == [("10.244.2.0/24", "172.31.0.12")]
        beat = tmp_path / "lab" / "nodes" / "node1" / "static-gw.task"
        assert beat.exists()
        first = beat.read_text()
        time.sleep(0.6)
        assert beat.read_text() != first  # the task keeps running
        wide = podnet("get", "nodes", "-o", "wide", env=env).stdout
        assert wide.count("static-gw") == 2
        pods = tmp_path / "pods.yaml"
        pods.write_text("\n---\n".join(json.dumps(
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i}"},
             "spec": {"nodeName": f"node{i}", "containers": [{"name": "c", "command": ["sleep", "600"]}]}}) for i in (1, 2)))
        podnet("apply", "-f", str(pods), env=env)
        podnet("wait", "--for=condition=Ready", "pod/p1", "pod/p2", "--timeout", "60s", env=env)
        ip2 = json.loads(podnet("get", "pod", "p2", "-o", "json", env=env).stdout)["status"]["podIP"]
        r = podnet("exec", "p1", "--", "busybox", "ping", "-c", "1", "-W", "2", ip2, env=env, check=False)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        podnet("lab", "down", "--name", name, env=env, check=False)
