"""`podnet kubelet`: one per node. It watches the Pods bound to its node and makes them real:
a sandbox through CNI, the container under a supervisor, and the pod's status written back
(phase, podIP, conditions with Ready, containerStatuses). A pod marked for deletion is stopped
(SIGTERM, then SIGKILL after its grace period), detached and removed from the store.

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
from dataclasses import asdict, dataclass

from ..api import keys, stored
from ..api.pod import parse_pod
from ..api.errors import ValidationError
from ..proc import pid_alive
from ..store import Compacted, Store, open_store
from . import containers, sandbox, status as status_mod

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
    """A pod this kubelet runs (or is making)."""
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

    @property
    def key(self) -> str:
        return f"{keys.PODS}{self.namespace}/{self.name}"


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


class Kubelet:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.stop = threading.Event()
        self.records: dict[str, Record] = {}
        self.procs: dict[str, object] = {}          # uid -> the supervisor's Popen (reaped as it exits)
        self.seen_container: dict[str, tuple] = {}  # uid -> (status file mtime, supervisor alive) last acted on
        self.lock = threading.RLock()               # records and procs: the loop and the status thread
        self.failures: dict[str, tuple[int, float, str]] = {}  # uid -> (failed attempts, retry at, pod key)
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
                self.teardown(rec, "its Pod is gone")
            return
        uid = pod["metadata"].get("uid", "")
        for rec in mine:
            if rec.uid != uid:
                self.teardown(rec, "replaced by a new pod of the same name")
        if pod["metadata"].get("deletionTimestamp"):
            rec = self.records.get(uid)
            if rec is not None:
                self.teardown(rec, "deleted", grace=float(pod["metadata"].get("deletionGracePeriodSeconds", rec.grace)))
            self.store.delete(key)  # gone from the cluster now that nothing of it runs here
            log(f"pod {key[len(keys.PODS):]}: deleted")
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
        container = spec.containers[0]
        grace = float(pod["spec"].get("terminationGracePeriodSeconds", 30))
        rec = Record(ns, name, uid, self.netns_name(ns, name, uid), uid.replace("-", ""), container.name,
                     restart_policy=spec.restart_policy, grace=grace)
        pod_dir = os.path.join(self.records_dir, f"{ns}_{name}_{uid[:8]}")
        rec.state_path = os.path.join(pod_dir, f"{container.name}.state.json")
        rec.log_path = os.path.join(pod_dir, f"{container.name}.log")
        self.save(rec)  # the intent first: a kubelet that dies now finds (and cleans) it
        try:
            resolv = sandbox.resolv_conf(ns, self.cfg.cluster_dns, self.cfg.cluster_domain)
            rec.pod_ip = sandbox.create(self.cfg.cni, rec.netns, rec.container_id, ns, name, resolv)
            self.save(rec)
            env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "HOSTNAME": name,
                   "POD_NAME": name, "POD_NAMESPACE": ns, "POD_IP": rec.pod_ip, "NODE_NAME": self.cfg.node,
                   **service_env(self.store, ns), **container.env}
            os.makedirs(pod_dir, exist_ok=True)
            proc = containers.start(rec.netns, container.name, container.command, env, rec.state_path, rec.log_path,
                                    rec.restart_policy, rec.grace)
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
        if rec.supervisor_pid:
            containers.stop(rec.supervisor_pid, rec.grace if grace is None else grace)
        sandbox.destroy(self.cfg.cni, rec.netns, rec.container_id, rec.namespace, rec.name)
        self.forget(rec)
        if not quiet:
            log(f"pod {rec.namespace}/{rec.name}: stopped and detached ({why})")

    # -- status ----------------------------------------------------------------------------------
    def status_of(self, rec: Record, pod: dict, problem: tuple[str, str] | None) -> dict:
        alive = bool(rec and rec.supervisor_pid and pid_alive(rec.supervisor_pid))
        container = None
        if rec is not None and rec.supervisor_pid:
            container = status_mod.container_status(rec.container, rec.state_path, rec.supervisor_pid)
        elif rec is None or problem is not None:
            names = [c.get("name", "") for c in pod.get("spec", {}).get("containers", []) if isinstance(c, dict)]
            container = {"name": names[0] if names else ""}
        return status_mod.pod_status(pod.get("status") or {}, rec.pod_ip if rec else "", self.cfg.node_ip, container,
                                     rec.restart_policy if rec else "Always", alive, now(), problem)

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
                    try:
                        mtime = os.stat(rec.state_path).st_mtime_ns
                    except OSError:
                        mtime = 0
                    seen = (mtime, alive.get(rec.uid, True))
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
            if rec.key not in seen:
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
