"""The agent's CNI server: the `podnet` plugin forwards (env, stdin) here over a Unix socket.

The agent turns the network's `podnet` config into a bridge + host-local config for this
node's subnet and runs podnet's bridge plugin in-process, through the same dispatcher the
executables use: same results, same errors, without an interpreter start per pod.

Wire format: one JSON object per connection each way.
    request  {"env": {"CNI_COMMAND": ..., ...}, "stdin": "<network config JSON>"}
    response {"code": 0, "stdout": "<what the plugin would print>"}
"""

from __future__ import annotations

import json
import os
import socketserver
import threading

from ..cni.skel import dispatch
from ..plugins import bridge

MAX_REQUEST = 1 << 20


class DelegateConfig:
    """How this node wires pods: set by the agent once it holds a subnet lease."""

    def __init__(self, subnet: str, mtu: int, ipam_dir: str, cni_path: str, bridge_name: str = "cni0") -> None:
        self.subnet = subnet
        self.mtu = mtu
        self.ipam_dir = ipam_dir
        self.cni_path = cni_path
        self.bridge_name = bridge_name

    def rewrite(self, conf: dict) -> dict:
        out = {
            "cniVersion": conf.get("cniVersion", "1.0.0"), "name": conf.get("name", "podnet"), "type": "bridge",
            "bridge": self.bridge_name, "isGateway": True, "isDefaultGateway": True, "hairpinMode": True,
            "mtu": self.mtu,
            "ipam": {"type": "host-local", "dataDir": self.ipam_dir, "ranges": [[{"subnet": self.subnet}]]},
        }
        for key in ("prevResult", "runtimeConfig", "args", "cni.dev/valid-attachments"):
            if key in conf:
                out[key] = conf[key]
        return out


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        raw = self.rfile.read(MAX_REQUEST)
        if not raw.strip():
            return  # a liveness probe: connected, sent nothing
        server: CNIServer = self.server  # type: ignore[assignment]
        try:
            req = json.loads(raw)
            env = {k: str(v) for k, v in req["env"].items()}
            conf = json.loads(req["stdin"])
            delegate = server.delegate
            if delegate is None:
                code, out = 1, json.dumps({"cniVersion": conf.get("cniVersion", "1.0.0"), "code": 11,
                                           "msg": "podnet agent has no subnet lease yet"})
            else:
                env["CNI_PATH"] = delegate.cni_path
                stdin = json.dumps(delegate.rewrite(conf)).encode()
                code, out = dispatch(bridge.PLUGIN, env, stdin)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            code, out = 1, json.dumps({"cniVersion": "1.1.0", "code": 6, "msg": f"bad request to the podnet agent: {e}"})
        self.wfile.write(json.dumps({"code": code, "stdout": out}).encode())


class CNIServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str) -> None:
        if os.path.exists(path):
            os.unlink(path)  # a previous agent's socket; we own this path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.delegate: DelegateConfig | None = None
        super().__init__(path, _Handler)
        os.chmod(path, 0o600)

    def start(self) -> threading.Thread:
        t = threading.Thread(target=self.serve_forever, name="cni-server", daemon=True)
        t.start()
        return t
