"""The agent's CNI path in routed mode (bgp backend): Calico's CNI plugin and calico-ipam in one.

ADD takes an address for the attachment from the node's IP pool blocks (podnet.ipam.blocks:
its own blocks first, a new block, else a borrowed address), then runs the `routed` plugin
in-process with that address handed to the `static` IPAM plugin; if wiring fails the address
is released again, so a failed ADD leaves nothing. DEL unwires, then releases. A pod may ask for
pools by annotation, as with Calico:

    metadata:
      annotations:
        cni.projectcalico.org/ipv4pools: '["blue-pool"]'     # names or CIDRs, tried in order

Handles are `podnet.<container ID>.<ifname>`: the same attachment asking again (a retried ADD)
gets the address it already holds.
"""

from __future__ import annotations

import json

from ..api import keys
from ..cni.skel import dispatch, k8s_pod
from ..ipam.blocks import BlockAllocator, IPAMError
from ..plugins import routed
from ..store import Store

POOLS_ANNOTATION = "cni.projectcalico.org/ipv4pools"
PASSED_ON = ("prevResult", "runtimeConfig", "args", "cni.dev/valid-attachments")


def handle_for(container_id: str, ifname: str) -> str:
    return f"podnet.{container_id}.{ifname}"


def error_result(version: str, code: int, msg: str, details: str = "") -> tuple[int, str]:
    """(exit code 1, the spec's error JSON) for a failed CNI request."""
    out = {"cniVersion": version, "code": code, "msg": msg}
    if details:
        out["details"] = details
    return 1, json.dumps(out)


class RoutedDelegate:
    """How a routed node wires pods: set by the agent once its backend is ready."""

    bridge_name = ""  # no bridge: the host end of a pod's veth is the only interface outside it

    def __init__(self, allocator: BlockAllocator, store: Store, mtu: int, cni_path: str) -> None:
        self.allocator = allocator
        self.store = store
        self.mtu = mtu
        self.cni_path = cni_path

    def rewrite(self, conf: dict) -> dict:
        out = {"cniVersion": conf.get("cniVersion", "1.0.0"), "name": conf.get("name", "podnet"), "type": "routed",
               "mtu": self.mtu, "ipam": {"type": "static"}}
        for key in PASSED_ON:
            if key in conf:
                out[key] = conf[key]
        return out

    def requested_pools(self, env: dict) -> list[str] | None:
        """The pools the pod's annotation asks for (None: the node's automatic ones)."""
        namespace, name = k8s_pod(env)
        if not name:
            return None
        kv = self.store.get(f"{keys.PODS}{namespace or 'default'}/{name}")
        if kv is None:
            return None
        try:
            raw = (json.loads(kv.value).get("metadata", {}).get("annotations") or {}).get(POOLS_ANNOTATION)
        except (ValueError, AttributeError):
            return None
        if raw is None:
            return None
        try:
            pools = json.loads(raw)
        except ValueError:
            pools = None
        if not isinstance(pools, list) or not pools or not all(isinstance(p, str) and p for p in pools):
            raise ValueError(f"annotation {POOLS_ANNOTATION} must be a JSON list of pool names or CIDRs, "
                             f"such as '[\"default-ipv4-ippool\"]', not {raw!r}")
        return pools

    def pod_of(self, env: dict) -> str:
        namespace, name = k8s_pod(env)
        return f"{namespace}/{name}" if name else ""

    def run(self, env: dict, stdin: bytes) -> tuple[int, str]:
        conf = json.loads(stdin)
        version = conf.get("cniVersion", "1.1.0")
        command = env.get("CNI_COMMAND", "")
        handle = handle_for(env.get("CNI_CONTAINERID", ""), env.get("CNI_IFNAME", ""))
        if command == "ADD":
            held = bool(self.allocator.ips_of(handle))  # a repeated ADD: the address is a running pod's
            try:
                ip = self.allocator.assign(handle, self.pod_of(env), self.requested_pools(env))
            except (IPAMError, ValueError) as e:
                return error_result(version, 999, "podnet IPAM: cannot assign an address", str(e))
            code, out = self._plugin(env, conf, [ip])
            if code != 0 and not held:
                self.allocator.release(handle)
            return code, out
        if command == "DEL":
            code, out = self._plugin(env, conf, [])
            if code == 0:
                self.allocator.release(handle)
            return code, out
        if command == "CHECK":
            ips = self.allocator.ips_of(handle)
            if not ips:
                return error_result(version, 999, f"podnet IPAM: no address is recorded for {handle}")
            return self._plugin(env, conf, ips)
        if command == "GC":
            valid = {handle_for(a.get("containerID", ""), a.get("ifname", ""))
                     for a in conf.get("cni.dev/valid-attachments") or [] if isinstance(a, dict)}
            for kv in self.store.list(keys.IPAM_HANDLES)[0]:
                name = kv.key[len(keys.IPAM_HANDLES):]
                try:
                    node = json.loads(kv.value).get("node")
                except (ValueError, AttributeError):
                    continue
                if node == self.allocator.node and name.startswith("podnet.") and name not in valid:
                    self.allocator.release(name)
            return 0, ""
        return self._plugin(env, conf, [])

    def _plugin(self, env: dict, conf: dict, ips: list[str]) -> tuple[int, str]:
        conf = dict(conf, ipam={"type": "static", "addresses": [{"address": f"{ip}/32"} for ip in ips]})
        return dispatch(routed.PLUGIN, env, json.dumps(conf).encode())
