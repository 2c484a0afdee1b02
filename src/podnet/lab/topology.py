"""Bringing a lab up and down: underlay, nodes, agents, and the store."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from typing import Callable

from ..api import cluster
from ..api.errors import ValidationError
from ..api.ippool import DEFAULT_BLOCK_SIZE, ROUTE_REFLECTOR_LABEL, default_pool, pool_problem_with
from ..api.keys import CONFIG, IPPOOLS, NODES
from ..api.service import LB_POOL
from ..kernel import netns as kns
from ..kubelet import sandbox
from ..store import open_store
from ..store.etcd_server import EtcdServer
from ..proc import pid_alive
from ..runtime.supervisor import command as supervised
from ..runtime.supervisor import read_state
from .netns_util import delete_netns, kill_netns_processes, list_netns
from . import build
from .state import LabError, LabState, NodeState, ns_prefix
from .topo import lab_topology

Progress = Callable[[str], None]
CLUSTER_CIDR = "10.244.0.0/16"
DEFAULT_TTL = 24 * 3600  # subnet leases, as flannel: liveness is the Node heartbeat, not the lease


def _quiet(_: str) -> None:
    pass


def store_context(state: LabState):
    """Talking to the lab's store from this thread: etcd lives in the underlay namespace."""
    return kns.entered(f"/var/run/netns/{state.underlay}")


def cluster_config(backend: str, fields: dict | None = None) -> str:
    """The cluster config of a lab: its network, and the backend with `fields` (its own part
    of the Backend section, e.g. the first peers the lab gives a mesh)."""
    from ..agent import backends

    return cluster.parse({"Network": CLUSTER_CIDR, "SubnetLen": 24, "Backend": {"Type": backend, **(fields or {})}},
                         backends=backends.parsers()).to_json()


def up(name: str, directory: str, nodes: int, backend: str, store_kind: str, progress: Progress = _quiet,
       ttl: int = DEFAULT_TTL, subnets: int = 1, route_reflectors: int = 0, pool_cidr: str = "",
       block_size: int = 0, ingress: bool = False, backend_fields: dict | None = None) -> LabState:
    from ..agent import backends

    if not 1 <= nodes <= 200:
        raise LabError("--nodes must be between 1 and 200")
    if backend not in backends.names():
        raise LabError(f"--backend must be one of {', '.join(backends.names())}")
    if store_kind not in ("sqlite", "etcd"):
        raise LabError("--store must be sqlite or etcd")
    try:
        topo = lab_topology(name, subnets)
    except ValueError as e:
        raise LabError(str(e)) from None
    if (route_reflectors or pool_cidr or block_size) and backend != "bgp":
        raise LabError("--route-reflectors, --pool-cidr and --block-size are bgp settings: use them with --backend bgp")
    pool = None
    if backend == "bgp" and (pool_cidr or block_size):
        try:
            pool = default_pool(pool_cidr or CLUSTER_CIDR, block_size or DEFAULT_BLOCK_SIZE)
            problem = pool_problem_with(pool, None, [], CLUSTER_CIDR)
        except ValidationError as e:
            problem = e
        if problem:
            raise LabError(f"the default IP pool: {problem}")
    if not 0 <= route_reflectors <= nodes:
        raise LabError(f"--route-reflectors must be between 0 and the number of nodes ({nodes})")
    if subnets > 1 and backends.get(backend).one_segment:
        raise LabError(f"backend {backend} needs every node on one L2 segment (its routes point at the other nodes "
                       f"directly), and --subnets {subnets} puts them on {subnets} segments behind a router: "
                       "use --backend vxlan, or --subnets 1")
    names = [f"node{i}" for i in range(1, nodes + 1)]
    fields = {**backends.get(backend).lab_fields(topo.node(names[0], 1).ip, names), **(backend_fields or {})}
    try:
        config = cluster_config(backend, fields)
    except ValidationError as e:
        raise LabError(f"the cluster config: {e}") from None
    leftovers = [ns for ns in list_netns() if ns.startswith(ns_prefix(name))]
    if leftovers or os.path.exists(os.path.join(directory, "lab.json")):
        raise LabError(f"lab {name!r} is already up (or left over): run `podnet lab down` first")
    state = LabState(name=name, directory=directory, backend=backend, store_kind=store_kind, store_url="",
                     underlay=topo.underlay, subnets=subnets)
    try:
        os.makedirs(directory, exist_ok=True)
        progress(f"underlay {topo.underlay}: " + ", ".join(f"{s.bridge} {s.cidr}" for s in topo.segments)
                 + (f", joined by router {topo.router.namespace}" if topo.router else ""))
        build.underlay(topo)
        state.save()
        if store_kind == "etcd":
            progress("store: etcd on the underlay")
            etcd_dir = os.path.join(directory, "etcd")
            server = EtcdServer(topo.underlay, etcd_dir, ip=topo.outside, wrap=lambda argv: supervised(
                argv, os.path.join(etcd_dir, "etcd.state.json"), os.path.join(etcd_dir, "etcd.log"), name="etcd",
                backoff="1:30", reset_after=60)).start()
            state.etcd_pid = server.proc.pid
            state.store_url = server.url
        else:
            state.store_url = f"sqlite://{os.path.join(directory, 'store.db')}"
            progress(f"store: sqlite at {state.store_url[len('sqlite://'):]}")
        state.save()
        with store_context(state):
            store = open_store(state.store_url)
            store.put(CONFIG, config)
            if pool is not None:  # as CALICO_IPV4POOL_CIDR / _BLOCK_SIZE: the agents find it and create none
                store.put(f"{IPPOOLS}{pool['metadata']['name']}", json.dumps(pool))
                progress(f"IPPool {pool['metadata']['name']}: {pool['spec']['cidr']}, blockSize {pool['spec']['blockSize']}")
            store.close()
        start_controller_manager(state)
        progress("controller manager: EndpointSlices and Deployments (on the underlay)")
        # One node after the other: each takes the next free subnet, so nodeN gets 10.244.N.0/24
        # (a predictable lab is easier to learn from; real agents race, and that is fine too).
        for i in range(1, nodes + 1):
            labels = {ROUTE_REFLECTOR_LABEL: "true"} if i <= route_reflectors else {}
            add_node(state, f"node{i}", ttl=ttl, progress=progress, labels=labels)
            wait_ready(state, [f"node{i}"], progress=progress)
        if backend == "bgp":
            wait_bgp(state, progress=progress)
        route_lb_pool(state)
        progress(f"LoadBalancer pool {LB_POOL}: the underlay spreads it over the nodes")
        start_dns(state, progress)
        if ingress:
            from . import ingress as ingress_mod

            ingress_mod.start(state, progress)
        return state
    except BaseException:
        down(name, directory, _quiet)
        raise


def add_node(state: LabState, node: str, ttl: int = DEFAULT_TTL, progress: Progress = _quiet,
             labels: dict | None = None) -> NodeState:
    topo = state.topology
    number = max((_number(n) for n in state.nodes), default=0) + 1
    spec = topo.node(node, number)
    progress(f"{node}: namespace {spec.namespace}, {spec.ip} on {spec.segment.name}")
    build.node(topo, spec)
    n = NodeState(node, spec.namespace, spec.ip, number=number)
    state.nodes.append(n)
    start_agent(state, n, ttl, labels)
    start_kubelet(state, n)
    state.save()
    return n


def _number(n: NodeState) -> int:
    """The node's number (labs written before it was recorded: from its name, nodeN)."""
    if n.number:
        return n.number
    return int(n.name[4:]) if n.name.startswith("node") and n.name[4:].isdigit() else 0


def node_spec(state: LabState, n: NodeState):
    """The node's place in the topology."""
    return state.topology.node(n.name, _number(n))


def agent_state_path(state: LabState, node: str) -> str:
    """The agent supervisor's status file (a ContainerStatus: running, restarts, last exit)."""
    return os.path.join(state.node_dir(node), "agent.state.json")


METRICS = "127.0.0.1:10249"  # each agent's metrics, on its node namespace's loopback (kube-proxy's address)


def start_agent(state: LabState, node: NodeState, ttl: int = DEFAULT_TTL, labels: dict | None = None) -> None:
    """The node's agent, under a supervisor in the node's namespace: restarted when it dies
    (1 s, doubling to 30 s), its status in agent.state.json, its output in agent.log. `labels`
    go on its Node object (they stay there when the agent is started again without them)."""
    d = state.node_dir(node.name)
    agent = [sys.executable, "-m", "podnet.cli.main", "agent", "--node", node.name, "--store", state.store_url,
             "--iface", "eth0", "--state-dir", d, "--ttl", str(ttl), "--metrics", METRICS]
    if labels:
        agent += ["--node-labels", ",".join(f"{k}={v}" for k, v in sorted(labels.items()))]
    node.agent_pid = _start_supervised(node.netns, agent, d, "agent")
    state.save()


def kubelet_state_path(state: LabState, node: str) -> str:
    return os.path.join(state.node_dir(node), "kubelet.state.json")


def start_kubelet(state: LabState, node: NodeState) -> None:
    """The node's kubelet, supervised like the agent: it runs the pods bound to the node,
    with the CNI plugins and network config the agent writes."""
    from ..api.service import DNS_SERVICE_IP

    d = state.node_dir(node.name)
    kubelet = [sys.executable, "-m", "podnet.cli.main", "kubelet", "--node", node.name, "--store", state.store_url,
               "--root-dir", os.path.join(d, "kubelet"), "--cni-bin-dir", os.path.join(d, "bin"),
               "--cni-conf", os.path.join(d, "net.d", "10-podnet.conflist"), "--netns-prefix", f"{ns_prefix(state.name)}p-",
               "--node-ip", node.ip, "--cluster-dns", DNS_SERVICE_IP]
    # nsenter, not `ip netns exec`: the kubelet creates pods' network namespaces, and their bind
    # mounts must land in the host's mount namespace, where the agent (and everyone) sees them
    node.kubelet_pid = _start_supervised(node.netns, kubelet, d, "kubelet", host_mounts=True)
    state.save()


def start_controller_manager(state: LabState) -> None:
    """The cluster's controllers, on the underlay (where etcd is): the control plane."""
    argv = [sys.executable, "-m", "podnet.cli.main", "controller-manager", "--store", state.store_url,
            "--identity", f"{state.name}-controller-manager"]
    state.manager_pid = _start_supervised(state.underlay, argv, state.directory, "controller-manager")
    state.save()


def _start_supervised(netns: str, argv: list[str], directory: str, name: str, host_mounts: bool = False) -> int:
    """Run `argv` in `netns` under a supervisor (1 s back-off doubling to 30 s) that keeps its
    status in DIRECTORY/NAME.state.json and its output in DIRECTORY/NAME.log; its PID.
    `host_mounts`: stay in the host's mount namespace (`ip netns exec` makes a private one)."""
    os.makedirs(directory, exist_ok=True)
    cmd = supervised(argv, os.path.join(directory, f"{name}.state.json"), os.path.join(directory, f"{name}.log"),
                     name=name, backoff="1:30", reset_after=60)
    enter = ["nsenter", f"--net=/var/run/netns/{netns}"] if host_mounts else ["ip", "netns", "exec", netns]
    proc = subprocess.Popen([*enter, *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    return proc.pid


def stop_supervised(pid: int, hard: bool = False) -> None:
    """Stop a supervisor and what it runs (SIGTERM: a clean exit; hard: SIGKILL to both)."""
    import signal

    if pid_alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL if hard else signal.SIGTERM)
        except ProcessLookupError:
            pass
        for _ in range(200):
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            if not pid_alive(pid):
                break
            time.sleep(0.05)


def stop_agent(node: NodeState, hard: bool = False) -> None:
    """Stop the agent and its supervisor. Kernel state and the subnet lease stay, as after a crash."""
    stop_supervised(node.agent_pid, hard)
    node.agent_pid = 0


def stop_kubelet(node: NodeState, hard: bool = False) -> None:
    """Stop the kubelet and its supervisor; the pods it runs keep running."""
    stop_supervised(node.kubelet_pid, hard)
    node.kubelet_pid = 0


def wait_ready(state: LabState, nodes: list[str], timeout: float = 60, progress: Progress = _quiet) -> None:
    """Until every node's agent has a lease (bgp: its BIRD answers), has written its Node object, and its
    kubelet runs."""
    deadline = time.monotonic() + timeout
    pending = set(nodes)
    restarts = {n: _restarts(agent_state_path(state, n)) for n in nodes}
    with store_context(state):
        store = open_store(state.store_url)
        while pending and time.monotonic() < deadline:
            for name in sorted(pending):
                kv = store.get(f"{NODES}{name}")
                node = json.loads(kv.value) if kv else {}
                bgp = node.get("status", {}).get("podnet", {}).get("bgp")
                if kv and _listening(os.path.join(state.node_dir(name), "cni.sock")) and \
                        "running" in (read_state(kubelet_state_path(state, name)) or {}).get("state", {}) and \
                        (not bgp or _listening(bgp.get("controlSocket", ""))):  # bgp: BIRD answers too
                    progress(f"{name}: ready, " + (f"pod CIDR {node['spec']['podCIDR']}" if node["spec"].get("podCIDR")
                                                   else f"BGP at {bgp['ipv4Address']}" if bgp else "no pod CIDR"))
                    pending.discard(name)
            if pending:
                for n in state.nodes:
                    if n.name in pending and (not pid_alive(n.agent_pid)
                                              or _exited(agent_state_path(state, n.name), restarts[n.name])):
                        log = os.path.join(state.node_dir(n.name), "agent.log")
                        tail = open(log).read()[-2000:] if os.path.exists(log) else ""
                        raise LabError(f"the agent of {n.name} exited; its log ends with:\n{tail}")
                time.sleep(0.1)
        store.close()
    if pending:
        raise LabError(f"nodes not ready after {timeout:g}s: {', '.join(sorted(pending))} (see their agent.log)")


def bgp_sessions(state: LabState, node: str) -> tuple[int, int]:
    """(Established BGP sessions, all BGP sessions) of a node's BIRD; (0, 0) when it does not answer."""
    from ..agent.backends.bgp.bird import CTL, parse_protocols

    try:
        out = subprocess.run(["birdc", "-s", os.path.join(state.node_dir(node), CTL), "show", "protocols"],
                             capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return 0, 0
    rows = [r for r in parse_protocols(out) if r["proto"] == "BGP"]
    return sum(1 for r in rows if r["info"].startswith("Established")), len(rows)


def wait_bgp(state: LabState, timeout: float = 30, progress: Progress = _quiet) -> None:
    """Until every node's BGP sessions are Established (routes flow), as Calico's readiness
    check for BIRD; a lab whose sessions do not come up says which."""
    deadline = time.monotonic() + timeout
    while True:
        counts = {n.name: bgp_sessions(state, n.name) for n in state.nodes}
        if all(up == total for up, total in counts.values()):
            progress(f"BGP: every session Established ({sum(t for _, t in counts.values()) // 2} sessions)")
            return
        if time.monotonic() > deadline:
            raise LabError("BGP sessions not Established after %gs: %s (see the nodes' bird.log)" % (timeout, ", ".join(
                f"{n} {up}/{total}" for n, (up, total) in sorted(counts.items()) if up != total)))
        time.sleep(0.2)


def _restarts(state_path: str) -> int:
    return int((read_state(state_path) or {}).get("restartCount", 0))


def _exited(state_path: str, restarts_before: int) -> bool:
    """The supervised process exited since we began to wait (it is restarted, but a node that
    is not ready yet should not wait through its back-off: the error is in the log)."""
    status = read_state(state_path) or {}
    return "terminated" in status.get("state", {}) or int(status.get("restartCount", 0)) > restarts_before


def _listening(path: str) -> bool:
    """The agent's CNI socket accepts connections (a file left by a killed agent does not)."""
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


UPSTREAM_NAMES = {"example.test": "192.0.2.10", "upstream.test": "192.0.2.11"}


def start_dns(state: LabState, progress: Progress = _quiet) -> None:
    """Cluster DNS: an upstream resolver on the underlay (dnsmasq, answering a few test names),
    and the `podnet dns` server as pod kube-system/podnet-dns behind Service kube-dns."""
    from ..api.pod import parse_pod
    from ..api.service import DNS_SERVICE_IP, parse_service
    from . import pods as pods_mod
    from . import workloads

    dnsmasq = shutil.which("dnsmasq")
    upstream = ""
    if dnsmasq:
        argv = [dnsmasq, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--bind-interfaces",
                f"--listen-address={state.topology.outside}", "--pid-file", "--user=root"]  # --pid-file alone: none
        argv += [f"--address=/{name}/{ip}" for name, ip in UPSTREAM_NAMES.items()]
        argv = supervised(argv, os.path.join(state.directory, "dnsmasq.state.json"),
                          os.path.join(state.directory, "dnsmasq.log"), name="dnsmasq", backoff="1:30", reset_after=60)
        subprocess.Popen(["ip", "netns", "exec", state.underlay, *argv], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
        upstream = f"{state.topology.outside}:53"
        progress(f"upstream resolver: dnsmasq on {state.topology.outside} (answers {', '.join(UPSTREAM_NAMES)})")
    svc = parse_service({"apiVersion": "v1", "kind": "Service",
                         "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
                         "spec": {"clusterIP": DNS_SERVICE_IP, "selector": {"k8s-app": "kube-dns"},
                                  "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                                            {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}}, "lab")
    command = [sys.executable, "-m", "podnet.cli.main", "dns", "--store", state.store_url]
    if upstream:
        command += ["--upstream", upstream]
    pod = parse_pod({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": "podnet-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
                     "spec": {"nodeName": state.nodes[0].name, "containers": [{"name": "dns", "command": command}]}}, "lab")
    with store_context(state):
        store = open_store(state.store_url)
        try:
            workloads.apply_service(store, svc)
            pods_mod.create_pod(state, store, pod)
        finally:
            store.close()
    progress(f"cluster DNS: kube-system/kube-dns at {DNS_SERVICE_IP} (pod podnet-dns on {state.nodes[0].name})")


def route_lb_pool(state: LabState) -> None:
    """The underlay acts as the external load balancer: ECMP route of the pool to every node."""
    build.load_balancer_route(state.topology, [node_spec(state, n) for n in state.nodes])


def remove_node(state: LabState, node_name: str, progress: Progress = _quiet) -> None:
    """Take a node out of the lab: its pods, agent, lease and Node object go; others forget it."""
    from . import pods as pods_mod
    from ..agent import leases
    from ..ipam import blocks

    node = state.node(node_name)
    with store_context(state):
        store = open_store(state.store_url)
        for pod in pods_mod.list_pods(state, store, all_namespaces=True):
            if pod["spec"].get("nodeName") == node_name:
                pods_mod.delete_pod(state, store, pod["metadata"]["namespace"], pod["metadata"]["name"])
        stop_kubelet(node)
        stop_agent(node)
        all_leases, _ = leases.all_leases(store)
        for lease in all_leases:
            if lease.node == node_name:
                store.delete(lease.key)
        released = blocks.release_node(store, node_name)  # routed mode: its blocks go back to the pools
        if released:
            progress(f"{node_name}: released IP blocks {', '.join(released)}")
        store.delete(f"{NODES}{node_name}")
        store.close()
    build.remove_node(state.topology, node_spec(state, node))
    state.nodes = [n for n in state.nodes if n.name != node_name]
    state.save()
    route_lb_pool(state)
    progress(f"{node_name}: removed")


def down(name: str, directory: str, progress: Progress = _quiet) -> list[str]:
    """Remove everything the lab made, found by name (works after a crash too)."""
    removed = []
    state = None
    try:
        state = LabState.load(directory)
    except LabError:
        pass
    if state is not None:
        stop_supervised(state.manager_pid, hard=True)
        for n in state.nodes:
            stop_kubelet(n, hard=True)
            stop_agent(n, hard=True)
    prefix = ns_prefix(name)
    mine = [ns for ns in list_netns() if ns.startswith(prefix)]
    # pods first, then nodes, the router, the underlay (and etcd in it) last
    order = sorted(mine, key=lambda ns: (0 if ns.startswith(prefix + "p-") else 3 if ns == prefix + "u" else
                                         2 if ns == prefix + "r" else 1, ns))
    for ns in order:
        kill_netns_processes(ns)
    for ns in order:
        delete_netns(ns)
        removed.append(ns)
        progress(f"deleted namespace {ns}")
    if os.path.isdir(sandbox.UTS_DIR):  # pods' UTS namespaces (their hostnames)
        for entry in os.listdir(sandbox.UTS_DIR):
            if entry.startswith(prefix):
                sandbox.release_uts(entry)
    if os.path.isdir("/etc/netns"):  # pods' resolv.conf and hosts files (ip netns exec mounts them)
        for entry in os.listdir("/etc/netns"):
            if entry.startswith(prefix):
                shutil.rmtree(os.path.join("/etc/netns", entry), ignore_errors=True)
    remove_state(directory)
    return removed


LAB_FILES = ("lab.json", "lab.json.tmp", "store.db", "store.db-wal", "store.db-shm", "dnsmasq.state.json",
             "dnsmasq.state.json.tmp", "dnsmasq.log", "controller-manager.state.json", "controller-manager.state.json.tmp",
             "controller-manager.log")
LAB_DIRS = ("nodes", "pods", "etcd", "ingress")


def remove_state(directory: str) -> None:
    """Delete only what a lab writes in its directory, then the directory if that left it empty."""
    for f in LAB_FILES:
        try:
            os.unlink(os.path.join(directory, f))
        except FileNotFoundError:
            pass
    for d in LAB_DIRS:
        shutil.rmtree(os.path.join(directory, d), ignore_errors=True)
    try:
        os.rmdir(directory)
    except OSError:
        pass
