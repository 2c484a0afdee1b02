"""The mesh's CNI path: Weave's CNI plugin in one. ADD asks the node's router for an address
(the ring: podnet.ipam.ring) and runs podnet's bridge plugin in-process with it handed to the
`static` IPAM plugin, the bridge's own address as the gateway; if wiring fails the address goes
back. DEL unwires, then releases. Handles are `podnet.<container ID>.<ifname>`, so a retried
ADD gets the address it already holds. A router that is down or still waiting for its share of
the ring makes ADD answer "try again later" (CNI code 11), and the runtime retries."""

from __future__ import annotations

import json
from typing import Callable

from ....cni.errors import INTERNAL, TRY_AGAIN_LATER
from ....cni.skel import dispatch
from ....plugins import bridge
from ...routed_cni import PASSED_ON, handle_for
from ...routed_cni import error_result as _error


class MeshDelegate:
    """How a mesh node wires pods: set by the agent once its backend is set up."""

    def __init__(self, client, bridge_name: str, prefixlen: int, mtu: int, gateway: Callable[[], str],
                 cni_path: str = "") -> None:
        self.client = client            # podnet.mesh.client.MeshClient of this node's router
        self.cni_path = cni_path        # where the agent installed the plugins (the CNI server sets CNI_PATH)
        self.bridge_name = bridge_name
        self.prefixlen = prefixlen      # the cluster network's: every pod is on it, whichever node it is on
        self.mtu = mtu
        self.gateway = gateway          # the bridge's address (asks the router the first time)

    def rewrite(self, conf: dict) -> dict:
        """What the CNI server hands run(): the request's own fields that the plugin needs."""
        return {"cniVersion": conf.get("cniVersion", "1.0.0"), "name": conf.get("name", "podnet"),
                **{key: conf[key] for key in PASSED_ON if key in conf}}

    def conf_for(self, conf: dict, ip: str, gateway: str) -> dict:
        """The bridge plugin's config: the request's own fields, the bridge, and `ip` for static IPAM."""
        return {**self.rewrite(conf), "type": "bridge", "bridge": self.bridge_name, "isGateway": True,
                "isDefaultGateway": True, "hairpinMode": True, "mtu": self.mtu,
                "ipam": {"type": "static", "addresses": [{"address": f"{ip}/{self.prefixlen}", "gateway": gateway}]}
                if ip else {"type": "static"}}

    def run(self, env: dict, stdin: bytes) -> tuple[int, str]:
        conf = json.loads(stdin)
        version = conf.get("cniVersion", "1.1.0")
        command = env.get("CNI_COMMAND", "")
        handle = handle_for(env.get("CNI_CONTAINERID", ""), env.get("CNI_IFNAME", ""))
        if command == "ADD":
            try:
                gateway = self.gateway()
                held = self.client.lookup(handle)
                ip = held or self.client.allocate(handle, timeout=5.0)
            except Exception as e:  # noqa: BLE001 - the router down, or the ring not ready: the runtime retries
                return _error(version, TRY_AGAIN_LATER, "podnet mesh: no address from the router yet", str(e))
            code, out = self._plugin(env, conf, ip, gateway)
            if code != 0 and not held:
                self._release(handle)
            return code, out
        if command == "DEL":
            ip = self._lookup(handle)
            code, out = self._plugin(env, conf, ip, "")
            if code == 0 and ip:
                try:
                    self.client.release(handle)
                except Exception as e:  # noqa: BLE001 - DEL must succeed when the pod is gone; the router may be down
                    return _error(version, TRY_AGAIN_LATER, f"podnet mesh: could not release {handle}", str(e))
            return code, out
        if command == "CHECK":
            ip = self._lookup(handle)
            if not ip:
                return _error(version, INTERNAL, f"podnet mesh: the router holds no address for {handle}")
            return self._plugin(env, conf, ip, self.gateway())
        if command == "GC":
            return self._gc(conf)
        return self._plugin(env, conf, "", "")

    def _lookup(self, handle: str) -> str:
        try:
            return self.client.lookup(handle) or ""
        except Exception:  # noqa: BLE001 - unknown: the plugin still unwires what is there
            return ""

    def _release(self, handle: str) -> None:
        try:
            self.client.release(handle)
        except Exception:  # noqa: BLE001 - the router reclaims it at the next GC
            pass

    def _gc(self, conf: dict) -> tuple[int, str]:
        valid = {handle_for(a.get("containerID", ""), a.get("ifname", ""))
                 for a in conf.get("cni.dev/valid-attachments") or [] if isinstance(a, dict)}
        for handle in self.client.allocations():
            if handle.startswith("podnet.") and handle not in valid:
                self._release(handle)
        return 0, ""

    def _plugin(self, env: dict, conf: dict, ip: str, gateway: str) -> tuple[int, str]:
        return dispatch(bridge.PLUGIN, env, json.dumps(self.conf_for(conf, ip, gateway)).encode())
