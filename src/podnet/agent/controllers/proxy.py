"""The service proxy: table ip podnet_proxy (podnet.proxy.maps), changed per store event.

Each Service or EndpointSlice event names one service; a sync recomputes only the services
named since the last one (two store reads each) and applies the element commands that differ,
so a change costs the same at 10 or 10,000 services. The whole table is built from a listing of
the store only at the first sync, after an error (the kernel and the model may then differ),
when events may have been missed, and in a full pass when someone else changed nftables and
the table's element or rule counts no longer match the model.
"""

from __future__ import annotations

import json
import time

from ...api import keys, stored
from ...kernel import conntrack, nft
from ...proxy import maps
from .. import metrics
from . import Controller

TRIGGER = "endpoints.kubernetes.io/last-change-trigger-time"


class Proxy(Controller):
    name = "proxy"
    watches = (keys.SERVICES, keys.ENDPOINT_SLICES)

    def __init__(self, agent) -> None:
        super().__init__(agent)
        self.table: maps.Table | None = None
        self.dirty: set[str] = set()          # "ns/name" of services whose Service or slices changed
        self.static_rules: dict[str, int] = {}
        self.skipped: dict[str, str] = {}     # "ns/name" -> what is wrong with it
        self.last_sync = 0.0                  # when the kernel last matched the store (time.time())
        self.last_duration = 0.0
        self.full_syncs = 0
        self.triggers: dict[str, float] = {}  # "ns/name" -> its slices' change time, for programming latency
        self.sync_seconds = metrics.Histogram("podnet_proxy_sync_proxy_rules_duration_seconds",
                                              "How long one sync of the service proxy's table took.")
        self.programming = metrics.Histogram("podnet_proxy_network_programming_duration_seconds",
                                             "From an EndpointSlice change (its last-change-trigger-time) until the "
                                             "kernel has it.")

    def concerns(self, event) -> bool:
        for prefix in self.watches:
            if event.key.startswith(prefix):
                self.dirty.add(event.key[len(prefix):])
                return True
        return False

    def sync(self, full: bool) -> None:
        a = self.agent
        t0 = time.perf_counter()
        cidr = str(a.cfg.network)
        if self.table is None or self.table.cluster_cidr != cidr or not (self.dirty or full):
            # the first sync, a new cluster network, or a sync without events (they may be lost)
            self.rebuild(cidr, "full sync")
        elif full and nft.changed_by_others() and self._drifted():
            self.rebuild(cidr, f"table {maps.TABLE} was changed outside podnet: rebuilt from the store")
        else:
            dirty, self.dirty = self.dirty, set()
            cmds: list[str] = []
            stale: list[tuple[str, int, str]] = []
            try:
                for key in sorted(dirty):
                    cmds += self.table.set_service(key, self.contribution(key))
                    stale += self.table.stale_udp
                nft.run_text(cmds)
            except Exception:
                self.table = None  # the model may be ahead of the kernel: rebuild on the next try
                self.dirty |= dirty
                raise
            if cmds:
                a.log(f"proxy: {len(cmds)} changes for {len(dirty)} services ({len(self.table.services)} in the table)")
            for flow in stale:  # after the kernel stopped choosing them: UDP flows to gone endpoints end now
                conntrack.forget_udp_nat(*flow)
            now = time.time()
            for key in dirty:
                if key in self.triggers:
                    self.programming.observe(max(0.0, now - self.triggers.pop(key)))
        a.report_skipped("services", sorted(f"service {k}: {why}" for k, why in self.skipped.items()))
        self.last_sync, self.last_duration = time.time(), time.perf_counter() - t0
        self.sync_seconds.observe(self.last_duration)

    def status(self) -> dict:
        """For the Node object (get nodes -o wide): what the table holds and when it was synced."""
        if self.table is None:
            return {}
        return {"services": len(self.table.services), "endpoints": self.table.endpoint_count(),
                "lastSync": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.last_sync)) if self.last_sync else "",
                "syncSeconds": round(self.last_duration, 4)}

    def metrics(self) -> str:
        table = self.table
        return (self.sync_seconds.render() + self.programming.render()
                + metrics.gauge("podnet_proxy_sync_proxy_rules_last_timestamp_seconds",
                                "When the table last matched the store (Unix time).", self.last_sync)
                + metrics.gauge("podnet_proxy_services", "Services in the table.", len(table.services) if table else 0)
                + metrics.gauge("podnet_proxy_endpoints", "Endpoint elements in the table.",
                                table.endpoint_count() if table else 0)
                + metrics.gauge("podnet_proxy_full_syncs_total", "Whole-table builds (start, error, drift).",
                                self.full_syncs, "counter"))

    def contribution(self, key: str) -> maps.Contribution | None:
        """Service `key`'s share of the table from the store (None: gone, or not usable)."""
        a = self.agent
        kv = a.store.get(keys.SERVICES + key)
        skv = a.store.get(keys.ENDPOINT_SLICES + key) if kv is not None else None
        return self._decode(key, kv.value if kv else None, skv.value if skv else None)

    def _decode(self, key: str, service: str | None, slices_text: str | None) -> maps.Contribution | None:
        """The contribution of a stored Service and its stored slices (as read or listed);
        what is wrong with them is kept for the log."""
        self.skipped.pop(key, None)
        if service is None:
            return None
        svc = stored.decode(service)
        if svc is None:
            self.skipped[key] = "not a Service object"
            return None
        slices = None
        if slices_text is not None:
            try:
                slices = json.loads(slices_text)
            except ValueError:
                slices = None
            if not isinstance(slices, dict) or not isinstance(slices.get("items"), list):
                self.skipped[key] = "its EndpointSlices do not decode"
                slices = None
            else:
                when = _trigger_time(slices)
                if when is not None:
                    self.triggers[key] = when
        c, problem = maps.checked_contribution(svc, slices, self.agent.node)
        if problem:
            self.skipped[key] = problem
        return c

    def rebuild(self, cidr: str, why: str) -> None:
        a = self.agent
        self.dirty.clear()
        self.skipped.clear()
        table = maps.Table(cidr)
        contributions = {}
        slices = {kv.key[len(keys.ENDPOINT_SLICES):]: kv.value for kv in a.store.list(keys.ENDPOINT_SLICES)[0]}
        for kv in a.store.list(keys.SERVICES)[0]:  # two listings, not two reads per service
            key = kv.key[len(keys.SERVICES):]
            c = self._decode(key, kv.value, slices.get(key))
            if c is not None:
                contributions[key] = c
        nft.run_text(table.rebuild(contributions))
        self.table = table
        self.full_syncs += 1
        self.triggers.clear()  # a rebuild is not a change's programming
        self.static_rules = {}
        counts = self._kernel_counts()
        if counts is not None:
            _, rules = counts
            dynamic = table.expected()[1]
            self.static_rules = {chain: n for chain, n in rules.items() if chain not in dynamic}
        a.log(f"proxy: {why} ({len(contributions)} services)")

    def _kernel_counts(self) -> tuple[dict[str, int], dict[str, int]] | None:
        elements: dict[str, int] = {}
        rules: dict[str, int] = {}
        items = nft.list_ruleset(["table", maps.FAMILY, maps.TABLE])
        if not items:
            return None
        for item in items:
            if "chain" in item:
                rules.setdefault(item["chain"]["name"], 0)
            elif "rule" in item:
                rules[item["rule"]["chain"]] = rules.get(item["rule"]["chain"], 0) + 1
            elif "map" in item or "set" in item:
                obj = item.get("map") or item["set"]
                elements[obj["name"]] = len(obj.get("elem") or [])
        return elements, rules

    def _drifted(self) -> bool:
        """The kernel's table differs from the model in its chains, rules per chain, or
        elements per map (counting, not comparing one by one; affinity entries come and go)."""
        counts = self._kernel_counts()
        if counts is None or self.table is None:
            return True
        elements, rules = counts
        want_elements, dynamic = self.table.expected()
        if {**self.static_rules, **dynamic} != rules:
            return True
        return any(elements.get(name, 0) != n for name, n in want_elements.items())


def _trigger_time(slices: dict) -> float | None:
    """The newest last-change-trigger-time of a service's slices (Unix time), if any."""
    import calendar

    newest = None
    for item in slices.get("items", []):
        text = ((item.get("metadata") or {}).get("annotations") or {}).get(TRIGGER) if isinstance(item, dict) else None
        if not isinstance(text, str):
            continue
        try:
            base, _, frac = text.rstrip("Z").partition(".")
            when = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + (float(f"0.{frac}") if frac else 0.0)
        except ValueError:
            continue
        newest = when if newest is None else max(newest, when)
    return newest
