"""The `podnet` plugin: forward the CNI request to the node agent and print its answer.

It imports nothing heavy (no netlink, no ipaddress): the agent, already running, does the work.
The network config names the agent's socket: {"type": "podnet", "socket": "/run/podnet/cni.sock"}.
"""

from __future__ import annotations

import os
import sys

import _socket

from .. import fastjson as json
from ..cni.version import CURRENT, SUPPORTED

DEFAULT_SOCKET = "/run/podnet/cni.sock"
ENV = ("CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH")


def _error(version: str, code: int, msg: str, details: str = "") -> str:
    out = {"cniVersion": version, "code": code, "msg": msg}
    if details:
        out["details"] = details
    return json.dumps(out, indent=4)


def forward(socket_path: str, env: dict, stdin: bytes) -> tuple[int, str]:
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        s.settimeout(120)
        s.connect(socket_path)
        s.sendall(json.dumps({"env": env, "stdin": stdin.decode()}).encode())
        s.shutdown(_socket.SHUT_WR)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        s.close()
    if not chunks:
        raise ConnectionError("the agent closed the connection without a reply")
    reply = json.loads(b"".join(chunks))
    return int(reply["code"]), str(reply["stdout"])


def run(environ: dict, stdin: bytes) -> tuple[int, str]:
    command = environ.get("CNI_COMMAND", "")
    if command == "VERSION":
        return 0, json.dumps({"cniVersion": CURRENT, "supportedVersions": list(SUPPORTED)})
    version = CURRENT
    try:
        conf = json.loads(stdin)
        if isinstance(conf, dict) and isinstance(conf.get("cniVersion"), str) and conf["cniVersion"] in SUPPORTED:
            version = conf["cniVersion"]
    except ValueError as e:  # UnicodeDecodeError too
        return 1, _error(version, 6, f"error unmarshall network config: {e}")
    if not isinstance(conf, dict):
        return 1, _error(version, 6, "error unmarshall network config: not a JSON object")
    path = conf.get("socket") or DEFAULT_SOCKET
    if not isinstance(path, str):
        return 1, _error(version, 7, "socket: must be the path of the agent's CNI socket")
    env = {k: environ.get(k, "") for k in ENV}
    try:
        return forward(path, env, stdin)
    except OSError as e:
        code = 50 if command == "STATUS" else 11
        return 1, _error(version, code, "podnet agent is not reachable", f"{path}: {e}")
    except (ValueError, KeyError, TypeError) as e:
        return 1, _error(version, 999, "podnet agent sent a malformed reply", f"{path}: {e}")


def main() -> None:
    if not os.environ.get("CNI_COMMAND"):
        print(f"CNI podnet plugin: forwards to the node agent\nCNI protocol versions supported: {', '.join(SUPPORTED)}",
              file=sys.stderr)
        sys.exit(0)
    stdin = b"" if os.environ.get("CNI_COMMAND") == "VERSION" else sys.stdin.buffer.read()
    try:
        code, out = run(dict(os.environ), stdin)
    except Exception as e:  # noqa: BLE001 - the runtime must get the spec's error JSON, never a traceback
        code, out = 1, _error(CURRENT, 999, str(e) or e.__class__.__name__)
    if out:
        sys.stdout.write(out)
        sys.stdout.flush()
    sys.exit(code)


if __name__ == "__main__":
    main()
