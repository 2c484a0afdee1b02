"""The router's control socket, from the agent's mesh backend and `podnet mesh`."""

from __future__ import annotations

import json
import socket


class MeshError(RuntimeError):
    pass


class MeshClient:
    def __init__(self, path: str, timeout: float = 5.0) -> None:
        self.path = path
        self.timeout = timeout

    def call(self, op: str, timeout: float | None = None, **args) -> dict:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(timeout or self.timeout)
            s.connect(self.path)
            s.sendall((json.dumps({"op": op, **args}) + "\n").encode())
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        finally:
            s.close()
        try:
            reply = json.loads(data)
        except ValueError:
            raise MeshError(f"the router at {self.path} gave no answer to {op}") from None
        if not reply.get("ok"):
            raise MeshError(reply.get("error") or f"{op} failed")
        return reply

    def status(self) -> dict:
        return self.call("status")["status"]

    def allocate(self, handle: str, timeout: float = 10.0) -> str:
        return self.call("allocate", timeout=timeout + 2, handle=handle, **{"wait": timeout})["ip"]

    def release(self, handle: str) -> bool:
        return self.call("release", handle=handle)["released"]

    def lookup(self, handle: str) -> str | None:
        return self.call("lookup", handle=handle)["ip"]

    def allocations(self) -> dict[str, str]:
        return self.call("allocations")["allocations"]

    def rmpeer(self, peer: str, force: bool = False) -> int:
        return self.call("rmpeer", peer=peer, force=force)["reclaimed"]
