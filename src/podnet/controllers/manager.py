"""`podnet controller-manager`: the cluster's controllers in one process, acting only while it
holds the leader lease (/podnet/leader/controller-manager, a store lease renewed every few
seconds), so several can run and exactly one writes. Every controller runs on the events it
watches and on a periodic full pass, under one error policy (log, back off, retry)."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time

from ..api import keys
from ..store import Compacted, Store, open_store
from . import deployments, endpointslices

LEASE_TTL = 15
RENEW = 5.0
RESYNC = 10.0
# controllers that follow events get their full pass (a listing of everything) less often:
# at 10,000 services one takes ~1 s, and events wait meanwhile
FULL_EVERY = {"endpointslices": 60.0}
LEADER_KEY = f"{keys.LEADERS}controller-manager"


def controllers() -> dict:
    """controller -> (run(store, log, events), the prefixes whose changes make it run); events
    is None for a full pass, else the events since its last run (a controller may use them).
    Made per manager: a controller may keep memory."""
    return {
        "endpointslices": (endpointslices.EndpointSlices(), (keys.SERVICES, keys.PODS)),
        "deployments": (lambda store, log, _events: deployments.sync(store, log), (keys.DEPLOYMENTS, keys.PODS)),
    }


def log(msg: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


class Manager:
    def __init__(self, store_url: str, identity: str = "") -> None:
        self.store_url = store_url
        self.identity = identity or f"{socket.gethostname()}-{os.getpid()}"
        self.stop = threading.Event()
        self.store: Store
        self.lease = 0
        self.leading = False
        self.failures: dict[str, int] = {}
        self.retry_at: dict[str, float] = {}
        self.controllers = controllers()

    def lead(self) -> bool:
        """Take or keep the leader lease; whether we hold it."""
        if self.leading:
            if self.store.keepalive(self.lease):
                return True
            log("lost the leader lease")
            self.leading = False
        self.lease = self.store.grant(LEASE_TTL)
        if self.store.create(LEADER_KEY, self.identity, lease=self.lease):
            log(f"leading as {self.identity}")
            self.leading = True
            return True
        self.store.revoke(self.lease)
        return False

    def run_controller(self, name: str, events: list | None = None) -> bool:
        """Run one controller (events None: a full pass); False when it failed or must wait."""
        if time.monotonic() < self.retry_at.get(name, 0.0):
            return False
        sync, _ = self.controllers[name]
        try:
            sync(self.store, log, events)
        except Exception as e:  # noqa: BLE001 - the one policy: log, back off, retry; the others go on
            n = self.failures.get(name, 0) + 1
            self.failures[name] = n
            delay = min(0.5 * 2 ** (n - 1), 30.0)
            self.retry_at[name] = time.monotonic() + delay
            log(f"{name} failed ({n}x): {e.__class__.__name__}: {e}; retrying in {delay:g} s")
            return False
        if self.failures.pop(name, 0):
            log(f"{name}: recovered")
        self.retry_at.pop(name, None)
        return True

    def run(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop.set())
        self.store = open_store(self.store_url)
        rev = None
        last_lead = last_resync = 0.0
        last_full: dict[str, float] = {}
        pending: dict[str, list | None] = {}  # controller -> its events since it last ran (None: a full pass)
        delay = 0.5
        while not self.stop.is_set():
            try:
                now = time.monotonic()
                if now - last_lead >= RENEW or not self.leading:
                    self.lead()
                    last_lead = now
                if not self.leading:
                    self.stop.wait(RENEW)
                    rev = None
                    continue
                if rev is None:  # a fresh start (or events lost): everything from a listing
                    _, rev = self.store.list(keys.ROOT)
                    pending = dict.fromkeys(self.controllers)
                    last_full = dict.fromkeys(self.controllers, now)
                    last_resync = now
                elif now - last_resync >= RESYNC:
                    for name in self.controllers:  # a controller run by events needs the safety net less often
                        if now - last_full[name] >= FULL_EVERY.get(name, RESYNC):
                            pending[name] = None
                            last_full[name] = now
                    last_resync = now
                for name in sorted(pending):
                    if self.run_controller(name, pending[name]):
                        del pending[name]
                    else:  # failed (its memory may be half updated) or backing off: a full pass next
                        pending[name] = None
                try:
                    events = self.store.watch(keys.ROOT, rev, 1.0)
                except Compacted:
                    rev = None
                    continue
                if events:
                    rev = events[-1].revision
                for name, (_, watched) in self.controllers.items():
                    mine = [e for e in events if e.key.startswith(watched)]
                    if mine:
                        if name not in pending:
                            pending[name] = mine
                        elif pending[name] is not None:
                            pending[name] += mine
                delay = 0.5
            except Exception as e:  # noqa: BLE001 - store down or stalled: back off, keep trying
                log(f"controller-manager: {e.__class__.__name__}: {e}; retrying in {delay:g} s")
                self.stop.wait(delay)
                delay = min(delay * 2, 30.0)
                rev = None
        if self.leading:
            try:
                self.store.revoke(self.lease)
            except Exception:  # noqa: BLE001 - stopping anyway; the lease expires by itself
                pass
        log("controller-manager stopping")
