"""nftables transactions through `nft -j -f -` (libnftables JSON), one atomic batch per call."""

from __future__ import annotations

import os

from ..cni import fastjson as json
from . import spawn


def _nft() -> str:
    for d in ("/usr/sbin", "/sbin", "/usr/bin", "/bin"):
        if os.access(f"{d}/nft", os.X_OK):
            return f"{d}/nft"
    return "nft"


def _run(argv: list[str], stdin: bytes = b"") -> spawn.Completed:
    return spawn.run([_nft(), *argv], stdin)


class NftError(RuntimeError):
    pass


def run(commands: list[dict]) -> None:
    """Apply a list of nft JSON commands ({"add": {...}}, {"delete": {...}} ...) atomically."""
    if not commands:
        return
    doc = json.dumps({"nftables": commands})
    proc = _run(["-j", "-f", "-"], doc.encode())
    if proc.returncode != 0:
        raise NftError(f"nft failed: {proc.stderr.decode().strip()}")


def list_ruleset(what: list[str]) -> list[dict]:
    """`nft -j list ...`; an absent table or chain gives []."""
    proc = _run(["-j", "list", *what])
    if proc.returncode != 0:
        err = proc.stderr.decode()
        if "No such file or directory" in err or "does not exist" in err:
            return []
        raise NftError(f"nft list {' '.join(what)} failed: {err.strip()}")
    return json.loads(proc.stdout or b'{"nftables": []}').get("nftables", [])
