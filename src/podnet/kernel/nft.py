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


def fingerprint(family: str, table: str, skip_elements: tuple[str, ...] = ()) -> str | None:
    """The table's structure as the kernel holds it, in a canonical text that two listings of
    an unchanged table share: handles, counter values and the elements of dynamic sets (and of
    the sets named in `skip_elements`) are left out. None when the table does not exist.

    An owner compares this with the fingerprint taken right after its own apply, to find rules,
    chains or elements changed behind its back."""
    return fingerprint_of(list_ruleset(["table", family, table]), skip_elements)


def fingerprint_of(items: list[dict], skip_elements: tuple[str, ...] = ()) -> str | None:
    """fingerprint() of a table listing already in hand."""
    out = []
    for item in items:
        if "metainfo" in item:
            continue
        kind, body = next(iter(item.items()))
        body = _without_counts(body)
        if kind == "set":
            if "dynamic" in body.get("flags", []) or "stmt" in body or body.get("name") in skip_elements:
                body.pop("elem", None)
            elif "elem" in body:
                body["elem"] = sorted(body["elem"], key=lambda e: json.dumps(e))
        out.append({kind: body})
    return json.dumps(out) if out else None


def set_elements(items: list[dict], name: str) -> list:
    """The elements of set `name` in a table listing."""
    for item in items:
        body = item.get("set")
        if body and body.get("name") == name:
            return list(body.get("elem") or [])
    return []


def _without_counts(obj: object) -> object:
    if isinstance(obj, dict):
        return {k: _without_counts(v) for k, v in obj.items() if k not in ("handle", "packets", "bytes")}
    if isinstance(obj, list):
        return [_without_counts(v) for v in obj]
    return obj
