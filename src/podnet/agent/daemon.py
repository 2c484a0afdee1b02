"""`podnet agent`: one per node. Holds the node's subnet lease, programs the backend, masquerades
egress, and serves CNI requests for the node's pods. Everything it does is reconciled from the
store, so a restarted agent converges to the same state, and pods keep their connectivity while
it is down (the kernel state it made stays)."""

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
from ..cni.install import install
from ..kernel import nft, rtnl
from ..proxy import endpoints as ep_mod
from ..policy import render as policy_render
from ..policy import world as policy_world
from ..proxy import render as proxy
from ..store import Compacted, Store, StoreError, open_store
from . import backend, leases, render
from .cniserver import CNIServer, DelegateConfig

CONFIG_KEY = "/podnet/config"


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
    def __init__(self, node: str, store_url: str, iface: str, state_dir: str, ttl: int = 20,
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
        self._applied_masq = ""
        self._proxy_model: proxy.Model | None = None
        self._applied_policy = ""
        self._policy_revision = 0
        self._policy_count = 0
        self.policy_status = os.path.join(state_dir, "policy-status.json")

    # -- setup -----------------------------------------------------------------------------
    def wait_config(self) -> cluster.ClusterConfig:
        announced = False
        while not self.stop.is_set():
            kv = self.store.get(CONFIG_KEY)
            if kv is not None:
                return cluster.parse(kv.value)  # a bad config is fatal: ValidationError names the field
            if not announced:
                log(f"waiting for the cluster config at {CONFIG_KEY}")
                announced = True
            self.stop.wait(1)
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
            except (ValueError, KeyError):
                pass
        node = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": self.node, "labels": {"kubernetes.io/hostname": self.node}, "creationTimestamp": created},
            "spec": {"podCIDR": str(self.lease.subnet), "podCIDRs": [str(self.lease.subnet)]},
            "status": {
                "addresses": [{"type": "InternalIP", "address": self.public_ip}, {"type": "Hostname", "address": self.node}],
                "conditions": [{"type": "Ready", "status": "True",
                                "lastHeartbeatTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}],
                "podnet": {"backend": self.cfg.backend, "subnetEnv": self.subnet_env, "cniConfig": self.conflist},
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
        if self.masquerade:
            cmds = render.masquerade_rules(str(self.cfg.network))
            text = json.dumps(cmds)
            if text != self._applied_masq:
                nft.run(cmds)
                self._applied_masq = text

    def sync_services(self) -> None:
        """EndpointSlices for every service (written only when they differ), then the proxy
        ruleset (one transaction; nothing at all when nothing changed)."""
        services = [json.loads(kv.value) for kv in self.store.list(keys.SERVICES)[0]]
        pods = [json.loads(kv.value) for kv in self.store.list(keys.PODS)[0]]
        slices: dict[tuple[str, str], dict] = {}
        wanted_keys = set()
        for svc in services:
            ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
            computed = ep_mod.compute(svc, pods)
            if computed is None:
                continue
            slices[(ns, name)] = computed
            key = ep_mod.key(ns, name)
            wanted_keys.add(key)
            text = ep_mod.dumps(computed)
            current = self.store.get(key)
            if current is None or current.value != text:
                self.store.cas(key, text, current.mod_revision if current else 0)  # losing the race is fine
        for kv in self.store.list(ep_mod.SLICES)[0]:
            if kv.key not in wanted_keys:
                self.store.delete(kv.key, kv.mod_revision)
        model = proxy.render(services, slices, self.node, str(self.cfg.network))
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

    def sync_policy(self) -> bool:
        """The node's NetworkPolicy table from the store, in one transaction (nothing at all when
        unchanged). False when nft refused it: the previous table stays, the next resync retries."""
        world, _ = policy_world.load_world(self.store)
        cmds = policy_render.render(world, self.node)
        text = json.dumps(cmds)
        self._policy_count = len(world.policies)
        if text == self._applied_policy:
            return True
        try:
            nft.run(cmds)
        except nft.NftError as e:
            log(f"policy: cannot apply the table: {e}")
            return False
        self._applied_policy = text
        local = sum(1 for p in world.pods if p.node == self.node)
        log(f"policy: table replaced ({len(world.policies)} policies, {local} local pods, {len(cmds)} commands)")
        return True

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
        backend.enable_forwarding()
        self.server = CNIServer(self.socket_path)
        self.setup_backend(nl)
        self.server.start()
        self.put_node()
        _, rev = self.store.list("/podnet/")
        self.reconcile(nl)
        self.sync_services()
        policy_ok = self.sync_policy()
        if policy_ok:
            self.report_policy(rev)
        last_keepalive = last_heartbeat = last_resync = time.monotonic()
        log(f"agent ready: CNI socket {self.socket_path}, config {self.conflist}")
        while not self.stop.is_set():
            try:
                events = self.store.watch("/podnet/", rev, 1.0)
            except Compacted:
                events, (_, rev) = [], self.store.list("/podnet/")
            except StoreError as e:
                log(f"store unavailable: {e}; retrying")
                self.stop.wait(1)
                continue
            now = time.monotonic()
            if events:
                rev = events[-1].revision
            if any(e.key == CONFIG_KEY for e in events):
                self.on_config_change(nl)
            relevant = any(e.key.startswith(leases.PREFIX) for e in events)
            if now - last_keepalive >= self.ttl / 3:
                if not self.store.keepalive(self.lease.lease_id):
                    log("lease keepalive failed: the lease expired")
                    relevant = True
                last_keepalive = now
            if now - last_heartbeat >= 5:
                self.put_node()
                last_heartbeat = now
            # not /podnet/endpointslices/: this agent computes those itself from services and pods,
            # so their events are only its own (or another agent's identical) writes echoing back
            service_events = any(e.key.startswith((keys.SERVICES, keys.PODS)) for e in events)
            if relevant or now - last_resync >= 10:
                self.reconcile(nl)
            if service_events or now - last_resync >= 10:
                self.sync_services()
            if any(e.key.startswith(policy_world.WATCHED) for e in events) or now - last_resync >= 10:
                policy_ok = self.sync_policy()
            if policy_ok:
                self.report_policy(rev)
            if now - last_resync >= 10:
                last_resync = now
        log("agent stopping (kernel state and lease are kept for the next start)")
        self.server.shutdown()
        self.server.server_close()

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

