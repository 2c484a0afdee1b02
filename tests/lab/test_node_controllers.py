"""What the kubelet and the node's controllers promise, end to end: a pod whose process ends is
no longer Ready and leaves its Service's endpoints; a rule deleted by hand from the proxy table
is back within one full-sync period."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from podnet.agent.daemon import RESYNC
from podnet.api.pod import parse_pod
from podnet.lab import pods as pods_mod
from podnet.lab import probe
from podnet.runtime.supervisor import read_state
from tests.lab.conftest import wait_for
from tests.lab.test_services import Cluster, service

pytestmark = [pytest.mark.root, pytest.mark.slow]
ECHO = [sys.executable, "-m", "podnet.lab.echo", "--port", "8080"]


def pod(c: Cluster, name: str, node: str, restart: str = "Always") -> dict:
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "ends"}},
           "spec": {"nodeName": node, "restartPolicy": restart,
                    "containers": [{"name": "echo", "command": ECHO, "ports": [{"name": "http", "containerPort": 8080}]}]}}
    return pods_mod.create_pod(c.state, c.store, parse_pod(doc, "test"))


def test_a_pod_whose_process_exits_is_not_ready_and_leaves_the_endpoints(make_lab):
    with Cluster(make_lab(2)) as c:
        stays = pod(c, "stays", "node1")
        ends = pod(c, "ends", "node2", restart="Never")
        c.svc(service("ends", {"app": "ends"}))
        both = sorted([stays["status"]["podIP"], ends["status"]["podIP"]])
        assert wait_for(lambda: c.endpoints("ends") == both, 10), c.endpoints("ends")
        state = ends["metadata"]["annotations"]["podnet.io/state"]
        os.kill(read_state(state)["pid"], signal.SIGKILL)
        t0 = time.monotonic()
        assert wait_for(lambda: c.endpoints("ends") == [stays["status"]["podIP"]], 10), c.endpoints("ends")
        took = time.monotonic() - t0
        now = pods_mod.get_pod(c.store, "default", "ends")
        ready = {cond["type"]: cond["status"] for cond in now["status"]["conditions"]}
        assert now["status"]["phase"] == "Failed" and ready["Ready"] == "False", now["status"]
        assert now["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 137
        print(f"endpoint removed {took:.2f} s after the process died")
        # the service keeps answering, from the pod that stays only
        cip = c.svc(service("ends", {"app": "ends"}))["spec"]["clusterIP"]
        time.sleep(0.5)
        answers = {probe.tcp_exchange(c.state.node("node1").netns, cip, 80)[0].split(" ")[-1] for _ in range(10)}
        assert answers == {"stays"}, answers


def test_a_rule_deleted_by_hand_from_the_proxy_table_comes_back(make_lab):
    with Cluster(make_lab(1)) as c:
        web = pod(c, "web", "node1")
        svc = c.svc(service("web", {"app": "ends"}))
        assert wait_for(lambda: c.endpoints("web") == [web["status"]["podIP"]], 10)
        node = c.state.node("node1").netns

        def rules() -> list[dict]:
            out = subprocess.run(["ip", "netns", "exec", node, "nft", "-j", "list", "table", "ip", "podnet_proxy"],
                                 capture_output=True, text=True, check=True).stdout
            return [i["rule"] for i in json.loads(out)["nftables"] if "rule" in i]

        assert wait_for(lambda: any(r["chain"] == "services" for r in rules()), 10)
        before = len(rules())
        victim = next(r for r in rules() if r["chain"] == "services")  # the ClusterIP lookup
        subprocess.run(["ip", "netns", "exec", node, "nft", "delete", "rule", "ip", "podnet_proxy", victim["chain"], "handle",
                        str(victim["handle"])], check=True)
        assert len(rules()) == before - 1
        t0 = time.monotonic()
        assert wait_for(lambda: len(rules()) == before, RESYNC + 5), "the rule did not come back"
        print(f"restored after {time.monotonic() - t0:.1f} s (full sync every {RESYNC:g} s)")
        first, err, _ = probe.tcp_exchange(node, svc["spec"]["clusterIP"], 80)
        assert not err and first.split(" ")[-1] == "web", (first, err)


def test_a_restarted_kubelet_adopts_its_pods(make_lab):
    from podnet.lab import topology

    with Cluster(make_lab(1)) as c:
        web = pod(c, "web", "node1")
        supervisor = int(web["metadata"]["annotations"]["podnet.io/pid"])
        kubelet_state = topology.kubelet_state_path(c.state, "node1")
        os.kill(read_state(kubelet_state)["pid"], signal.SIGKILL)  # its supervisor starts it again
        assert wait_for(lambda: (read_state(kubelet_state) or {}).get("restartCount") == 1
                        and "running" in read_state(kubelet_state)["state"], 15)
        time.sleep(1)
        again = pods_mod.get_pod(c.store, "default", "web")
        assert int(again["metadata"]["annotations"]["podnet.io/pid"]) == supervisor  # the same pod, not a new one
        assert probe.ping(c.state.node("node1").netns, web["status"]["podIP"])
        assert pods_mod.delete_pod(c.state, c.store, "default", "web", timeout=30)  # and it can still stop it
        netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert web["metadata"]["annotations"]["podnet.io/netns"] not in netns


def test_a_pod_asked_for_while_its_node_cannot_wire_it_waits_then_starts(make_lab):
    from podnet.lab import topology

    with Cluster(make_lab(1)) as c:
        node = c.state.node("node1")
        topology.stop_agent(node, hard=True)  # the CNI socket is gone: ADD fails ("agent is not reachable")
        doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "early"},
               "spec": {"nodeName": "node1", "containers": [{"name": "c", "command": ECHO}]}}
        early = pods_mod.create_pod(c.state, c.store, parse_pod(doc, "test"), wait=False)
        waiting = wait_for(lambda: (pods_mod.get_pod(c.store, "default", "early").get("status", {})
                                    .get("containerStatuses") or [{}])[0].get("state", {}).get("waiting"), 15)
        assert waiting and waiting["reason"] == "ContainerCreating" and "CNI ADD failed" in waiting["message"], waiting
        assert pods_mod.get_pod(c.store, "default", "early")["status"]["phase"] == "Pending"
        topology.start_agent(c.state, node)
        topology.wait_ready(c.state, ["node1"])
        started = pods_mod.wait_pod(c.store, "default", "early", timeout=45)
        assert started["status"]["podIP"] and early is not None
