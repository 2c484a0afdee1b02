"""Shared by the benches that drive a lab as a user does: `podnet` commands and `podnet apply`
of a List (not a bench itself)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

PODNET = [sys.executable, "-m", "podnet.cli.main"]


def podnet(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([*PODNET, *args], capture_output=True, text=True, timeout=timeout)


def apply(directory: str, objs: list[dict]) -> None:
    """`podnet apply -f` of the objects as one List (a file in `directory`, removed after)."""
    path = os.path.join(directory, f"objs-{uuid.uuid4().hex[:6]}.json")
    with open(path, "w") as f:
        json.dump({"apiVersion": "v1", "kind": "List", "items": objs}, f)
    r = podnet("apply", "-f", path)
    os.unlink(path)
    if r.returncode:
        raise RuntimeError(f"podnet apply: {r.stderr.strip()[-300:]}")
