"""`podnet kubelet`: one per node. It watches the Pods bound to its node and makes them real:
a sandbox (network namespace through CNI, or the node's for hostNetwork; hostname; /etc/hosts
and resolv.conf), the pod's runner inside it (init containers, then every container with its
probes and hooks), and the pod's status written back (phase, podIP, conditions with Ready,
initContainerStatuses, containerStatuses). A pod marked for deletion drains in a thread of its
own (preStop, SIGTERM, SIGKILL after its grace period), is detached and removed from the store.

What it runs is recorded under its root directory (one JSON file per pod), so a restarted
kubelet adopts the pods it already runs instead of making them again, and tears down those
whose Pod is gone. Store failures are retried with back-off; pods keep running meanwhile.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field

from ..api import keys, stored
from ..api.pod import parse_pod
from ..api.errors import ValidationError
from ..proc import pid_alive
from ..store import Compacted, Store, open_store
from . import containers, podfiles, sandbox, status as status_mod

STATUS_POLL = 0.02  # how often the container status files' mtimes are looked at (s)
LIVENESS_POLL = 0.5 # how often the supervisors are checked to be alive (s)
WATCH_WAIT = 0.5    # the longest a watch waits for the next pod event (s)
RESYNC = 10.0       # full comparison of the store with what runs here (s)
RETRY_MAX = 30.0


def log(msg: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class Record:
    """A pod this kubelet runs (or is making). `supervisor_pid` is the pod's runner (0 while the
    start is unfinished); the first app container's state and log paths are kept for tools."""
    namespace: str
    name: str
    uid: str
    netns: str
    container_id: str
    container: str = ""
    state_path: str = ""
    log_path: str = ""
    supervisor_pid: int = 0
    pod_ip: str = ""
    restart_policy: str = "Always"
    grace: float = 30.0
    pod_dir: str = ""
    host_network: bool = False
    hostname: str = ""
    init_containers: list[str] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{keys.PODS}{self.namespace}/{self.name}"

    @property
    def directory(self) -> str:
        return self.pod_dir or os.path.dirname(self.state_path)

    def state_of(self, container: str) -> str:
        return os.path.join(self.directory, f"{container}.state.json")

    def log_of(self, container: str) -> str:
        return os.path.join(self.directory, f"{container}.log")

    @property
    def sandbox(self) -> sandbox.Sandbox:
        return sandbox.Sandbox(self.netns, self.container_id, self.namespace, self.name, self.hostname or self.name,
                               self.host_network)


@dataclass
class Config:
    node: str
    store_url: str
    root_dir: str
    cni: sandbox.CNI
    netns_prefix: str = "pn-pod-"
    node_ip: str = ""
    cluster_dns: str = "10.96.0.10"
    cluster_domain: str = "cluster.local"
    resolv_conf: str = "/etc/resolv.conf"   # the node's resolver (dnsPolicy Default)
    hosts_file: str = "/etc/hosts"          # the node's hosts file (hostNetwork pods)


class Kubelet:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.stop = threading.Event()
        self.records: dict[str, Record] = {}
        self.procs: dict[str, object] = {}          # uid -> the supervisor's Popen (reaped as it exits)
        self.seen_container: dict[str, tuple] = {}  # uid -> (status file mtime, supervisor alive) last acted on
        self.lock = threading.RLock()               # records and procs: the loop and the status thread
        self.failures: dict[str, tuple[int, float, str]] = {}  # uid -> (failed attempts, retry at, pod key)
        self.terminating: set[str] = set()         # uids whose graceful stop runs in a thread of its own
        self.store: Store
        os.makedirs(self.records_dir, exist_ok=True)

    @property
    def records_dir(self) -> str:
        return os.path.join(self.cfg.root_dir, "pods")

    # -- records -------------------------------------------------------------------------------
    def load_records(self) -> None:
        for name in sorted(os.listdir(self.records_dir)):
            if not name.endswith(".json"):
                continue
            try:
                with open(os.path.join(self.records_dir, name)) as f:
                    rec = Record(**json.load(f))
            except (OSError, ValueError, TypeError):
                log(f"ignoring unreadable record {name}")
                continue
            self.records[rec.uid] = rec

    def save(self, rec: Record) -> None:
        path = os.path.join(self.records_dir, f"{rec.uid}.json")
        with open(f"{path}.tmp", "w") as f:
            json.dump(asdict(rec), f)
        os.replace(f"{path}.tmp", path)
        with self.lock:
            self.records[rec.uid] = rec

    def forget(self, rec: Record) -> None:
        with self.lock:
            self.records.pop(rec.uid, None)
            self.procs.pop(rec.uid, None)
            self.seen_container.pop(rec.uid, None)
        self.failures.pop(rec.uid, None)
        try:
            os.unlink(os.path.join(self.records_dir, f"{rec.uid}.json"))
        except FileNotFoundError:
            pass

    def netns_name(self, namespace: str, name: str, uid: str) -> str:
        return f"{self.cfg.netns_prefix}{hashlib.sha256(f'{namespace}/{name}/{uid}'.encode()).hexdigest()[:10]}"

    # -- one pod ---------------------------------------------------------------------------------
    def reconcile(self, key: str, pod: dict | None) -> None:
        """Make what runs here match one stored pod (None: it is gone)."""
        mine = [r for r in self.records.values() if r.key == key]
        if pod is None or pod.get("spec", {}).get("nodeName") != self.cfg.node:
            for rec in mine:
                if rec.uid not in self.terminating:  # (its graceful stop removed the Pod itself)
                    self.teardown(rec, "its Pod is gone")
            return
        uid = pod["metadata"].get("uid", "")
        for rec in mine:
            if rec.uid != uid:
                self.teardown(rec, "replaced by a new pod of the same name")
        if pod["metadata"].get("deletionTimestamp"):
            rec = self.records.get(uid)
            if rec is None:
                self.store.delete(key)  # nothing of it runs here: gone from the cluster now
                log(f"pod {key[len(keys.PODS):]}: deleted")
            elif uid not in self.terminating:
                grace = float(pod["metadata"].get("deletionGracePeriodSeconds", rec.grace))
                self.terminating.add(uid)
                threading.Thread(target=self.terminate, args=(rec, grace), name=f"stop-{rec.name}", daemon=True).start()
            return
        rec = self.records.get(uid)
        if rec is not None and not rec.supervisor_pid:
            # a start that a previous kubelet did not finish (it died midway): undo it, start afresh
            self.teardown(rec, "an unfinished start", quiet=True)
            rec = None
        if rec is None:
            self.start_pod(key, pod)

    def start_pod(self, key: str, pod: dict) -> None:
        uid = pod["metadata"].get("uid", "")
        attempts, retry_at, _ = self.failures.get(uid, (0, 0.0, key))
        if time.monotonic() < retry_at:
            return
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        try:
            spec = parse_pod(pod, key)
        except ValidationError as e:
            self.write_status(key, uid, pod, problem=("InvalidPodSpec", str(e)))
            return
        first = spec.containers[0].name
        pod_dir = os.path.join(self.records_dir, f"{ns}_{name}_{uid[:8]}")
        hostname = self.cfg.node if spec.host_network else (spec.hostname or name)[:63]
        rec = Record(ns, name, uid, self.netns_name(ns, name, uid), uid.replace("-", ""), first,
                     os.path.join(pod_dir, f"{first}.state.json"), os.path.join(pod_dir, f"{first}.log"),
                     restart_policy=spec.restart_policy, grace=spec.grace, pod_dir=pod_dir, host_network=spec.host_network,
                     hostname=hostname, init_containers=[c.name for c in spec.init_containers],
                     containers=[c.name for c in spec.containers])
        self.save(rec)  # the intent first: a kubelet that dies now finds (and cleans) it
        try:
            rec.pod_ip = sandbox.create(self.cfg.cni, rec.sandbox, self.cfg.node_ip)
            self.save(rec)
            sandbox.write_files(rec.netns, self.pod_files(spec, rec))
            os.makedirs(pod_dir, exist_ok=True)
            for stale in os.listdir(pod_dir):
                if stale.endswith((".state.json", ".state.json.tmp")):
                    os.unlink(os.path.join(pod_dir, stale))
            runner_spec = os.path.join(pod_dir, "pod.json")
            with open(runner_spec, "w") as f:
                json.dump(self.runner_spec(spec, rec), f)
            proc = containers.start(rec.netns, sandbox.uts_path(rec.netns), runner_spec, {"PATH": os.environ.get("PATH", "")})
            with self.lock:
                self.procs[uid] = proc
            rec.supervisor_pid = proc.pid
            self.save(rec)
        except (sandbox.SandboxError, OSError) as e:
            self.teardown(rec, f"could not start: {e}", quiet=True)
            delay = min(2.0 ** attempts, RETRY_MAX)
            self.failures[uid] = (attempts + 1, time.monotonic() + delay, key)
            log(f"pod {ns}/{name}: {e}; trying again in {delay:g} s")
            self.write_status(key, uid, pod, problem=("ContainerCreating", str(e)))
            return
        self.failures.pop(uid, None)
        log(f"pod {ns}/{name}: started, {rec.pod_ip} in {rec.netns}")
        self.write_status(key, uid, pod)

    def pod_files(self, spec, rec: Record) -> dict[str, str]:
        """resolv.conf and hosts for the pod, per its dnsPolicy, dnsConfig and hostAliases."""
        node_resolv = read_text(self.cfg.resolv_conf)
        resolv = podfiles.resolv_conf(spec.dns_policy, spec.host_network, spec.namespace, self.cfg.cluster_dns,
                                      self.cfg.cluster_domain, node_resolv, spec.dns_config)
        full = "" if spec.host_network else podfiles.fqdn(rec.hostname, spec.subdomain, spec.namespace, self.cfg.cluster_domain)
        hosts = podfiles.hosts_file(rec.pod_ip, rec.hostname, full, spec.host_aliases,
                                    read_text(self.cfg.hosts_file) if spec.host_network else None)
        return {"resolv.conf": resolv, "hosts": hosts}

    def runner_spec(self, spec, rec: Record) -> dict:
        """What the pod's runner (podnet.runtime.pod) is to run: every container with its
        command, environment, probes and hooks, and where its status and log go."""
        base = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "HOSTNAME": rec.hostname,
                "POD_NAME": spec.name, "POD_NAMESPACE": spec.namespace, "POD_IP": rec.pod_ip, "NODE_NAME": self.cfg.node,
                **service_env(self.store, spec.namespace)}

        def one(c) -> dict:
            return {"name": c.name, "argv": c.command, "env": {**base, **c.env}, "state": rec.state_of(c.name),
                    "log": rec.log_of(c.name), "probes": c.probes, "preStop": c.pre_stop, "postStart": c.post_start}

        return {"restartPolicy": spec.restart_policy, "grace": spec.grace, "podIP": rec.pod_ip,
                "initContainers": [one(c) for c in spec.init_containers], "containers": [one(c) for c in spec.containers]}

    def retry_due(self) -> None:
        """Pods whose start failed and whose back-off is over: try again (without waiting for
        the next event or the full pass)."""
        now_m = time.monotonic()
        for uid, (_, retry_at, key) in list(self.failures.items()):
            if retry_at <= now_m and uid not in self.records:
                kv = self.store.get(key)
                self.reconcile(key, stored.decode(kv.value) if kv else None)
                if kv is None:
                    self.failures.pop(uid, None)

    def teardown(self, rec: Record, why: str, grace: float | None = None, quiet: bool = False) -> None:
        """Stop the pod's containers (preStop, SIGTERM, SIGKILL after the grace period), then
        undo its sandbox: its IP is released only once its processes are gone."""
        if rec.supervisor_pid:
            containers.stop(rec.supervisor_pid, rec.grace if grace is None else grace)
        sandbox.destroy(self.cfg.cni, rec.sandbox)
        self.forget(rec)
        if not quiet:
            log(f"pod {rec.namespace}/{rec.name}: stopped and detached ({why})")

    def terminate(self, rec: Record, grace: float) -> None:
        """A deleted pod's graceful stop, in its own thread (its grace period must not hold up
        the other pods); then the Pod goes from the store. A kubelet that dies meanwhile finds
        the record and the marked Pod, and finishes the job."""
        try:
            self.teardown(rec, f"deleted, grace period {grace:g} s", grace=grace)
            store = open_store(self.cfg.store_url)
            try:
                kv = store.get(rec.key)
                current = stored.decode(kv.value) if kv else None
                if current is not None and current["metadata"].get("uid") == rec.uid:
                    store.delete(rec.key, kv.mod_revision)
            finally:
                store.close()
        except Exception as e:  # noqa: BLE001 - the next full pass tries again
            log(f"pod {rec.namespace}/{rec.name}: finishing its deletion failed: {e}")
        finally:
            self.terminating.discard(rec.uid)

    # -- status ----------------------------------------------------------------------------------
    def status_of(self, rec: Record | None, pod: dict, problem: tuple[str, str] | None) -> dict:
        spec = pod.get("spec", {})
        names = [c.get("name", "") for c in spec.get("containers", []) if isinstance(c, dict)]
        init_names = [c.get("name", "") for c in spec.get("initContainers") or [] if isinstance(c, dict)]
        if rec is None or not rec.supervisor_pid or problem is not None:
            return status_mod.pod_status(pod.get("status") or {}, rec.pod_ip if rec else "", self.cfg.node_ip,
                                         [{"name": n} for n in names], rec.restart_policy if rec else "Always", False,
                                         now(), problem or ("ContainerCreating", ""))
        alive = pid_alive(rec.supervisor_pid)
        inits = [status_mod.container_status(n, rec.state_of(n), rec.supervisor_pid, "PodInitializing")
                 for n in rec.init_containers or init_names]
        waiting = "PodInitializing" if inits and not all(status_mod.init_done(s) for s in inits) else "ContainerCreating"
        apps = [status_mod.container_status(n, rec.state_of(n), rec.supervisor_pid, waiting) for n in rec.containers or names]
        return status_mod.pod_status(pod.get("status") or {}, rec.pod_ip, self.cfg.node_ip, apps, rec.restart_policy,
                                     alive, now(), None, inits)

    def write_status(self, key: str, uid: str, pod: dict, problem: tuple[str, str] | None = None,
                     store: Store | None = None) -> None:
        """Write the pod's status (and podnet's annotations) if they changed; compare-and-set,
        re-read on a concurrent write (labels applied meanwhile are kept)."""
        store = store or self.store
        with self.lock:
            rec = self.records.get(uid)
        for _ in range(10):
            kv = store.get(key)
            current = stored.decode(kv.value) if kv else None
            if current is None or current["metadata"].get("uid") != uid:
                return  # deleted or replaced meanwhile
            if current["metadata"].get("deletionTimestamp"):
                return  # being deleted: no more status for it
            new_status = self.status_of(rec, current, problem)
            annotations = dict(current["metadata"].get("annotations") or {})
            if rec is not None and rec.supervisor_pid:
                annotations.update({"podnet.io/netns": rec.netns, "podnet.io/container-id": rec.container_id,
                                    "podnet.io/uts": sandbox.uts_path(rec.netns), "podnet.io/pod-dir": rec.directory,
                                    "podnet.io/log": rec.log_path, "podnet.io/state": rec.state_path,
                                    "podnet.io/pid": str(rec.supervisor_pid)})
            if new_status == current.get("status") and annotations == (current["metadata"].get("annotations") or {}):
                return
            current["status"] = new_status
            if annotations:
                current["metadata"]["annotations"] = annotations
            if store.cas(key, json.dumps(current), kv.mod_revision):
                return

    def status_loop(self) -> None:
        """Its own thread (and store connection): report a container's status as soon as its
        supervisor writes it (the file's mtime changes) or dies, without waiting for the loop."""
        store = open_store(self.cfg.store_url)
        last_liveness = 0.0
        alive: dict[str, bool] = {}
        while not self.stop.is_set():
            try:
                check_alive = time.monotonic() - last_liveness >= LIVENESS_POLL
                with self.lock:
                    records = [r for r in self.records.values() if r.supervisor_pid]
                    for uid, proc in list(self.procs.items()):
                        if proc.poll() is not None:  # the supervisor exited (restartPolicy said stop): reap it
                            self.procs.pop(uid, None)
                for rec in records:
                    if check_alive:
                        alive[rec.uid] = pid_alive(rec.supervisor_pid)
                    seen = (tuple(mtime(rec.state_of(n)) for n in rec.init_containers + (rec.containers or [rec.container])),
                            alive.get(rec.uid, True))
                    if self.seen_container.get(rec.uid) == seen:
                        continue
                    kv = store.get(rec.key)
                    pod = stored.decode(kv.value) if kv else None
                    if pod is not None:
                        self.write_status(rec.key, rec.uid, pod, store=store)
                    self.seen_container[rec.uid] = seen
                if check_alive:
                    last_liveness = time.monotonic()
                self.stop.wait(STATUS_POLL)
            except Exception as e:  # noqa: BLE001 - the store failed: say so, keep going
                log(f"kubelet status: {e.__class__.__name__}: {e}")
                self.stop.wait(1)

    # -- the loop --------------------------------------------------------------------------------
    def full_sync(self) -> int:
        """Compare every stored pod with what runs here; the revision read at."""
        kvs, rev = self.store.list(keys.PODS)
        seen = set()
        for kv in kvs:
            pod = stored.decode(kv.value)
            if pod is None:
                continue
            seen.add(kv.key)
            self.reconcile(kv.key, pod)
        for rec in list(self.records.values()):
            if rec.key not in seen and rec.uid not in self.terminating:
                self.teardown(rec, "its Pod is gone")
        return rev

    def run(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop.set())
        self.store = open_store(self.cfg.store_url)
        self.load_records()
        threading.Thread(target=self.status_loop, name="status", daemon=True).start()
        delay = 0.5
        rev = None
        last_resync = 0.0
        log(f"kubelet for {self.cfg.node}: {len(self.records)} pods on record")
        while not self.stop.is_set():
            try:
                now_m = time.monotonic()
                if rev is None or now_m - last_resync >= RESYNC:
                    rev = self.full_sync()
                    last_resync = now_m
                try:
                    events = self.store.watch(keys.PODS, rev, WATCH_WAIT)
                except Compacted:
                    rev = None
                    continue
                for ev in events:
                    rev = ev.revision
                    pod = stored.decode(ev.value) if ev.type == "put" else None
                    self.reconcile(ev.key, pod)
                self.retry_due()
                delay = 0.5
            except Exception as e:  # noqa: BLE001 - the store or the kernel failed: back off, pods keep running
                log(f"kubelet: {e.__class__.__name__}: {e}; retrying in {delay:g} s")
                self.stop.wait(delay)
                delay = min(delay * 2, RETRY_MAX)
                rev = None
        log("kubelet stopping (pods keep running; a restarted kubelet adopts them)")


def mtime(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


def read_text(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def service_env(store: Store, namespace: str) -> dict[str, str]:
    """{SVC}_SERVICE_HOST/_PORT for the services of the namespace that exist now, as the kubelet
    gives every container it starts."""
    env: dict[str, str] = {}
    for svc in stored.decode_all(store.list(f"{keys.SERVICES}{namespace}/")[0])[0]:
        spec = svc.get("spec") or {}
        if spec.get("type") == "ExternalName" or spec.get("clusterIP") in (None, "", "None") or not spec.get("ports"):
            continue
        prefix = svc["metadata"]["name"].upper().replace("-", "_")
        env[f"{prefix}_SERVICE_HOST"] = spec["clusterIP"]
        env[f"{prefix}_SERVICE_PORT"] = str(spec["ports"][0]["port"])
        for p in spec["ports"]:
            if p.get("name"):
                env[f"{prefix}_SERVICE_PORT_{p['name'].upper().replace('-', '_')}"] = str(p["port"])
    return env
