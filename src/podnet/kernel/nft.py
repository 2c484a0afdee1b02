"""nftables transactions in libnftables' JSON, one atomic batch per call.

By default through the `nft` program (`nft -j -f -`): plugin executables live for one command
and must not pay for `ctypes`. A long-running process calls `use_library()` once and from then
on runs every command in-process through libnftables (about 0.1 ms per transaction instead of
3 ms for starting `nft`), the way python3-nftables does it.
"""

from __future__ import annotations

import os

from .. import fastjson as json
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


class _Library:
    """libnftables in this process: one context, JSON in and out, one caller at a time."""

    OUTPUT_JSON = 1 << 4  # NFT_CTX_OUTPUT_JSON: also makes the library parse JSON input

    def __init__(self) -> None:
        import ctypes
        import threading

        lib = ctypes.CDLL("libnftables.so.1")
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        for name in ("nft_ctx_buffer_output", "nft_ctx_buffer_error", "nft_ctx_output_get_flags"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
        lib.nft_ctx_output_get_flags.restype = ctypes.c_uint
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        for name in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
            getattr(lib, name).restype = ctypes.c_char_p
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        self.lib = lib
        self.ctx = lib.nft_ctx_new(0)
        if not self.ctx:
            raise OSError("libnftables: cannot create a context")
        lib.nft_ctx_output_set_flags(self.ctx, lib.nft_ctx_output_get_flags(self.ctx) | self.OUTPUT_JSON)
        lib.nft_ctx_buffer_output(self.ctx)
        lib.nft_ctx_buffer_error(self.ctx)
        self.lock = threading.Lock()

    def run(self, text: bytes, note: bool = False) -> tuple[int, bytes, bytes]:
        """Run commands; with `note`, a successful run records the generation it left (under
        the same lock, so no command of this process slips in between)."""
        with self.lock:
            rc = self.lib.nft_run_cmd_from_buffer(self.ctx, text)
            out = (rc, self.lib.nft_ctx_get_output_buffer(self.ctx) or b"", self.lib.nft_ctx_get_error_buffer(self.ctx) or b"")
            if note and rc == 0:
                note_own_change()
            return out


_library: _Library | None = None


def use_library() -> bool:
    """Run every later command in-process through libnftables; False when it is not there
    (Debian: libnftables1), and commands keep going through `nft`. Only for a process that
    stays in one network namespace: the library keeps its netlink socket in the namespace of
    the thread that first uses it."""
    global _library
    if _library is None:
        try:
            _library = _Library()
        except OSError:
            return False
    return True


def run(commands: list[dict]) -> None:
    """Apply a list of nft JSON commands ({"add": {...}}, {"delete": {...}} ...) atomically."""
    if not commands:
        return
    doc = json.dumps({"nftables": commands}).encode()
    if _library is not None:
        rc, _, err = _library.run(doc, note=True)
        if rc != 0:
            raise NftError(f"nft failed: {err.decode(errors='replace').strip()}")
        return
    proc = _run(["-j", "-f", "-"], doc)
    if proc.returncode != 0:
        raise NftError(f"nft failed: {proc.stderr.decode().strip()}")


def run_text(commands: list[str]) -> None:
    """Apply nft commands in nft's own syntax, one per line, atomically (for what JSON cannot
    say on nft 1.0.6, such as a map declared with `typeof ... numgen`)."""
    if not commands:
        return
    text = ("\n".join(commands) + "\n").encode()
    if _library is not None:  # not JSON: the library parses it as nft syntax
        rc, _, err = _library.run(text, note=True)
        if rc != 0:
            raise NftError(f"nft failed: {err.decode(errors='replace').strip()}")
        return
    proc = _run(["-f", "-"], text)
    if proc.returncode != 0:
        raise NftError(f"nft failed: {proc.stderr.decode().strip()}")


def list_ruleset(what: list[str]) -> list[dict]:
    """`nft -j list ...`; an absent table or chain gives []."""
    if _library is not None:
        rc, out, err = _library.run(" ".join(["list", *what]).encode())
    else:
        proc = _run(["-j", "list", *what])
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    if rc != 0:
        text = err.decode(errors="replace")
        if "No such file or directory" in text or "does not exist" in text:
            return []
        raise NftError(f"nft list {' '.join(what)} failed: {text.strip()}")
    return json.loads(out or b'{"nftables": []}').get("nftables", [])


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


# -- the ruleset generation: has anyone else changed nftables since our own last change? -------
_NETLINK_NETFILTER = 12
_NFT_MSG_GETGEN = (10 << 8) | 16   # NFNL_SUBSYS_NFTABLES, NFT_MSG_GETGEN
_NFTA_GEN_ID = 1
_own_generation: int | None = None


def generation() -> int:
    """The kernel's nftables ruleset generation in this network namespace: it changes with
    every committed transaction, anyone's. One netlink round trip (NFT_MSG_GETGEN)."""
    import socket
    import struct

    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_NETFILTER)
    try:
        s.bind((0, 0))
        body = struct.pack("=BBH", socket.AF_UNSPEC, 0, 0)  # nfgenmsg: family, version, res_id
        s.send(struct.pack("=IHHII", 16 + len(body), _NFT_MSG_GETGEN, 1, 1, 0) + body)  # NLM_F_REQUEST
        data = s.recv(65536)
    finally:
        s.close()
    length, mtype = struct.unpack_from("=IH", data)
    if mtype == 2:  # NLMSG_ERROR
        raise NftError(f"nft: cannot read the ruleset generation (error {struct.unpack_from('=i', data, 16)[0]})")
    offset = 16 + 4
    while offset + 4 <= length:
        alen, atype = struct.unpack_from("=HH", data, offset)
        if atype & 0x3FFF == _NFTA_GEN_ID:
            return struct.unpack_from("!I", data, offset + 4)[0]
        offset += (alen + 3) & ~3
    raise NftError("nft: no generation in the kernel's answer")


def note_own_change() -> None:
    """Remember the generation right after a change of ours (run() does it in library mode)."""
    global _own_generation
    try:
        _own_generation = generation()
    except (OSError, NftError):
        _own_generation = None


def changed_by_others() -> bool:
    """True when the ruleset changed since our own last change (or we cannot tell): then the
    tables we own are worth comparing with what we put there. A change made by someone else
    right between one of ours and our reading of the generation goes unnoticed until the next."""
    try:
        return _own_generation is None or generation() != _own_generation
    except (OSError, NftError):
        return True
