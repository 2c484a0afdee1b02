"""Anti-spoofing at the pod's port, before the bridge and before NetworkPolicy.

A frame a pod sends must carry the pod's own MAC and IPv4 source address; an ARP frame, the
pod's own sender MAC and IP. Anything else (another pod's address, a raw socket's forged
source, an ARP reply for someone else's IP, IPv6, which NetworkPolicy here does not cover) is
dropped in the bridge family's prerouting hook. Spoofed IPv4 and ARP are counted per port (in
the dynamic set `spoofers`, and in the counter `spoofed`); other protocols in `not-ipv4`.

In routed mode (the bgp backend) there is no bridge: the same checks run in `ip
podnet_antispoof` on the pod's host veth (its interface and IPv4 source address; ARP is moot,
as the node answers every ARP itself by proxy).

One table, `bridge podnet_antispoof`, whatever the number of pods: the pods are elements of
three sets (`ports`, `endpoints` = port . MAC . IP, and the dynamic `spoofers` that counts
drops per port), so attaching or detaching a pod is a handful of element changes.

The agent records every attachment on disk (one JSON file per container and interface) when
the bridge plugin's ADD succeeds, and only then answers the runtime, so a pod never runs
unprotected; DEL removes it. A periodic sync drops records whose host veth is gone and
rebuilds the table if it differs from the records (or was deleted by hand).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass

from ..kernel import nft

FAMILY, TABLE = "bridge", "podnet_antispoof"
PRIORITY = -300  # before br_netfilter hands bridged IPv4 to the ip hooks (policy) at 0
ELEMENT_SETS = ("ports", "endpoints")  # change with every pod: compared with the records instead


@dataclass(frozen=True)
class Attachment:
    container_id: str
    ifname: str
    host_veth: str
    mac: str
    ips: tuple[str, ...]
    pod: str = ""  # namespace/name, from CNI_ARGS (for people reading the drop counters)

    @property
    def record_name(self) -> str:
        return record_name(self.container_id, self.ifname)


def record_name(container_id: str, ifname: str) -> str:
    return f"{container_id}_{ifname}.json"


def from_result(container_id: str, ifname: str, result: dict, bridge: str, pod: str = "") -> Attachment:
    """The attachment an ADD made, from its result: the host veth is the interface outside the
    sandbox that is not the bridge; MAC and addresses are those of the container interface."""
    ifaces = result.get("interfaces") or []
    hosts = [i for i in ifaces if not i.get("sandbox") and i.get("name") != bridge]
    conts = [k for k, i in enumerate(ifaces) if i.get("sandbox") and i.get("name") == ifname]
    if len(hosts) != 1 or len(conts) != 1 or not ifaces[conts[0]].get("mac"):
        raise ValueError(f"cannot tell the pod's host veth and MAC from the result's interfaces: {ifaces}")
    ips = tuple(ip["address"].split("/")[0] for ip in result.get("ips") or []
                if ip.get("interface", conts[0]) == conts[0] and ":" not in ip["address"])
    if not ips:
        raise ValueError("the result has no IPv4 address for the pod's interface")
    return Attachment(container_id, ifname, hosts[0]["name"], ifaces[conts[0]]["mac"].lower(), ips, pod)


# -- pure renderers -------------------------------------------------------------------------
def _t(family: str = FAMILY, **kw) -> dict:
    return {"family": family, "table": TABLE, **kw}


def _meta(key: str) -> dict:
    return {"meta": {"key": key}}


def _payload(proto: str, field: str) -> dict:
    return {"payload": {"protocol": proto, "field": field}}


def _match(left: object, right: object, op: str = "==") -> dict:
    return {"match": {"op": op, "left": left, "right": right}}


def elements(att: Attachment, family: str = FAMILY) -> tuple[list[str], list[dict]]:
    """(ports elements, endpoints elements) of one attachment."""
    if family == "ip":
        return [att.host_veth], [{"concat": [att.host_veth, ip]} for ip in att.ips]
    return [att.host_veth], [{"concat": [att.host_veth, att.mac, ip]} for ip in att.ips]


def table(bridge_ports: list[Attachment], family: str = FAMILY) -> list[dict]:
    """One transaction that replaces the whole table with these attachments."""
    ports, endpoints = [], []
    for att in sorted(bridge_ports, key=lambda a: (a.host_veth, a.container_id)):
        p, e = elements(att, family)
        ports += p
        endpoints += e
    if family == "ip":
        return routed_table(ports, endpoints)
    iif = _meta("iifname")
    cmds: list[dict] = [
        {"add": {"table": {"family": FAMILY, "name": TABLE}}},
        {"delete": {"table": {"family": FAMILY, "name": TABLE}}},
        {"add": {"table": {"family": FAMILY, "name": TABLE}}},
        {"add": {"set": _t(name="ports", type="ifname")}},
        {"add": {"set": _t(name="endpoints", type=["ifname", "ether_addr", "ipv4_addr"])}},
        {"add": {"set": _t(name="spoofers", type="ifname", size=65535, stmt=[{"counter": None}])}},
        {"add": {"counter": _t(name="spoofed")}},
        {"add": {"counter": _t(name="not-ipv4")}},
        {"add": {"chain": _t(name="prerouting", type="filter", hook="prerouting", prio=PRIORITY, policy="accept")}},
        # the common case first: a pod's own IPv4 costs one lookup
        {"add": {"rule": _t(chain="prerouting", comment="IPv4 from the pod's own MAC and address", expr=[
            _match({"concat": [iif, _payload("ether", "saddr"), _payload("ip", "saddr")]}, "@endpoints"), {"accept": None}])}},
        {"add": {"rule": _t(chain="prerouting", comment="not a pod port", expr=[_match(iif, "@ports", "!="), {"accept": None}])}},
        {"add": {"rule": _t(chain="prerouting", comment="ARP for the pod's own MAC and address", expr=[
            _match({"concat": [iif, _payload("ether", "saddr"), _payload("arp", "saddr ip")]}, "@endpoints"),
            _match({"concat": [iif, _payload("arp", "saddr ether"), _payload("arp", "saddr ip")]}, "@endpoints"),
            {"accept": None}])}},
        {"add": {"rule": _t(chain="prerouting", comment="IPv6 and other protocols: NetworkPolicy covers IPv4 only", expr=[
            _match(_payload("ether", "type"), {"set": ["ip", "arp"]}, "!="), {"counter": "not-ipv4"}, {"drop": None}])}},
        {"add": {"rule": _t(chain="prerouting", comment="anything else a pod sends: spoofed", expr=[
            {"set": {"op": "update", "elem": iif, "set": "@spoofers"}}, {"counter": "spoofed"}, {"drop": None}])}},
    ]
    if ports:
        cmds.append({"add": {"element": _t(name="ports", elem=ports)}})
        cmds.append({"add": {"element": _t(name="endpoints", elem=endpoints)}})
    return cmds


def routed_table(ports: list[str], endpoints: list[dict]) -> list[dict]:
    """The routed mode's table (family ip): a pod's host veth passes only its own addresses."""
    t = lambda **kw: _t("ip", **kw)  # noqa: E731
    iif = _meta("iifname")
    cmds: list[dict] = [
        {"add": {"table": {"family": "ip", "name": TABLE}}},
        {"delete": {"table": {"family": "ip", "name": TABLE}}},
        {"add": {"table": {"family": "ip", "name": TABLE}}},
        {"add": {"set": t(name="ports", type="ifname")}},
        {"add": {"set": t(name="endpoints", type=["ifname", "ipv4_addr"])}},
        {"add": {"set": t(name="spoofers", type="ifname", size=65535, stmt=[{"counter": None}])}},
        {"add": {"counter": t(name="spoofed")}},
        {"add": {"chain": t(name="prerouting", type="filter", hook="prerouting", prio=PRIORITY, policy="accept")}},
        {"add": {"rule": t(chain="prerouting", comment="IPv4 from the pod's own address", expr=[
            _match({"concat": [iif, _payload("ip", "saddr")]}, "@endpoints"), {"accept": None}])}},
        {"add": {"rule": t(chain="prerouting", comment="not a pod port", expr=[_match(iif, "@ports", "!="), {"accept": None}])}},
        {"add": {"rule": t(chain="prerouting", comment="anything else a pod sends: spoofed", expr=[
            {"set": {"op": "update", "elem": iif, "set": "@spoofers"}}, {"counter": "spoofed"}, {"drop": None}])}},
    ]
    if ports:
        cmds.append({"add": {"element": t(name="ports", elem=ports)}})
        cmds.append({"add": {"element": t(name="endpoints", elem=endpoints)}})
    return cmds


def add_commands(att: Attachment, family: str = FAMILY) -> list[dict]:
    ports, endpoints = elements(att, family)
    return [{"add": {"element": _t(family, name="endpoints", elem=endpoints)}},
            {"add": {"element": _t(family, name="ports", elem=ports)}}]


def delete_commands(att: Attachment, family: str = FAMILY) -> list[dict]:
    ports, endpoints = elements(att, family)
    return [{"delete": {"element": _t(family, name="ports", elem=ports)}},
            {"delete": {"element": _t(family, name="endpoints", elem=endpoints)}}]


# -- the registry ---------------------------------------------------------------------------
class Registry:
    """The node's attachments, recorded on disk and mirrored in the kernel table. Thread-safe:
    the CNI server calls it from one thread per request, the agent's loop syncs it."""

    def __init__(self, directory: str, log=lambda _msg: None, family: str = FAMILY) -> None:
        self.directory = directory
        self.log = log
        self.family = family  # "bridge" (pods on a bridge) or "ip" (routed pods)
        self.lock = threading.Lock()
        self.applied: set[Attachment] | None = None  # what the kernel holds (None: unknown, rebuild)
        self.fingerprint: str | None = None  # the table's structure right after our last full apply

    def set_family(self, family: str) -> None:
        """The node now wires pods another way (a backend switch): the old table goes, the next
        sync builds the new one."""
        with self.lock:
            if family == self.family:
                return
            old, self.family = self.family, family
            self.applied = None
            try:
                nft.run([{"add": {"table": {"family": old, "name": TABLE}}}, {"delete": {"table": {"family": old, "name": TABLE}}}])
            except nft.NftError:
                pass

    def load(self) -> list[Attachment]:
        out = []
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return []
        for name in names:
            if not name.endswith(".json"):
                continue
            try:
                with open(os.path.join(self.directory, name)) as f:
                    raw = json.load(f)
                out.append(Attachment(raw["container_id"], raw["ifname"], raw["host_veth"], raw["mac"], tuple(raw["ips"]),
                                      raw.get("pod", "")))
            except (OSError, ValueError, KeyError, TypeError):
                os.unlink(os.path.join(self.directory, name))  # unreadable: the next full sync goes without it
        return out

    def _write(self, att: Attachment) -> None:
        os.makedirs(self.directory, exist_ok=True)
        path = os.path.join(self.directory, att.record_name)
        with open(f"{path}.tmp", "w") as f:
            json.dump(asdict(att), f)
        os.replace(f"{path}.tmp", path)

    def admit(self, att: Attachment) -> None:
        """Record the attachment and let its traffic through; raises if either fails (nothing
        is left recorded then)."""
        with self.lock:
            self._write(att)
            try:
                if self.applied is None:
                    self._apply_all()
                else:
                    nft.run(add_commands(att, self.family))
                    self.applied.add(att)
            except BaseException:
                os.unlink(os.path.join(self.directory, att.record_name))
                self.applied = None
                raise

    def forget(self, container_id: str, ifname: str) -> None:
        """DEL: drop the record and its elements (idempotent)."""
        with self.lock:
            path = os.path.join(self.directory, record_name(container_id, ifname))
            att = next((a for a in self.load() if a.record_name == record_name(container_id, ifname)), None)
            if att is None:
                return
            os.unlink(path)
            if self.applied is None or att not in self.applied:
                return  # the next sync rebuilds the table from the records
            try:
                nft.run(delete_commands(att, self.family))
                self.applied.discard(att)
            except nft.NftError:
                self.applied = None  # the elements were not there as we thought: rebuild on the next sync

    def keep_only(self, valid: set[tuple[str, str]]) -> None:
        """GC: forget every attachment not in `valid` (container ID, ifname)."""
        for att in self.load():
            if (att.container_id, att.ifname) not in valid:
                self.forget(att.container_id, att.ifname)

    def sync(self, existing_links) -> int:
        """Drop records whose host veth is gone; rebuild the table when it differs from the
        records or is missing from the kernel. The number of records dropped.

        `existing_links()` lists the node's links; it is called under the lock, so a pod that an
        ADD is attaching right now is never mistaken for one that is gone."""
        with self.lock:
            existing_links = existing_links()
            atts = self.load()
            gone = [a for a in atts if a.host_veth not in existing_links]
            for a in gone:
                os.unlink(os.path.join(self.directory, a.record_name))
            keep = [a for a in atts if a.host_veth in existing_links]
            kernel = nft.list_ruleset(["table", self.family, TABLE])
            drifted = (nft.fingerprint_of(kernel, ELEMENT_SETS) != self.fingerprint
                       or sorted(nft.set_elements(kernel, "ports")) != sorted(a.host_veth for a in keep))
            if drifted and self.applied == set(keep):
                self.log(f"table {self.family} {TABLE} was changed outside podnet: restoring it")
            if self.applied != set(keep) or drifted:
                self._apply_all(keep)
            return len(gone)

    def _apply_all(self, atts: list[Attachment] | None = None) -> None:
        atts = self.load() if atts is None else atts
        nft.run(table(atts, self.family))
        self.applied = set(atts)
        self.fingerprint = nft.fingerprint(self.family, TABLE, ELEMENT_SETS)

    def drops(self) -> dict[str, int]:
        """Packets dropped per host veth since the table was (re)built."""
        out: dict[str, int] = {}
        for item in nft.list_ruleset(["set", self.family, TABLE, "spoofers"]):
            for elem in (item.get("set") or {}).get("elem") or []:
                e = elem.get("elem", elem) if isinstance(elem, dict) else elem
                if isinstance(e, dict):
                    name = e.get("val")
                    packets = (e.get("counter") or {}).get("packets", 0)
                    if isinstance(name, str):
                        out[name] = packets
        return out
