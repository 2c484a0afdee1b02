"""mesh: Weave Net's design. No datastore for the network: every node runs a router
(podnet.mesh, `podnet mesh router`) that connects to the peers it is given, learns the others by
gossip, carries pod frames to the other nodes (sleeve: UDP in userspace, relayed through a
third peer when two have no direct path; fastdp: kernel VXLAN between peers that reach each
other directly) and owns a share of the cluster range (Weave's ring IPAM, podnet.ipam.ring).

All pods of all nodes share one subnet, the cluster network, on a flat L2 overlay: one bridge
per node (`podnet-mesh`), holding an address of the node's own from the ring (as `weave
expose`), which is the pods' default gateway. Pod to pod is plain L2 (ARP crosses the overlay);
pod to Service goes through the node, as with every backend.

Peers that connect directly use fastdp (podnet.mesh.fastdp: the kernel's VXLAN on the bridge)
unless the mesh is encrypted; the sleeve carries the rest (relayed peers, or everything).

    module      job
    (this)      the Backend: config, bridge, guard, status; the router supervised in its own session
    delegate    the pods' CNI: the bridge plugin with an address the router allocates

Backend section of the cluster config (Weave's flags in brackets):

    {"Type": "mesh", "Peers": ["192.168.0.1"],        # whom to connect to first [weave launch PEERS]
     "Seed": ["node1", "node2", "node3"],              # who divides the range at first [--ipalloc-init seed=]
     "Port": 6783,                                     # TCP for the routers, UDP for the sleeve
     "FastDP": true, "FastDPPort": 6784,               # kernel VXLAN between direct peers [--no-fastdp]
     "PasswordFile": "/etc/podnet/mesh-password"}      # encrypt everything [WEAVE_PASSWORD]
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import threading
import time

from ....api.errors import ValidationError
from ....kernel import rtnl
from ....proc import pid_alive
from ....runtime import supervisor
from ...render import OVERLAY_TABLE
from .. import Backend, NodeContext, register
from ..vxlan import only_address

BRIDGE = "podnet-mesh"
FASTDP_DEVICE = "podnet-fastdp"  # made by the router (podnet.mesh.fastdp)
BRIDGE_HANDLE = "node:{node}"    # the bridge's own address in the ring (Weave's `weave expose`)
# The sleeve carries whole Ethernet frames (14) in UDP (28) with its header (6 + two peer names)
# and, with a password, a nonce and a tag (28): 128 leaves 58 bytes for the names. Weave's sleeve
# MTU is 1376 on a 1500 underlay for the same reasons.
OVERHEAD = 128
FIELDS = {"Peers": list, "Seed": list, "Port": int, "FastDP": bool, "FastDPPort": int, "PasswordFile": str}
ALLOCATE_TIMEOUT = 10.0


def parse(fields: dict, source: str) -> dict:
    """The Backend section, normalized; ValidationError names a bad field."""
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise ValidationError(f"Backend.{unknown[0]}", f"unknown field for backend mesh (expected {', '.join(FIELDS)})",
                              source)
    out = {"Peers": [], "Seed": [], "Port": 6783, "FastDP": True, "FastDPPort": 6784, "PasswordFile": ""}
    for name, kind in FIELDS.items():
        if name not in fields:
            continue
        value = fields[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ValidationError(f"Backend.{name}", f"must be {'a list' if kind is list else kind.__name__}, not {value!r}",
                                  source)
        out[name] = value
    for i, peer in enumerate(out["Peers"]):
        host, _, port = peer.rpartition(":") if isinstance(peer, str) and peer.count(":") == 1 else (peer, "", "")
        try:
            ipaddress.IPv4Address(host)
            if port and not 0 < int(port) < 65536:
                raise ValueError
        except (ValueError, TypeError):
            raise ValidationError(f"Backend.Peers[{i}]", f"must be an IPv4 address, optionally with :PORT, not {peer!r}",
                                  source) from None
    for i, name in enumerate(out["Seed"]):
        if not isinstance(name, str) or not name:
            raise ValidationError(f"Backend.Seed[{i}]", f"must be a node name, not {name!r}", source)
    for name in ("Port", "FastDPPort"):
        if not 0 < out[name] < 65536:
            raise ValidationError(f"Backend.{name}", f"must be a port number, not {out[name]!r}", source)
    if out["Port"] == out["FastDPPort"]:
        raise ValidationError("Backend.FastDPPort", f"must differ from Port ({out['Port']}): the sleeve and VXLAN both "
                                                    "use UDP", source)
    return out


def guard(network: str, conf: dict) -> list[dict]:
    """One transaction replacing `table ip podnet_overlay`: pods may not talk to any node's
    router or fast path (TCP and UDP Port, UDP FastDPPort). Otherwise a pod could hand a router
    or a VXLAN port a forged frame, which would land on a bridge past NetworkPolicy."""
    net = ipaddress.ip_network(network)
    t = {"family": "ip", "table": OVERLAY_TABLE}
    pods = {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                      "right": {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}}}

    def port(proto: str, ports: list[int]) -> dict:
        right = ports[0] if len(ports) == 1 else {"set": sorted(ports)}
        return {"match": {"op": "==", "left": {"payload": {"protocol": proto, "field": "dport"}}, "right": right}}

    cmds: list[dict] = [
        {"add": {"table": {"family": "ip", "name": OVERLAY_TABLE}}},
        {"delete": {"table": {"family": "ip", "name": OVERLAY_TABLE}}},
        {"add": {"table": {"family": "ip", "name": OVERLAY_TABLE}}},
        {"add": {"counter": {**t, "name": "pod-to-overlay"}}},
    ]
    for hook in ("input", "forward"):
        cmds.append({"add": {"chain": {**t, "name": hook, "type": "filter", "hook": hook, "prio": -10, "policy": "accept"}}})
        for proto, ports in (("udp", [conf["Port"], conf["FastDPPort"]]), ("tcp", [conf["Port"]])):
            cmds.append({"add": {"rule": {**t, "chain": hook, "comment": f"no {proto.upper()} from pods to the mesh",
                                          "expr": [pods, port(proto, ports), {"counter": "pod-to-overlay"}, {"drop": None}]}}})
    return cmds


def router_argv(ctx: NodeContext, mtu: int) -> list[str]:
    """`podnet mesh router ...` for this node (Weave's `weaver` flags, in podnet's words)."""
    c = ctx.conf
    argv = [sys.executable, "-m", "podnet.cli.main", "mesh", "router", "--name", ctx.node, "--address", ctx.public_ip,
            "--port", str(c["Port"]), "--ipalloc-range", str(ctx.network), "--bridge", BRIDGE,
            "--state-dir", state_dir(ctx.state_dir), "--mtu", str(mtu)]
    peers = [p for p in c["Peers"] if p.split(":")[0] != ctx.public_ip]
    if peers:
        argv += ["--peers", ",".join(peers)]
    if c["Seed"]:
        argv += ["--ipalloc-init", "seed=" + ",".join(c["Seed"])]
    if c["PasswordFile"]:
        argv += ["--password-file", c["PasswordFile"]]
    argv += ["--fastdp-port", str(c["FastDPPort"] if c["FastDP"] else 0)]
    return argv


def state_dir(agent_state_dir: str) -> str:
    return os.path.join(agent_state_dir, "mesh")


def control_socket(agent_state_dir: str) -> str:
    return os.path.join(state_dir(agent_state_dir), "control.sock")


class RouterProcess:
    """The router, run under podnet's supervisor in a session of its own: the supervisor
    restarts it when it dies (kill -9 included), and both outlive an agent restart, which
    adopts them through the pidfile. Frames keep flowing while the agent is down."""

    def __init__(self, agent_state_dir: str, log=print) -> None:
        self.dir = state_dir(agent_state_dir)
        self.pidfile = os.path.join(self.dir, "supervisor.pid")
        self.status_file = os.path.join(self.dir, "router.state.json")
        self.logfile = os.path.join(self.dir, "router.log")
        self.log = log
        self.starts = 0

    def pid(self) -> int | None:
        """The running supervisor's PID (from the pidfile, checked against its command line)."""
        try:
            with open(self.pidfile) as f:
                pid = int(f.read().strip() or 0)
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return pid if self.status_file.encode() in f.read() else None
        except (OSError, ValueError):
            return None

    def restarts(self) -> int:
        """How often the supervisor restarted the router (its ContainerStatus)."""
        try:
            with open(self.status_file) as f:
                return int(json.load(f).get("restartCount", 0))
        except (OSError, ValueError, AttributeError):
            return 0

    def start(self, argv: list[str]) -> int:
        os.makedirs(self.dir, exist_ok=True)
        command = supervisor.command(argv, self.status_file, self.logfile, name="mesh-router", backoff="1:30",
                                     reset_after=60)
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        tmp = f"{self.pidfile}.tmp"
        with open(tmp, "w") as f:
            f.write(f"{proc.pid}\n")
        os.replace(tmp, self.pidfile)
        self.starts += 1
        self.log(f"mesh: router started under supervisor pid {proc.pid} (log {self.logfile})")
        return proc.pid

    def keep_running(self, argv: list[str], stop: threading.Event) -> None:
        """Until `stop`: the supervisor runs (started when absent, adopted when there)."""
        pid = self.pid()
        if pid is not None:
            self.log(f"mesh: adopting the running router supervisor (pid {pid})")
        while not stop.is_set():
            if self.pid() is None:
                self.start(argv)
            stop.wait(1.0)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the supervisor, which stops the router (the backend is being replaced)."""
        pid = self.pid()
        if pid is None:
            return
        try:
            os.kill(pid, 15)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and pid_alive(pid):  # (an exited child of ours is a zombie: not alive)
            time.sleep(0.05)
        try:
            os.waitpid(pid, os.WNOHANG)  # reap it when this agent started it
        except ChildProcessError:
            pass  # started by an earlier agent


class Mesh(Backend):
    name = "mesh"
    leased = False
    overhead = OVERHEAD
    summary = "Weave-style: gossiping routers, ring IPAM, one flat L2 subnet, sleeve (UDP) or fastdp (VXLAN)"
    watches = ()  # nothing of the network is in the store

    def parse(self, fields: dict, source: str) -> dict:
        return parse(fields, source)

    def setup(self, ctx: NodeContext) -> dict:
        nl = ctx.nl
        link = nl.link(BRIDGE)
        if link is not None and link.kind != "bridge":
            nl.delete_link(link.index)
            link = None
        if link is None:
            nl.add_bridge(BRIDGE, mtu=self.mtu(ctx))
            link = nl.link(BRIDGE)
        if not link.up:
            nl.set_link(link.index, up=True)
        ctx.devices["bridge"] = nl.link(BRIDGE)
        ctx.devices["router"] = RouterProcess(ctx.state_dir, ctx.log)
        ctx.devices["bridge_ip"] = ""
        ctx.devices["bridge_lock"] = threading.Lock()
        return {}

    def cni_delegate(self, ctx: NodeContext, mtu: int, cni_path: str):
        from .delegate import MeshDelegate

        return MeshDelegate(self.client(ctx), BRIDGE, ctx.network.prefixlen, mtu,
                            lambda: self.ensure_bridge_address(ctx, ALLOCATE_TIMEOUT)[0], cni_path)

    def client(self, ctx: NodeContext):
        from ....mesh.client import MeshClient

        return MeshClient(control_socket(ctx.state_dir))

    def ensure_bridge_address(self, ctx: NodeContext, timeout: float) -> tuple[str, bool]:
        """The bridge's address from the ring (the pods' gateway), and whether it was set now.
        Kept across restarts: the router answers the same handle with the same address. Raises
        when the router cannot give one yet (not running, the ring not known yet)."""
        with ctx.devices["bridge_lock"]:  # the CNI server's threads and the agent's loop both ask
            return self._ensure_bridge_address(ctx, timeout)

    def _ensure_bridge_address(self, ctx: NodeContext, timeout: float) -> tuple[str, bool]:
        if ctx.devices.get("bridge_ip"):
            return ctx.devices["bridge_ip"], False
        ip = self.client(ctx).allocate(BRIDGE_HANDLE.format(node=ctx.node), timeout=timeout)
        cidr = f"{ip}/{ctx.network.prefixlen}"
        changed = only_address(ctx.nl, ctx.devices["bridge"].index, cidr)
        ctx.devices["bridge_ip"] = ip
        if changed:
            ctx.log(f"mesh: bridge {BRIDGE} has {cidr} from the ring")
        return ip, changed

    def reconcile(self, ctx: NodeContext, full: bool) -> dict:
        """The bridge's address, once the router can give it (it may still be waiting for the
        ring: the error policy retries); on full passes, also that it is still on the bridge."""
        if full:
            ctx.devices["bridge_ip"] = ""  # compared with the kernel again
        _, changed = self.ensure_bridge_address(ctx, timeout=2.0)
        return {"bridge_address": int(changed)}

    def guard(self, ctx: NodeContext, _leases) -> list[dict]:
        return guard(str(ctx.network), ctx.conf)

    def node_status(self, ctx: NodeContext) -> dict:
        router: RouterProcess | None = ctx.devices.get("router")
        status: dict = {"bridge": BRIDGE, "bridgeIP": ctx.devices.get("bridge_ip", ""),
                        "controlSocket": control_socket(ctx.state_dir)}
        if router is not None:
            status["routerRestarts"] = router.restarts()
        return {"mesh": status}

    def lab_fields(self, first_node_ip: str, nodes: list[str]) -> dict:
        """As `weave launch` on each host of a lab: every router first dials node1, and the lab's
        initial nodes divide the range among themselves (nodes added later ask them for space)."""
        return {"Peers": [first_node_ip], "Seed": nodes}

    def task(self, ctx: NodeContext, stop: threading.Event) -> None:
        ctx.devices["router"].keep_running(router_argv(ctx, self.mtu(ctx)), stop)

    def teardown(self, nl: rtnl.Netlink, state_dir: str = "") -> None:
        if state_dir:
            RouterProcess(state_dir).stop()
        for name in (FASTDP_DEVICE, BRIDGE):  # (the router's TAP device went with it)
            link = nl.link(name)
            if link is not None:
                nl.delete_link(link.index)


register(Mesh())
