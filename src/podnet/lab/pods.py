"""Pods in the lab: a namespace wired by CNI through the node's own config (the exec protocol,
as a container runtime does it), with a real process in it, and a Pod object in the store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid

from ..api import stored
from ..api.keys import PODS, SERVICES
from ..api.pod import Pod
from ..api.service import DNS_SERVICE_IP
from ..cni.errors import CNIError
from ..cni.runner import ConfList, Runner, RuntimeConf
from ..kernel import netns as kns
from ..plugins.registry import in_process
from ..store import Store
from ..proc import pid_alive
from ..runtime.status import with_live_status
from ..runtime.supervisor import command as supervised
from ..runtime.supervisor import read_state
from .netns_util import delete_netns, ip
from .state import LabError, LabState

LOOPBACK = b'{"cniVersion": "1.0.0", "name": "lo", "type": "loopback"}'


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def get_pod(store: Store, namespace: str, name: str) -> dict | None:
    kv = store.get(f"{PODS}{namespace}/{name}")
    return json.loads(kv.value) if kv else None


def list_pods(state: LabState, store: Store, namespace: str = "default", all_namespaces: bool = False) -> list[dict]:
    kvs, _ = store.list(PODS if all_namespaces else f"{PODS}{namespace}/")
    return [with_live_status(obj) for obj in stored.decode_all(kvs)[0]]


def schedule(state: LabState, store: Store, pod: Pod) -> str:
    names = [n.name for n in state.nodes]
    if pod.node_name:
        if pod.node_name not in names:
            raise LabError(f"{pod.key}: spec.nodeName {pod.node_name!r} is not a node of this lab ({', '.join(names)})")
        return pod.node_name
    counts = {n: 0 for n in names}
    for p in list_pods(state, store, all_namespaces=True):
        counts[p["spec"].get("nodeName", "")] = counts.get(p["spec"].get("nodeName", ""), 0) + 1
    return min(names, key=lambda n: (counts.get(n, 0), n))


def _runner(state: LabState, node: str) -> tuple[Runner, ConfList]:
    d = state.node_dir(node)
    runner = Runner([os.path.join(d, "bin")], cache_dir=os.path.join(d, "cni-cache"), resolve=in_process)
    return runner, ConfList.load(os.path.join(d, "net.d", "10-podnet.conflist"))


def _runtime(state: LabState, pod_ns: str, namespace: str, name: str, uid: str) -> RuntimeConf:
    return RuntimeConf(container_id=uid, netns=f"/var/run/netns/{pod_ns}", ifname="eth0",
                       args=[("IgnoreUnknown", "1"), ("K8S_POD_NAMESPACE", namespace), ("K8S_POD_NAME", name)])


def service_env(store: Store, namespace: str) -> dict[str, str]:
    """{SVC}_SERVICE_HOST/_PORT for the services of the namespace that exist now (as kubelet does)."""
    env: dict[str, str] = {}
    for kv in store.list(f"{SERVICES}{namespace}/")[0]:
        svc = json.loads(kv.value)
        spec = svc["spec"]
        if spec["type"] == "ExternalName" or spec.get("clusterIP") in (None, "", "None"):
            continue
        prefix = svc["metadata"]["name"].upper().replace("-", "_")
        env[f"{prefix}_SERVICE_HOST"] = spec["clusterIP"]
        env[f"{prefix}_SERVICE_PORT"] = str(spec["ports"][0]["port"])
        for p in spec["ports"]:
            if p["name"]:
                env[f"{prefix}_SERVICE_PORT_{p['name'].upper().replace('-', '_')}"] = str(p["port"])
    return env


def resolv_conf_path(pod_ns: str) -> str:
    """`ip netns exec` bind-mounts /etc/netns/<ns>/resolv.conf over /etc/resolv.conf."""
    return f"/etc/netns/{pod_ns}/resolv.conf"


def write_resolv_conf(pod_ns: str, namespace: str, nameserver: str) -> None:
    path = resolv_conf_path(pod_ns)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(f"nameserver {nameserver}\nsearch {namespace}.svc.cluster.local svc.cluster.local cluster.local\n"
                "options ndots:5\n")


def remove_resolv_conf(pod_ns: str) -> None:
    import shutil

    shutil.rmtree(os.path.dirname(resolv_conf_path(pod_ns)), ignore_errors=True)


def create_pod(state: LabState, store: Store, pod: Pod, owner: dict | None = None) -> dict:
    """Create and start a pod; on any failure, undo every step (no half-made pod)."""
    node_name = schedule(state, store, pod)
    node = state.node(node_name)
    uid = str(uuid.uuid4())
    container_id = uid.replace("-", "")
    pod_ns = state.pod_netns(pod.namespace, pod.name)
    runner, net = _runner(state, node_name)
    rt = _runtime(state, pod_ns, pod.namespace, pod.name, container_id)
    lo = ConfList.parse(LOOPBACK)
    made_ns = added = False
    proc = None
    try:
        ip("netns", "add", pod_ns)
        made_ns = True
        with kns.entered(f"/var/run/netns/{node.netns}"):  # the runtime runs on the node
            runner.add(lo, RuntimeConf(container_id=container_id, netns=rt.netns, ifname="lo"))
            result = runner.add(net, rt)
            added = True
        pod_ip = result["ips"][0]["address"].split("/")[0]
        container = pod.containers[0]
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "HOSTNAME": pod.name,
               "POD_NAME": pod.name, "POD_NAMESPACE": pod.namespace, "POD_IP": pod_ip, "NODE_NAME": node_name,
               **service_env(store, pod.namespace), **container.env}
        write_resolv_conf(pod_ns, pod.namespace, DNS_SERVICE_IP)
        state_path = state.pod_state(pod.namespace, pod.name)
        os.makedirs(os.path.dirname(state_path), exist_ok=True)
        for stale in (state_path, state.pod_log(pod.namespace, pod.name)):  # a previous pod of this name
            if os.path.exists(stale):
                os.unlink(stale)
        # The supervisor runs in the pod's namespaces and restarts the container per restartPolicy
        # with the kubelet's back-off; its process group holds the container.
        argv = supervised(container.command, state_path, state.pod_log(pod.namespace, pod.name), pod.restart_policy,
                          container.name)
        proc = subprocess.Popen(["ip", "netns", "exec", pod_ns, *argv], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        _wait_started(state_path, proc)
        obj = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod.name, "namespace": pod.namespace, "uid": uid, "labels": pod.labels,
                         "creationTimestamp": now(), **({"ownerReferences": [owner]} if owner else {}),
                         "annotations": {"podnet.io/netns": pod_ns, "podnet.io/pid": str(proc.pid),
                                         "podnet.io/state": state_path, "podnet.io/container-id": container_id}},
            "spec": {**{k: v for k, v in pod.raw.get("spec", {}).items()}, "nodeName": node_name},
            "status": {"phase": "Running", "podIP": pod_ip, "podIPs": [{"ip": pod_ip}], "hostIP": node.ip,
                       "startTime": now(),
                       "containerStatuses": [{"name": container.name, "ready": True, "restartCount": 0,
                                              "state": {"running": {"startedAt": now()}}}]},
        }
        if not store.create(pod.key, json.dumps(obj)):
            raise LabError(f"{pod.key} was created by someone else meanwhile")
        return obj
    except BaseException:
        if proc is not None:
            _kill(proc.pid)
        if added:
            with kns.entered(f"/var/run/netns/{node.netns}"):
                try:
                    runner.delete(net, rt)
                except CNIError:
                    pass
        if made_ns:
            delete_netns(pod_ns)
            remove_resolv_conf(pod_ns)
        raise


def _wait_started(state_path: str, proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Until the supervisor has tried the first start (running, or a start error recorded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = read_state(state_path)
        if status is not None and "ContainerCreating" not in json.dumps(status["state"]):
            return
        if proc.poll() is not None and status is None:
            raise LabError(f"the pod's supervisor exited with {proc.returncode} before starting anything")
        time.sleep(0.01)


def _kill(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def delete_pod(state: LabState, store: Store, namespace: str, name: str) -> bool:
    kv = store.get(f"{PODS}{namespace}/{name}")
    if kv is None:
        return False
    obj = json.loads(kv.value)
    ann = obj["metadata"].get("annotations", {})
    pod_ns = ann.get("podnet.io/netns") or state.pod_netns(namespace, name)
    pid = int(ann.get("podnet.io/pid", "0"))
    if pid_alive(pid):
        _kill(pid)
    node_name = obj["spec"].get("nodeName", "")
    try:
        node = state.node(node_name)
        runner, net = _runner(state, node_name)
        rt = _runtime(state, pod_ns, namespace, name, ann.get("podnet.io/container-id", ""))
        with kns.entered(f"/var/run/netns/{node.netns}"):
            runner.delete(net, rt)
            runner.delete(ConfList.parse(LOOPBACK), RuntimeConf(container_id=rt.container_id, netns=rt.netns, ifname="lo"))
    except (LabError, CNIError, OSError):
        pass  # the node is gone: its pods' addresses went with it
    delete_netns(pod_ns)
    remove_resolv_conf(pod_ns)
    state_path = ann.get("podnet.io/state")
    if state_path and os.path.exists(state_path):
        os.unlink(state_path)
    store.delete(kv.key)
    return True
