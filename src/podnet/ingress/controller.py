"""`podnet ingress-controller`: an Ingress controller in the style of ingress-nginx, around a
real nginx it starts and owns.

It keeps the Ingresses of its class (IngressClass `spec.controller: k8s.io/ingress-nginx`, or the
default class), the Services, EndpointSlices, Secrets and IngressClasses in memory, updated from
one watch of the store. After a change (changes arriving together are taken together) it
builds the routing model (podnet.ingress.model: upstreams are the pods' IPs, not the
ClusterIP), renders nginx.conf (podnet.ingress.nginx), and only if the text differs, checks it
with `nginx -t` before it goes live: an invalid render never replaces a working config, its
error is reported on the Ingresses changed since the last good one. A good one replaces the
file and nginx is told to reload (SIGHUP: new workers take new connections, old ones finish
the requests they have, so no request is dropped).

Each Ingress of its class gets `status.loadBalancer.ingress[].ip` (the addresses of the Service
it is published through, as ingress-nginx's --publish-service) and `status.podnet` with the
problems found for it (missing Service or port, no endpoints, a bad Secret) and warnings.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from ..api import keys, stored
from ..api.ingress import class_of
from ..store import Compacted, Store, open_store
from . import model as model_mod
from . import nginx as nginx_mod

CONTROLLER = "k8s.io/ingress-nginx"
SETTLE = 0.05          # changes arriving within this long are rendered together (s)
WATCH_WAIT = 0.5
RETRY_MAX = 30.0
WATCHED = {keys.INGRESSES: "ingresses", keys.SERVICES: "services", keys.ENDPOINT_SLICES: "slices",
           keys.SECRETS: "secrets", keys.INGRESS_CLASSES: "classes"}


def log(msg: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


@dataclass
class Config:
    store_url: str
    work_dir: str                      # nginx's prefix: its config, certificates, temp files, logs
    publish_service: str = ""          # ns/name of the Service whose addresses go into Ingress status
    http_port: int = 80
    https_port: int = 443
    status_port: int = 10254
    nginx: str = "nginx"
    controller: str = CONTROLLER


def decode(collection: str, value: str) -> dict | None:
    """A stored value of one of the collections: an object, or for EndpointSlices the List the
    controller manager stores per Service; None when it cannot be read."""
    if collection == "slices":
        try:
            obj = json.loads(value)
        except ValueError:
            return None
        return obj if isinstance(obj, dict) and isinstance(obj.get("items"), list) else None
    return stored.decode(value, namespaced=collection != "classes")


class Cache:
    """The objects the controller reads, per collection, by (namespace, name) from their store
    key ('' as the namespace of cluster-scoped IngressClasses), kept from the watch."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[tuple[str, str], dict]] = {name: {} for name in WATCHED.values()}

    @staticmethod
    def locate(key: str) -> tuple[str, tuple[str, str]] | None:
        """(collection, (namespace, name)) of a store key, or None: not one the controller reads."""
        for prefix, collection in WATCHED.items():
            if key.startswith(prefix):
                rest = key[len(prefix):]
                ns, _, name = rest.rpartition("/")
                return collection, (ns, name)
        return None

    def put(self, key: str, value: str | None) -> tuple[str, tuple[str, str], dict | None, dict | None] | None:
        """Record a change (value None: deleted); (collection, ident, old, new), or None when the
        key is not one the controller reads."""
        where = self.locate(key)
        if where is None:
            return None
        collection, ident = where
        old = self.objects[collection].get(ident)
        new = decode(collection, value) if value is not None else None
        if new is None:
            self.objects[collection].pop(ident, None)
        else:
            self.objects[collection][ident] = new
        return collection, ident, old, new

    def by_name(self, collection: str) -> dict[tuple[str, str], dict]:
        return self.objects[collection]


class Controller:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.cache = Cache()
        self.stop = threading.Event()
        self.nginx: subprocess.Popen | None = None
        self.live_text = ""               # the config nginx runs
        self.rejected: tuple[str, str] = ("", "")   # (text, nginx -t error) of the last render refused
        self.touched: set[tuple[str, str]] = set()  # Ingresses changed since the last good config
        self.store: Store
        for sub in ("certs", "temp", "logs"):
            os.makedirs(os.path.join(cfg.work_dir, sub), mode=0o700, exist_ok=True)

    @property
    def conf_path(self) -> str:
        return os.path.join(self.cfg.work_dir, "nginx.conf")

    # -- what is ours -----------------------------------------------------------------------------
    def ours(self) -> list[dict]:
        classes = list(self.cache.objects["classes"].values())
        mine = []
        for ing in self.cache.objects["ingresses"].values():
            if ing["metadata"].get("deletionTimestamp"):
                continue
            cls = class_of(ing, classes)
            if cls is not None and (cls.get("spec") or {}).get("controller") == self.cfg.controller:
                mine.append(ing)
        return sorted(mine, key=lambda i: (i["metadata"]["namespace"], i["metadata"]["name"]))

    # -- rendering --------------------------------------------------------------------------------
    def sync(self) -> model_mod.Model:
        """Build, render, check and (when it changed) load the configuration; the model."""
        secrets = self.cache.by_name("secrets")
        model = model_mod.build(self.ours(), self.cache.by_name("services"), self.cache.by_name("slices"), secrets)
        certs = nginx_mod.cert_files(model, secrets)
        text = nginx_mod.render(model, os.path.join(self.cfg.work_dir, "certs"), http_port=self.cfg.http_port,
                                https_port=self.cfg.https_port, status_port=self.cfg.status_port,
                                pid_path=os.path.join(self.cfg.work_dir, "nginx.pid"),
                                temp_dir=os.path.join(self.cfg.work_dir, "temp"),
                                error_log=os.path.join(self.cfg.work_dir, "logs", "error.log"),
                                access_log=os.path.join(self.cfg.work_dir, "logs", "access.log"))
        if text == self.live_text and self.nginx_alive():
            self.touched.clear()
            return model
        if text == self.rejected[0]:
            return model  # the same render nginx -t refused already: nothing new to try
        self.write_certs(certs)
        error = self.check(text)
        if error:
            self.rejected = (text, error)
            log(f"the new configuration is invalid, nginx keeps the last good one: {error}")
            return model
        self.rejected = ("", "")
        write_file(self.conf_path, text)
        self.live_text = text
        self.touched.clear()
        self.load()
        return model

    def write_certs(self, certs: dict[str, bytes]) -> None:
        cert_dir = os.path.join(self.cfg.work_dir, "certs")
        for name, data in certs.items():
            path = os.path.join(cert_dir, name)
            try:
                with open(path, "rb") as f:
                    if f.read() == data:
                        continue
            except OSError:
                pass
            write_file(path, data, mode=0o600)
        for stale in set(os.listdir(cert_dir)) - set(certs):  # certificates no Ingress uses any more
            os.unlink(os.path.join(cert_dir, stale))

    def check(self, text: str) -> str:
        """nginx -t on the text; '' when valid, else nginx's complaint."""
        candidate = os.path.join(self.cfg.work_dir, "nginx.conf.new")
        write_file(candidate, text)
        r = subprocess.run([self.cfg.nginx, "-t", "-q", "-p", self.cfg.work_dir, "-c", candidate],
                           capture_output=True, text=True)
        os.unlink(candidate)
        if r.returncode == 0:
            return ""
        lines = [line.replace("nginx: ", "") for line in (r.stderr or r.stdout).splitlines() if "[emerg]" in line]
        return (lines[0] if lines else (r.stderr or r.stdout).strip())[-300:]

    def nginx_alive(self) -> bool:
        return self.nginx is not None and self.nginx.poll() is None

    def load(self) -> None:
        """Start nginx on the live config, or have the running one reload it gracefully."""
        t0 = time.monotonic()
        if self.nginx_alive():
            self.nginx.send_signal(signal.SIGHUP)
            log(f"nginx reloading ({(time.monotonic() - t0) * 1000:.1f} ms to signal)")
            return
        self.retire_orphan()
        self.nginx = subprocess.Popen([self.cfg.nginx, "-p", self.cfg.work_dir, "-c", self.conf_path, "-g", "daemon off;"],
                                      stdin=subprocess.DEVNULL)
        log(f"nginx started (pid {self.nginx.pid})")

    def retire_orphan(self) -> None:
        """An nginx left by a controller that was killed (its pid file names a live nginx) still
        holds the ports: let it finish its requests (SIGQUIT) before ours starts."""
        try:
            with open(os.path.join(self.cfg.work_dir, "nginx.pid")) as f:
                pid = int(f.read().strip())
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"nginx" not in f.read():
                    return
        except (OSError, ValueError):
            return
        log(f"an nginx of an earlier controller runs (pid {pid}): stopping it gracefully")
        try:
            os.kill(pid, signal.SIGQUIT)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.05)
        if os.path.exists(f"/proc/{pid}"):
            os.kill(pid, signal.SIGKILL)

    # -- status -----------------------------------------------------------------------------------
    def addresses(self) -> list[str]:
        if not self.cfg.publish_service:
            return []
        ns, _, name = self.cfg.publish_service.partition("/")
        svc = self.cache.by_name("services").get((ns, name))
        if svc is None:
            return []
        ips = [i["ip"] for i in (svc.get("status") or {}).get("loadBalancer", {}).get("ingress", []) if i.get("ip")]
        return ips or ([svc["spec"]["clusterIP"]] if svc["spec"].get("clusterIP") not in (None, "", "None") else [])

    def write_status(self, model: model_mod.Model) -> int:
        """status.loadBalancer and status.podnet of every Ingress of ours, where they changed."""
        ips = self.addresses()
        rejected = self.rejected[1]
        written = 0
        for ing in self.ours():
            ident = (ing["metadata"]["namespace"], ing["metadata"]["name"])
            problems = list(model.problems.get(ident, []))
            if rejected and ident in self.touched:
                problems.append(f"nginx refused the configuration, the previous one stays: {rejected}")
            warnings = [w for w in model.warnings if names(w, f"{ident[0]}/{ident[1]}")]
            want = {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]} if ips else {}}
            if problems or warnings:
                want["podnet"] = {k: v for k, v in (("problems", problems), ("warnings", warnings)) if v}
            if ing.get("status") == want:
                continue
            key = f"{keys.INGRESSES}{ident[0]}/{ident[1]}"
            kv = self.store.get(key)
            current = stored.decode(kv.value) if kv else None
            if current is None or current["metadata"].get("uid") != ing["metadata"].get("uid"):
                continue
            current["status"] = want
            text = json.dumps(current)
            if self.store.cas(key, text, kv.mod_revision):
                self.cache.put(key, text)
                written += 1
        return written

    # -- the loop ---------------------------------------------------------------------------------
    def load_all(self) -> int:
        """List everything read; the revision to watch from (the first list's: events between
        the lists are seen again, which changes nothing)."""
        self.cache = Cache()
        first = None
        for prefix in WATCHED:
            kvs, rev = self.store.list(prefix)
            first = rev if first is None else first
            for kv in kvs:
                self.cache.put(kv.key, kv.value)
        return first or 0

    def apply_event(self, ev) -> bool:
        """Take one change into the cache; True when the configuration may have to change. An
        Ingress whose only change is its status (our own write) changes nothing."""
        change = self.cache.put(ev.key, ev.value if ev.type == "put" else None)
        if change is None:
            return False
        collection, ident, old, new = change
        if collection != "ingresses":
            return old != new
        if old is not None and new is not None and _without_status(old) == _without_status(new):
            return False
        self.touched.add(ident)
        return True

    def run(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop.set())
        if shutil.which(self.cfg.nginx) is None:
            raise SystemExit(f"ingress-controller: {self.cfg.nginx} not found (install Debian's nginx)")
        self.store = open_store(self.cfg.store_url)
        rev, delay, dirty = None, 0.5, True
        try:
            while not self.stop.is_set():
                try:
                    if rev is None:
                        rev, dirty = self.load_all(), True
                    if dirty or not self.nginx_alive():
                        model = self.sync()
                        self.write_status(model)
                        dirty = False
                    try:
                        events = self.store.watch(keys.ROOT, rev, WATCH_WAIT)
                        if events:  # take what follows at once along with it
                            time.sleep(SETTLE)
                            events += self.store.watch(keys.ROOT, events[-1].revision, 0) or []
                    except Compacted:
                        rev = None
                        continue
                    for ev in events:
                        rev = ev.revision
                        dirty |= self.apply_event(ev)
                    delay = 0.5
                except Exception as e:  # noqa: BLE001 - the store failed: nginx keeps serving; retry
                    log(f"ingress-controller: {e.__class__.__name__}: {e}; retrying in {delay:g} s")
                    self.stop.wait(delay)
                    delay = min(delay * 2, RETRY_MAX)
                    rev = None
        finally:
            if self.nginx_alive():
                self.nginx.send_signal(signal.SIGQUIT)  # graceful: finish the requests in flight
                try:
                    self.nginx.wait(10)
                except subprocess.TimeoutExpired:
                    self.nginx.kill()
            log("ingress-controller stopped")


def names(text: str, ident: str) -> bool:
    """Whether a warning names the Ingress `ns/name` (not merely one whose name starts so)."""
    return re.search(rf"(?<![\w./-]){re.escape(ident)}(?![\w.-])", text) is not None


def _without_status(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k != "status"}


def write_file(path: str, data: str | bytes, mode: int = 0o644) -> None:
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)
