"""`podnet agent`: one per node. Holds the node's subnet lease, programs the backend, masquerades
egress, and serves CNI requests for the node's pods. Everything it does is reconciled from the
store, so a restarted agent converges to the same state, and pods keep their connectivity while
it is down (the kernel state it made stays).

One error policy for every step of the loop (watch, lease renewal, heartbeat, routes, services,
policy): a step that fails is logged and retried with back-off (0.5 s doubling to 30 s); the
others keep running; nothing is fatal but a bad cluster config at start. A store that stalls or
goes away therefore leaves the datapath as it is and the CNI socket serving (IPAM is local).

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

from ..api import cluster, keys, stored
from ..api.errors import ValidationError
from ..plugins.registry import install
from ..kernel import nft, rtnl
from ..policy import render as policy_render
from ..policy import world as policy_world
from ..proxy import render as proxy
from ..store import Compacted, Store, open_store
from . import antispoof, backend, leases, render, survive
from .cniserver import CNIServer, DelegateConfig, run_bridge
from .tables import OwnedTable

CONFIG_KEY = keys.CONFIG
RETRY_INITIAL, RETRY_MAX = 0.5, 30.0
HEARTBEAT = 5.0
RESYNC = 10.0
RENEW_EVERY = 600.0  # at most: leases are renewed every min(TTL/3, this)


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
    def __init__(self, node: str, store_url: str, iface: str, state_dir: str, ttl: int = 24 * 3600,
                 masquerade: bool = True) -> None:
        self.node = node
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
        self.lease: leases.Lease
        self.masq_table = OwnedTable("inet", "podnet_agent", log)
        self.guard_table = OwnedTable("ip", render.OVERLAY_TABLE, log)
        self.policy_table = OwnedTable("ip", policy_render.TABLE, log)
        self._proxy_model: proxy.Model | None = None
        self._policy_revision = 0
        self._policy_count = 0
        self.policy_status = os.path.join(state_dir, "policy-status.json")
        self._failures: dict[str, int] = {}
        self._retry_at: dict[str, float] = {}
        self.pending: set[str] = set()  # steps that failed (or were asked for) and must run again
        self._skipped: dict[str, set[str]] = {}
        self.attachments = antispoof.Registry(os.path.join(state_dir, "attachments"), log)
        self.full_sync = False  # set during a periodic sync: owned tables are compared with the kernel
        self.spoofed: dict[str, int] = {}  # packets dropped per pod (namespace/name or host veth)

    # -- setup -----------------------------------------------------------------------------
    def wait_config(self) -> cluster.ClusterConfig:
        announced = False
        while not self.stop.is_set():
            kv = self.until_done("read config", self.store.get, CONFIG_KEY)
            if kv is not None:
                return cluster.parse(kv.value)  # a bad config is fatal: ValidationError names the field
            if not announced:
                log(f"waiting for the cluster config at {CONFIG_KEY}")
                announced = True
            self.stop.wait(1)
        raise SystemExit(0)

    # -- CNI: the bridge plugin, then anti-spoofing before the runtime hears of success -------
    def run_cni(self, env: dict, stdin: bytes) -> tuple[int, str]:
        command = env.get("CNI_COMMAND", "")
        code, out = run_bridge(env, stdin)
        if code != 0:
            return code, out
        cid, ifname = env.get("CNI_CONTAINERID", ""), env.get("CNI_IFNAME", "")
        if command == "ADD":
            try:
                args = dict(p.split("=", 1) for p in env.get("CNI_ARGS", "").split(";") if "=" in p)
                pod = f"{args['K8S_POD_NAMESPACE']}/{args['K8S_POD_NAME']}" if "K8S_POD_NAME" in args else ""
                bridge_name = self.server.delegate.bridge_name if self.server.delegate else "cni0"
                self.attachments.admit(antispoof.from_result(cid, ifname, json.loads(out), bridge_name, pod))
            except Exception as e:  # noqa: BLE001 - undo the ADD: no pod without its anti-spoofing entries
                run_bridge({**env, "CNI_COMMAND": "DEL"}, stdin)
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

    def sync_antispoof(self, nl: rtnl.Netlink) -> None:
        """Records whose pod is gone are dropped, the table rebuilt if it drifted; drops are
        logged per pod as they grow (and shown in the Node's status)."""
        gone = self.attachments.sync(lambda: {link.name for link in nl.links()})
        if gone:
            log(f"anti-spoofing: dropped {gone} records of pods that are gone")
        by_veth = {a.host_veth: a.pod or a.host_veth for a in self.attachments.load()}
        drops = {by_veth.get(veth, veth): n for veth, n in self.attachments.drops().items()}
        for who, n in sorted(drops.items()):
            if n > self.spoofed.get(who, 0):
                log(f"anti-spoofing: dropped {n - self.spoofed.get(who, 0)} packets from {who} "
                    "(a source MAC or IPv4 address that is not its own)")
        self.spoofed = drops

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

    def setup_backend(self, nl: rtnl.Netlink) -> None:
        """Backend device and lease for the current config (also after a backend switch)."""
        under, public_ip = backend.underlay(nl, self.iface)
        self.under, self.public_ip = under, public_ip
        self.vx = None
        data: dict = {}
        if self.cfg.backend == "vxlan":
            self.vx = backend.ensure_vxlan(nl, self.cfg, None, under, public_ip)
            data = {"VtepMAC": self.vx.mac, "VNI": self.cfg.vni}
        else:
            backend.remove_vxlan_devices(nl)
        previous = None
        env = read_subnet_env(self.subnet_env)
        if env.get("PODNET_SUBNET"):
            try:
                previous = ipaddress.ip_interface(env["PODNET_SUBNET"]).network
            except ValueError:
                previous = None
        self.lease = leases.acquire(self.store, self.cfg, self.node, public_ip, data, self.ttl, previous)
        if self.vx is not None:
            self.vx = backend.ensure_vxlan(nl, self.cfg, self.lease.subnet, under, public_ip)
        mtu = render.pod_mtu(self.cfg, under.mtu)
        gateway = self.lease.subnet.network_address + 1
        write_atomic(self.subnet_env, "".join(f"{k}={v}\n" for k, v in (
            ("PODNET_NETWORK", self.cfg.network), ("PODNET_SUBNET", f"{gateway}/{self.lease.subnet.prefixlen}"),
            ("PODNET_MTU", mtu), ("PODNET_IPMASQ", str(self.masquerade).lower()), ("PODNET_BACKEND", self.cfg.backend))))
        write_atomic(self.conflist, json.dumps({"cniVersion": "1.0.0", "name": "podnet",
                                                "plugins": [{"type": "podnet", "socket": self.socket_path}]}, indent=2) + "\n")
        self.server.delegate = DelegateConfig(str(self.lease.subnet), mtu, os.path.join(self.state_dir, "ipam"), self.bin_dir)
        log(f"lease {self.lease.subnet} for {self.node} ({public_ip}), backend {self.cfg.backend}, pod MTU {mtu}")

    def put_node(self) -> None:
        key = keys.NODES + self.node
        kv = self.store.get(key)
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if kv is not None:
            try:
                created = json.loads(kv.value)["metadata"].get("creationTimestamp", created)
            except (ValueError, KeyError, TypeError, AttributeError):
                pass
        node = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": self.node, "labels": {"kubernetes.io/hostname": self.node}, "creationTimestamp": created},
            "spec": {"podCIDR": str(self.lease.subnet), "podCIDRs": [str(self.lease.subnet)]},
            "status": {
                "addresses": [{"type": "InternalIP", "address": self.public_ip}, {"type": "Hostname", "address": self.node}],
                "conditions": [{"type": "Ready", "status": "True",
                                "lastHeartbeatTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}],
                "podnet": {"backend": self.cfg.backend, "subnetEnv": self.subnet_env, "cniConfig": self.conflist,
                           "agentRestarts": int(os.environ.get("PODNET_RESTART_COUNT", "0") or 0),
                           "spoofedPackets": dict(sorted(self.spoofed.items()))},
            },
        }
        self.store.put(key, json.dumps(node))

    # -- the loop --------------------------------------------------------------------------
    def reconcile(self, nl: rtnl.Netlink) -> None:
        all_leases, _ = leases.all_leases(self.store)
        if not any(l.node == self.node for l in all_leases):
            log("our lease is gone (expired or deleted): acquiring again")
            self.setup_backend(nl)
            all_leases, _ = leases.all_leases(self.store)
        desired = render.render(self.cfg, self.lease, all_leases)
        changed = backend.apply(nl, self.cfg, desired, self.under, self.vx)
        if any(changed.values()):
            log(f"reconciled: {changed}")
        if self.cfg.backend == "vxlan":
            peers = [l.public_ip for l in all_leases if l.node != self.node and l.backend_type == "vxlan"]
            guard = render.overlay_guard(str(self.cfg.network), self.cfg.port, peers)
        else:
            guard = render.no_overlay_guard()
        self.guard_table.apply(guard, check_kernel=self.full_sync)
        if self.masquerade:
            self.masq_table.apply(render.masquerade_rules(str(self.cfg.network)), check_kernel=self.full_sync)

    def sync_services(self) -> None:
        """The proxy ruleset from Services and their EndpointSlices (which the controller
        manager computes), in one transaction; nothing at all when nothing changed."""
        services, bad = stored.decode_all(self.store.list(keys.SERVICES)[0])
        slices: dict[tuple[str, str], dict] = {}
        for kv in self.store.list(keys.ENDPOINT_SLICES)[0]:
            ns, _, name = kv.key[len(keys.ENDPOINT_SLICES):].partition("/")
            try:
                obj = json.loads(kv.value)
            except ValueError:
                obj = None
            if isinstance(obj, dict) and isinstance(obj.get("items"), list) and name:
                slices[(ns, name)] = obj
            else:
                bad.append(kv.key)
        model, culprits = survive.proxy_model(services, slices, self.node, str(self.cfg.network))
        self.report_skipped("services", bad + culprits)
        if self._proxy_model is None:
            if nft.list_ruleset(["table", proxy.FAMILY, proxy.TABLE]):
                nft.run(proxy.full(model))  # a previous agent's table: replace it in one transaction
            else:
                for batch in proxy.full_chunked(model):  # nothing there yet: fill, then switch on
                    nft.run(batch)
            log(f"proxy: full sync ({len(services)} services, {model.rule_count()} rules)")
        else:
            cmds = proxy.diff(self._proxy_model, model)
            if cmds:
                nft.run(cmds)
                log(f"proxy: {len(cmds)} changes ({len(services)} services, {model.rule_count()} rules)")
        self._proxy_model = model

    def report_skipped(self, what: str, skipped: list[str]) -> None:
        """Log the malformed stored objects a sync left out, once per change of that list."""
        if set(skipped) != self._skipped.get(what, set()):
            if skipped:
                log(f"{what}: skipping malformed stored objects: {', '.join(sorted(skipped)[:10])}"
                    + (f" and {len(skipped) - 10} more" if len(skipped) > 10 else ""))
            self._skipped[what] = set(skipped)

    def sync_policy(self) -> None:
        """The node's NetworkPolicy table from the store, in one transaction (nothing at all when
        unchanged). When nft refuses it, the previous table stays and the error policy retries."""
        world, _ = policy_world.load_world(self.store)
        cmds, skipped = survive.policy_commands(world, self.node)
        self.report_skipped("policy", skipped)
        self._policy_count = len(world.policies)
        if not self.policy_table.apply(cmds, check_kernel=self.full_sync):
            return
        local = sum(1 for p in world.pods if p.node == self.node)
        log(f"policy: table replaced ({len(world.policies)} policies, {local} local pods, {len(cmds)} commands)")

    def report_policy(self, revision: int) -> None:
        """policy-status.json: the enforced table reflects every store change up to `revision`
        (`podnet probe` and the tests wait on it instead of sleeping)."""
        if revision != self._policy_revision:
            write_atomic(self.policy_status, json.dumps({"node": self.node, "revision": revision,
                                                         "policies": self._policy_count}) + "\n")
            self._policy_revision = revision

    def run(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop.set())
        os.makedirs(self.state_dir, exist_ok=True)
        install(self.bin_dir)
        self.store = open_store(self.store_url)
        self.cfg = self.wait_config()
        nl = rtnl.Netlink()
        if not nft.use_library():  # in-process libnftables: an ADD's anti-spoofing entry costs 0.1 ms, not 3
            log("libnftables not found: running nft as a program (slower)")
        backend.enable_forwarding()
        self.server = CNIServer(self.socket_path)
        self.server.run_plugin = self.run_cni
        self.server.start()  # until the lease is known, ADD answers "try again later" (code 11)
        # a missing underlay is a configuration error: exit, and say so (the supervisor retries)
        self.until_done("lease", self.setup_backend, nl, fatal=(backend.BackendError,))
        self.until_done("heartbeat", self.put_node)
        _, rev = self.until_done("list", self.store.list, keys.ROOT)
        self.pending |= {"routes", "services", "policy", "antispoof"}
        last_renew = last_heartbeat = last_resync = time.monotonic()
        log(f"agent ready: CNI socket {self.socket_path}, config {self.conflist}")
        while not self.stop.is_set():
            self.run_pending(nl, rev)
            got: list = []
            if not self.attempt("watch", lambda: got.append(self.watch(rev))):
                self.pending |= {"routes", "services", "policy"}  # events may have been missed
                self.stop.wait(max(0.0, self._retry_at.get("watch", 0.0) - time.monotonic()))
                continue
            events, rev = got[0]
            now = time.monotonic()
            if any(e.key == CONFIG_KEY for e in events):
                self.pending.add("config")
            if any(e.key.startswith(leases.PREFIX) for e in events):
                self.pending.add("routes")
            if any(e.key.startswith((keys.SERVICES, keys.ENDPOINT_SLICES)) for e in events):
                self.pending.add("services")
            if any(e.key.startswith(policy_world.WATCHED) for e in events):
                self.pending.add("policy")
            if now - last_renew >= min(self.ttl / 3, RENEW_EVERY):
                if self.attempt("renew", self.renew_lease):
                    last_renew = now
            if now - last_heartbeat >= HEARTBEAT:
                if self.attempt("heartbeat", self.put_node):
                    last_heartbeat = now
            if now - last_resync >= RESYNC:
                self.pending |= {"routes", "services", "policy", "antispoof"}
                self.full_sync = True  # the next run_pending also compares owned tables with the kernel
                last_resync = now
        log("agent stopping (kernel state and lease are kept for the next start)")
        self.server.shutdown()
        self.server.server_close()

    def watch(self, rev: int) -> tuple[list, int]:
        """(events, revision they bring us to), waiting up to a second for the first one. When
        the store no longer has that history, everything is synced again from a fresh list."""
        try:
            events = self.store.watch(keys.ROOT, rev, 1.0)
        except Compacted:
            _, rev = self.store.list(keys.ROOT)
            self.pending |= {"routes", "services", "policy"}
            return [], rev
        return events, events[-1].revision if events else rev

    def run_pending(self, nl: rtnl.Netlink, rev: int) -> None:
        """Every pending sync, each under the error policy. Every event up to `rev` has been
        seen, so once no policy sync is pending the table reflects `rev`: policy-status.json says so."""
        for name, step in (("config", lambda: self.on_config_change(nl)), ("routes", lambda: self.reconcile(nl)),
                           ("services", self.sync_services), ("policy", self.sync_policy),
                           ("antispoof", lambda: self.sync_antispoof(nl))):
            if name in self.pending:
                self.pending.discard(name)
                self.attempt(name, step)
        if "policy" not in self.pending:
            self.report_policy(rev)
        self.full_sync = False

    def renew_lease(self) -> None:
        if not self.store.keepalive(self.lease.lease_id):
            log("lease renewal found the lease gone (expired or deleted)")
            self.pending.add("routes")  # reconcile() acquires it again

    def on_config_change(self, nl: rtnl.Netlink) -> None:
        kv = self.store.get(CONFIG_KEY)
        if kv is None:
            return
        try:
            new = cluster.parse(kv.value)
        except ValidationError as e:
            log(f"ignoring invalid cluster config: {e}")
            return
        if new == self.cfg:
            return
        if new.network != self.cfg.network or new.subnet_len != self.cfg.subnet_len:
            log("Network/SubnetLen changed: restart the agents to renumber (existing pods keep their addresses)")
            return
        log(f"backend changing from {self.cfg.backend} to {new.backend}")
        self.cfg = new
        self.setup_backend(nl)
        self.put_node()
        self.reconcile(nl)

