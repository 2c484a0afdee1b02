"""Allocation of a Service's ClusterIP, NodePorts and LoadBalancer address, as the API server
does it on create and update: each value is reserved by a create-only key under
/podnet/allocations/<kind>/<value> whose value names the service, so two writers can never
hand out the same one; what a service no longer uses is released."""

from __future__ import annotations

import ipaddress
import random

from ..api.errors import ValidationError
from ..api.keys import ALLOCATIONS as ALLOC
from ..api.service import DNS_SERVICE_IP, LB_POOL, NODEPORT_RANGE, SERVICE_CIDR
from ..store import Store


def _claim(store: Store, kind: str, value: str, owner: str) -> bool:
    return store.create(f"{ALLOC}{kind}/{value}", owner)


def release_all(store: Store, owner: str) -> None:
    kvs, _ = store.list(ALLOC)
    for kv in kvs:
        if kv.value == owner:
            store.delete(kv.key)


def allocate(store: Store, svc: dict, previous: dict | None = None) -> dict:
    """Fill clusterIP, nodePorts and LoadBalancer ingress, keeping what `previous` already had."""
    owner = f"{svc['metadata']['namespace']}/{svc['metadata']['name']}"
    spec = svc["spec"]
    old = (previous or {}).get("spec", {})
    claimed: list[str] = []

    def claim(kind: str, value: str) -> bool:
        if _claim(store, kind, value, owner):
            claimed.append(f"{ALLOC}{kind}/{value}")
            return True
        kv = store.get(f"{ALLOC}{kind}/{value}")
        return kv is not None and kv.value == owner  # ours already (re-apply)

    try:
        if spec["type"] != "ExternalName" and spec.get("clusterIP") != "None":
            want = spec.get("clusterIP") or old.get("clusterIP", "")
            if want and want != "None":
                if not claim("clusterips", want):
                    raise ValidationError("spec.clusterIP", f"{want} is already allocated to another service")
                spec["clusterIP"] = want
            else:
                spec["clusterIP"] = _pick(claim, "clusterips", _cluster_ips())
        if spec["type"] in ("NodePort", "LoadBalancer"):
            old_ports = {(p["port"], p["protocol"]): p.get("nodePort") for p in old.get("ports", [])}
            for p in spec["ports"]:
                want = p.get("nodePort") or old_ports.get((p["port"], p["protocol"])) or 0
                if want:
                    if not claim("nodeports", f"{p['protocol'].lower()}-{want}"):
                        raise ValidationError("spec.ports.nodePort", f"{want}/{p['protocol']} is already allocated")
                    p["nodePort"] = want
                else:
                    p["nodePort"] = int(_pick(lambda k, v, proto=p["protocol"].lower(): claim(k, f"{proto}-{v}"), "nodeports",
                                              (str(n) for n in _shuffled(range(NODEPORT_RANGE[0], NODEPORT_RANGE[1] + 1)))))
        if spec["type"] == "LoadBalancer":
            old_ing = ((previous or {}).get("status", {}).get("loadBalancer", {}).get("ingress") or [{}])[0].get("ip", "")
            if old_ing and claim("lbips", old_ing):
                ip = old_ing
            else:
                ip = _pick(claim, "lbips", (str(h) for h in ipaddress.ip_network(LB_POOL).hosts()))
            svc["status"] = {"loadBalancer": {"ingress": [{"ip": ip}]}}
    except BaseException:
        for key in claimed:
            store.delete(key)
        raise
    # release what the previous version held and this one no longer uses (its own keys only:
    # no listing of every allocation, so an update costs the same in a cluster of any size)
    if previous is not None:
        keep = set(claimed) | _held_keys(svc)
        for key in sorted(_held_keys(previous) - keep):
            kv = store.get(key)
            if kv is not None and kv.value == owner:
                store.delete(key, kv.mod_revision)
    return svc


def _held_keys(svc: dict) -> set[str]:
    spec = svc["spec"]
    keys = set()
    if spec.get("clusterIP") not in (None, "", "None"):
        keys.add(f"{ALLOC}clusterips/{spec['clusterIP']}")
    for p in spec.get("ports", []):
        if p.get("nodePort"):
            keys.add(f"{ALLOC}nodeports/{p['protocol'].lower()}-{p['nodePort']}")
    for ing in svc.get("status", {}).get("loadBalancer", {}).get("ingress", []):
        keys.add(f"{ALLOC}lbips/{ing['ip']}")
    return keys


def _cluster_ips():
    net = ipaddress.ip_network(SERVICE_CIDR)
    reserved = {str(net.network_address + 1), DNS_SERVICE_IP}
    return (str(net.network_address + i) for i in _shuffled(range(2, net.num_addresses - 1))
            if str(net.network_address + i) not in reserved)


def _shuffled(r: range):
    """Every value of r once, from a random start (cheap for large ranges)."""
    start = random.randrange(len(r))
    for i in range(len(r)):
        yield r[(start + i) % len(r)]


def _pick(claim, kind: str, candidates) -> str:
    for value in candidates:
        if claim(kind, value):
            return value
    raise ValidationError("spec", f"no free {kind[:-1]} left")

