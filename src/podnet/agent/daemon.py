"""`podnet agent`: one per node. It holds the node's subnet lease, sets up its backend (from the
registry in podnet.agent.backends), serves CNI requests for the node's pods, and runs the
node's controllers (routes, masquerade, proxy, policy, anti-spoofing: podnet.agent.controllers).
Everything is reconciled from the store, so a restarted agent converges to the same state, and
pods keep their connectivity while it is down (the kernel state it made stays).

One error policy for every step of the loop (watch, lease renewal, heartbeat, each controller):
a step that fails is logged and retried with back-off (0.5 s doubling to 30 s); the others keep
running; nothing is fatal but a bad cluster config or a missing underlay at start. A store that
stalls or goes away therefore leaves the datapath as it is and the CNI socket serving (IPAM is
local). Every 10 s a full pass runs every controller with `full=True`: they also compare the
kernel with what they put there and repair drift.

Liveness and leases are separate, as in flannel: the subnet lease lasts 24 h by default and is
renewed long before it ends; the Node object's heartbeat (every 5 s) says whether the agent is
alive. Peers route to a node as long as its lease exists, so an agent that crashes or is
restarted does not cut its pods off."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import sys
import threading
import time

from ..api import cluster, keys
from ..api.errors import ValidationError
from ..cni.skel import k8s_pod
from ..ipam.blocks import BlockAllocator
from ..kernel import nft, rtnl
from ..plugins.registry import install
from ..store import Compacted, Store, open_store
from . import antispoof, backends, host, leases, metrics
from .cniserver import CNIServer, DelegateConfig
from .controllers import Controller
from .controllers.antispoof import Antispoof
from .controllers.masquerade import Masquerade
from .controllers.policy import Policy
from .controllers.proxy import Proxy
from .controllers.routes import Routes

CONFIG_KEY = keys.CONFIG
RETRY_INITIAL, RETRY_MAX = 0.5, 30.0
HEARTBEAT = 5.0
RESYNC = 10.0
RENEW_EVERY = 600.0  # at most: leases are renewed every min(TTL/3, this)
CONTROLLERS = (Routes, Masquerade, Proxy, Policy, Antispoof)


def log(msg: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def read_subnet_env(path: str) -> dict[str, str]:
    try:
        with open(path) as f:
            return dict(line.strip().split("=", 1) for line in f if "=" in line)
    except OSError:
        return {}


def write_atomic(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


class Agent:
    log = staticmethod(log)

    def __init__(self, node: str, store_url: str, iface: str, state_dir: str, ttl: int = 24 * 3600,
                 masquerade: bool = True, controllers: tuple = CONTROLLERS, node_labels: dict | None = None,
                 metrics_address: str = "") -> None:
        self.node = node
        self.metrics_address = metrics_address
        self.node_labels = dict(node_labels or {})
        self._labelled = False
        self.store_url = store_url
        self.iface = iface
        self.state_dir = state_dir
        self.ttl = ttl
        self.masquerade = masquerade
        self.stop = threading.Event()
        self.socket_path = os.path.join(state_dir, "cni.sock")
        self.subnet_env = os.path.join(state_dir, "subnet.env")
        self.conflist = os.path.join(state_dir, "net.d", "10-podnet.conflist")
        self.bin_dir = os.path.join(state_dir, "bin")
        self.store: Store
        self.cfg: cluster.ClusterConfig
        self.lease: leases.Lease | None = None  # backends that are not `leased` hold none
        self.allocator: BlockAllocator
        self.nl: rtnl.Netlink
        self.backend: backends.Backend
        self.ctx: backends.NodeContext
        self.public_ip = ""
        self.policy_status = os.path.join(state_dir, "policy-status.json")
        self._policy_revision = 0
        self._failures: dict[str, int] = {}
        self._retry_at: dict[str, float] = {}
        self.pending: set[str] = set()  # controllers (and steps) that must run again
        self._skipped: dict[str, set[str]] = {}
        self.attachments = antispoof.Registry(os.path.join(state_dir, "attachments"), log)
        self.spoofed: dict[str, int] = {}  # packets dropped per pod (namespace/name or host veth)
        self.controllers: list[Controller] = [c(self) for c in controllers]
        self.task_threads: list[threading.Thread] = []
        self.task_stop = threading.Event()

    # -- setup -----------------------------------------------------------------------------
    def wait_config(self) -> cluster.ClusterConfig:
        announced = False
        while not self.stop.is_set():
            kv = self.until_done("read config", self.store.get, CONFIG_KEY)
            if kv is not None:
                # a bad config is fatal: ValidationError names the field
                return cluster.parse(kv.value, backends=backends.parsers())
            if not announced:
                log(f"waiting for the cluster config at {CONFIG_KEY}")
                announced = True
            self.stop.wait(1)
        raise SystemExit(0)

    def setup_backend(self) -> None:
        """The backend's devices and the node's lease for the current config (also after a
        backend switch: what other backends left behind is torn down first). A backend that is
        not `leased` takes none: it gives the pods their addresses itself (bgp: IP pool blocks)."""
        under, public_ip = host.underlay(self.nl, self.iface)
        self.public_ip = public_ip
        self.backend = backends.get(self.cfg.backend)
        self.stop_task()  # a previous backend's task (bgp: BIRD's supervisor) must not undo its teardown
        for name in backends.names():
            if name != self.backend.name:
                backends.get(name).teardown(self.nl, self.state_dir)
        prefix = next((a.prefixlen for a in self.nl.addresses(under.index, rtnl.AF_INET) if a.address == public_ip), 32)
        self.ctx = backends.NodeContext(self.node, self.nl, under, public_ip, self.cfg.network, self.cfg.backend_conf,
                                        self.state_dir, store=self.store, allocator=self.allocator,
                                        public_cidr=f"{public_ip}/{prefix}", log=log)
        data = self.backend.setup(self.ctx)
        self.attachments.set_family("ip" if self.backend.routed else "bridge")
        mtu = self.backend.mtu(self.ctx)
        env = [("PODNET_NETWORK", self.cfg.network)]
        if not self.backend.leased:
            self.lease = None
            self.server.delegate = self.backend.cni_delegate(self.ctx, mtu, self.bin_dir)
            where = "IP pool blocks" if self.backend.routed else f"{self.backend.name} IPAM"
        else:
            previous = None
            old = read_subnet_env(self.subnet_env)
            if old.get("PODNET_SUBNET"):
                try:
                    previous = ipaddress.ip_interface(old["PODNET_SUBNET"]).network
                except ValueError:
                    previous = None
            self.lease = leases.acquire(self.store, self.cfg, self.node, public_ip, data, self.ttl, previous)
            self.backend.leased(self.ctx, self.lease)
            gateway = self.lease.subnet.network_address + 1
            env.append(("PODNET_SUBNET", f"{gateway}/{self.lease.subnet.prefixlen}"))
            self.server.delegate = DelegateConfig(str(self.lease.subnet), mtu, os.path.join(self.state_dir, "ipam"),
                                                  self.bin_dir)
            where = f"lease {self.lease.subnet}"
        env += [("PODNET_MTU", mtu), ("PODNET_IPMASQ", str(self.masquerade).lower()), ("PODNET_BACKEND", self.cfg.backend)]
        write_atomic(self.subnet_env, "".join(f"{k}={v}\n" for k, v in env))
        write_atomic(self.conflist, json.dumps({"cniVersion": "1.0.0", "name": "podnet",
                                                "plugins": [{"type": "podnet", "socket": self.socket_path}]}, indent=2) + "\n")
        self.start_task()
        log(f"{where} for {self.node} ({public_ip}), backend {self.cfg.backend}, pod MTU {mtu}")

    def stop_task(self) -> None:
        self.task_stop.set()
        for t in self.task_threads:
            t.join(5)
        self.task_threads = []

    def start_task(self) -> None:
        """The backend's long-running task, if it has one, in a thread restarted with back-off
        when it raises (setup_backend stopped the previous one before tearing down)."""
        self.task_stop = threading.Event()
        if not self.backend.runs_task:
            return
        backend, ctx, stop = self.backend, self.ctx, self.task_stop

        def loop() -> None:
            delay = 0.5
            while not stop.is_set():
                try:
                    backend.task(ctx, stop)
                    delay = 0.5
                except Exception as e:  # noqa: BLE001 - a task that dies is started again
                    log(f"backend {backend.name}: task failed: {e.__class__.__name__}: {e}; again in {delay:g} s")
                stop.wait(delay)
                delay = min(delay * 2, RETRY_MAX)

        t = threading.Thread(target=loop, name=f"backend-{backend.name}", daemon=True)
        t.start()
        self.task_threads.append(t)

    def put_node(self) -> None:
        """The Node object: addresses, heartbeat, what the backend publishes. Labels set by
        others (`podnet label node`) are kept; a concurrent write makes it try again."""
        key = keys.NODES + self.node
        for _ in range(10):
            kv = self.store.get(key)
            created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            labels: dict = {}
            if kv is not None:
                try:
                    meta = json.loads(kv.value)["metadata"]
                    created = meta.get("creationTimestamp", created)
                    labels = dict(meta.get("labels") or {})
                except (ValueError, KeyError, TypeError, AttributeError):
                    pass
            if not self._labelled:  # --node-labels at start, as the kubelet's: the operator may change them later
                labels.update(self.node_labels)
            labels["kubernetes.io/hostname"] = self.node
            spec = {"podCIDR": str(self.lease.subnet), "podCIDRs": [str(self.lease.subnet)]} if self.lease else {}
            node = {
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.node, "labels": labels, "creationTimestamp": created},
                "spec": spec,
                "status": {
                    "addresses": [{"type": "InternalIP", "address": self.public_ip}, {"type": "Hostname", "address": self.node}],
                    "conditions": [{"type": "Ready", "status": "True",
                                    "lastHeartbeatTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}],
                    "podnet": {"backend": self.cfg.backend, "subnetEnv": self.subnet_env, "cniConfig": self.conflist,
                               "agentRestarts": int(os.environ.get("PODNET_RESTART_COUNT", "0") or 0),
                               "spoofedPackets": dict(sorted(self.spoofed.items())),
                               **self.controller_status(),
                               **self.backend.node_status(self.ctx)},
                },
            }
            text = json.dumps(node)
            if self.store.create(key, text) if kv is None else self.store.cas(key, text, kv.mod_revision):
                self._labelled = True
                return
        raise RuntimeError(f"{key}: changed by someone else on every try")

    # -- CNI: the bridge plugin, then anti-spoofing before the runtime hears of success -------
    def run_cni(self, env: dict, stdin: bytes) -> tuple[int, str]:
        command = env.get("CNI_COMMAND", "")
        delegate = self.server.delegate
        code, out = delegate.run(env, stdin)
        if code != 0:
            return code, out
        cid, ifname = env.get("CNI_CONTAINERID", ""), env.get("CNI_IFNAME", "")
        if command == "ADD":
            try:
                namespace, name = k8s_pod(env)
                pod = f"{namespace}/{name}" if name else ""
                self.attachments.admit(antispoof.from_result(cid, ifname, json.loads(out), delegate.bridge_name, pod))
            except Exception as e:  # noqa: BLE001 - undo the ADD: no pod without its anti-spoofing entries
                delegate.run({**env, "CNI_COMMAND": "DEL"}, stdin)
                version = json.loads(stdin).get("cniVersion", "1.1.0")
                return 1, json.dumps({"cniVersion": version, "code": 999,
                                      "msg": "podnet agent: cannot install the pod's anti-spoofing entries",
                                      "details": f"{e.__class__.__name__}: {e}"})
        elif command == "DEL":
            self.attachments.forget(cid, ifname)
        elif command == "GC":
            valid = json.loads(stdin).get("cni.dev/valid-attachments") or []
            self.attachments.keep_only({(a.get("containerID", ""), a.get("ifname", "")) for a in valid if isinstance(a, dict)})
        return code, out

    # -- the one error policy ----------------------------------------------------------------
    def attempt(self, name: str, fn, *args, fatal: tuple = ()) -> bool:
        """Run one step; on failure log it, schedule a retry with back-off and return False.
        A step still backing off is skipped (and stays pending). Only `fatal` errors escape."""
        if time.monotonic() < self._retry_at.get(name, 0.0):
            self.pending.add(name)
            return False
        try:
            fn(*args)
        except fatal:
            raise
        except Exception as e:  # noqa: BLE001 - the policy: log, back off, retry; never fatal
            n = self._failures.get(name, 0) + 1
            self._failures[name] = n
            delay = min(RETRY_INITIAL * 2 ** (n - 1), RETRY_MAX)
            self._retry_at[name] = time.monotonic() + delay
            self.pending.add(name)
            if n <= 3 or n & (n - 1) == 0:  # the first few, then at powers of two
                log(f"{name} failed ({n}x): {e.__class__.__name__}: {e}; retrying in {delay:g} s")
            return False
        if self._failures.pop(name, 0):
            log(f"{name}: recovered")
        self._retry_at.pop(name, None)
        self.pending.discard(name)
        return True

    def until_done(self, name: str, fn, *args, fatal: tuple = ()):
        """Retry `fn` with back-off until it succeeds (or the agent is stopped); its result."""
        result = []
        while not self.stop.is_set():
            if self.attempt(name, lambda: result.append(fn(*args)), fatal=fatal):
                return result[0]
            self.stop.wait(max(0.0, self._retry_at.get(name, 0.0) - time.monotonic()))
        raise SystemExit(0)

    def report_skipped(self, what: str, skipped: list[str]) -> None:
        """Log the malformed stored objects a sync left out, once per change of that list."""
        if set(skipped) != self._skipped.get(what, set()):
            if skipped:
                log(f"{what}: skipping malformed stored objects: {', '.join(sorted(skipped)[:10])}"
                    + (f" and {len(skipped) - 10} more" if len(skipped) > 10 else ""))
            self._skipped[what] = set(skipped)

    def report_policy(self, revision: int) -> None:
        """policy-status.json: the enforced table reflects every store change up to `revision`
        (`podnet probe` and the tests wait on it instead of sleeping)."""
        if revision != self._policy_revision:
            count = next((c.count for c in self.controllers if isinstance(c, Policy)), 0)
            write_atomic(self.policy_status, json.dumps({"node": self.node, "revision": revision, "policies": count}) + "\n")
            self._policy_revision = revision

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop.set())
        os.makedirs(self.state_dir, exist_ok=True)
        install(self.bin_dir)
        self.store = open_store(self.store_url)
        self.allocator = BlockAllocator(self.store, self.node)
        self.cfg = self.wait_config()
        self.nl = rtnl.Netlink()
        if not nft.use_library():  # in-process libnftables: an ADD's anti-spoofing entry costs 0.1 ms, not 3
            log("libnftables not found: running nft as a program (slower)")
        host.enable_forwarding()
        self.server = CNIServer(self.socket_path)
        self.server.run_plugin = self.run_cni
        self.server.start()  # until the lease is known, ADD answers "try again later" (code 11)
        if self.metrics_address:
            try:
                metrics.serve(self.metrics_address, self.render_metrics)
            except (ValueError, OSError) as e:
                raise host.HostError(f"cannot serve metrics on {self.metrics_address}: {e}") from None
            log(f"metrics on http://{self.metrics_address}/metrics")
        # a missing underlay is a configuration error: exit, and say so (the supervisor retries)
        self.until_done("lease", self.setup_backend, fatal=(host.HostError,))
        self.until_done("heartbeat", self.put_node)
        _, rev = self.until_done("list", self.store.list, keys.ROOT)
        self.pending |= {c.name for c in self.controllers}
        last_renew = last_heartbeat = last_resync = time.monotonic()
        full = True
        log(f"agent ready: CNI socket {self.socket_path}, config {self.conflist}")
        while not self.stop.is_set():
            self.run_pending(rev, full)
            full = False
            got: list = []
            if not self.attempt("watch", lambda: got.append(self.watch(rev))):
                self.pending |= {c.name for c in self.controllers}  # events may have been missed
                self.stop.wait(max(0.0, self._retry_at.get("watch", 0.0) - time.monotonic()))
                continue
            events, rev = got[0]
            self.mark(events)
            now = time.monotonic()
            if now - last_renew >= min(self.ttl / 3, RENEW_EVERY):
                if self.attempt("renew", self.renew_lease):
                    last_renew = now
            if now - last_heartbeat >= HEARTBEAT:
                if self.attempt("heartbeat", self.put_node):
                    last_heartbeat = now
            if now - last_resync >= RESYNC:
                self.pending |= {c.name for c in self.controllers}
                full = True  # this pass also compares the kernel with what each controller put there
                last_resync = now
        log("agent stopping (kernel state and lease are kept for the next start)")
        self.task_stop.set()
        self.server.shutdown()
        self.server.server_close()

    def controller_status(self) -> dict:
        """What controllers publish in the Node object (the proxy: its table and last sync)."""
        out = {}
        for c in self.controllers:
            status = c.status() if hasattr(c, "status") else None
            if status:
                out[c.name] = status
        return out

    def render_metrics(self) -> str:
        return "".join(c.metrics() for c in self.controllers if hasattr(c, "metrics"))

    def mark(self, events: list) -> None:
        """Which controllers the events concern (and a config change)."""
        if any(e.key == CONFIG_KEY for e in events):
            self.pending.add("config")
        for c in self.controllers:
            try:
                hit = any([c.concerns(e) for e in events])  # every event seen (a controller may keep track)
            except Exception as e:  # noqa: BLE001 - a filter that fails lets the sync decide
                log(f"{c.name}: could not filter store events ({e}): syncing")
                hit = True
            if hit:
                self.pending.add(c.name)

    def watch(self, rev: int) -> tuple[list, int]:
        """(events, revision they bring us to), waiting up to a second for the first one. When
        the store no longer has that history, everything is synced again from a fresh list."""
        try:
            events = self.store.watch(keys.ROOT, rev, 1.0)
        except Compacted:
            _, rev = self.store.list(keys.ROOT)
            self.pending |= {c.name for c in self.controllers}
            return [], rev
        return events, events[-1].revision if events else rev

    def run_pending(self, rev: int, full: bool = False) -> None:
        """Every pending controller, each under the error policy (one that fails is retried with
        back-off; the others go on). Every event up to `rev` has been seen, so once no policy
        sync is pending the table reflects `rev`: policy-status.json says so."""
        if "config" in self.pending:
            self.pending.discard("config")
            self.attempt("config", self.on_config_change)
        for c in self.controllers:
            if c.name in self.pending:
                self.pending.discard(c.name)
                self.attempt(c.name, c.sync, full)
        if "policy" not in self.pending:
            self.report_policy(rev)

    def renew_lease(self) -> None:
        if self.lease is None:
            return
        if not self.store.keepalive(self.lease.lease_id):
            log("lease renewal found the lease gone (expired or deleted)")
            self.pending.add("routes")  # the routes controller acquires it again

    def on_config_change(self) -> None:
        kv = self.store.get(CONFIG_KEY)
        if kv is None:
            return
        try:
            new = cluster.parse(kv.value, backends=backends.parsers())
        except ValidationError as e:
            log(f"ignoring invalid cluster config: {e}")
            return
        if new == self.cfg:
            return
        if new.network != self.cfg.network or (new.subnet_len != self.cfg.subnet_len and self.backend.leased):
            log("Network/SubnetLen changed: restart the agents to renumber (existing pods keep their addresses)")
            return
        log(f"backend changing from {self.cfg.backend} to {new.backend}")
        self.cfg = new
        self.setup_backend()
        self.put_node()
        self.pending |= {c.name for c in self.controllers}
