"""The trace's only window on the kernel: a thin reader of `ip -j`, `bridge -j`, `nft -j` and `ss`
in a named network namespace. It reads and never writes; everything it runs is a plain command
(shown to the user as the hop's evidence), so a walk can be replayed on canned output: give
`Kernel` another `run` (tests/trace) and nothing else changes.

Each reading is cached for the walk (one `ip -j link` per namespace, however often the walk
looks at its devices)."""

from __future__ import annotations

import json
import shlex
import subprocess
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

Runner = Callable[[list[str]], tuple[int, str, str]]


def run_command(argv: list[str]) -> tuple[int, str, str]:
    try:
        p = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=20)
    except FileNotFoundError as e:
        return 127, "", str(e)
    except subprocess.TimeoutExpired:
        return 124, "", f"{argv[0]}: timed out"
    return p.returncode, p.stdout, p.stderr


class KernelError(RuntimeError):
    """A command failed: `message` is the kernel's (or the tool's) own words."""

    def __init__(self, cmd: str, message: str) -> None:
        super().__init__(f"{cmd}: {message}")
        self.cmd, self.message = cmd, message


@dataclass
class Reading:
    cmd: str                     # the command line, as evidence
    data: Any


def cmdline(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


class Kernel:
    """Readers of one machine's namespaces. Every method takes the namespace's name (as `ip
    netns` knows it) first and returns a Reading, or raises KernelError."""

    def __init__(self, run: Runner = run_command) -> None:
        self.run = run
        self._cache: dict[str, Any] = {}

    # -- plumbing ----------------------------------------------------------------------------
    def _read(self, argv: list[str], parse: Callable[[str], Any] = json.loads, cache: bool = True) -> Reading:
        cmd = cmdline(argv)
        if cache and cmd in self._cache:
            return self._cache[cmd]
        rc, out, err = self.run(argv)
        if rc != 0:
            message = " ".join((err or out).strip().splitlines()[:2]) or f"exit status {rc}"
            raise KernelError(cmd, message)
        try:
            data = [] if parse is json.loads and not out.strip() else parse(out)
        except ValueError as e:
            raise KernelError(cmd, f"unreadable output: {e}") from None
        reading = Reading(cmd, data)
        if cache:
            self._cache[cmd] = reading
        return reading

    # -- routing -----------------------------------------------------------------------------
    def route_get(self, netns: str, dst: str, src: str | None = None, iif: str | None = None,
                  proto: str | None = None, sport: int | None = None, dport: int | None = None,
                  fibmatch: bool = False) -> Reading:
        """`ip route get` as the kernel answers it for this packet: a list of one route
        (dev, gateway, type local...). With `fibmatch`, the table entry that matched instead."""
        argv = ["ip", "-n", netns, "-j", "route", "get"] + (["fibmatch"] if fibmatch else []) + [dst]
        if src:
            argv += ["from", src]
        if iif:
            argv += ["iif", iif]
        if proto in ("tcp", "udp"):
            argv += ["ipproto", proto]
            if sport:
                argv += ["sport", str(sport)]
            if dport:
                argv += ["dport", str(dport)]
        elif proto == "icmp":
            argv += ["ipproto", "icmp"]
        return self._read(argv)

    # -- links and addresses -----------------------------------------------------------------
    def links(self, netns: str) -> Reading:
        return self._read(["ip", "-n", netns, "-d", "-j", "link", "show"])

    def addresses(self, netns: str) -> Reading:
        return self._read(["ip", "-n", netns, "-j", "address", "show"])

    def netns_ids(self, netns: str) -> Reading:
        """The ids this namespace gives the other named namespaces (a veth peer's link_netnsid)."""
        return self._read(["ip", "-n", netns, "-j", "netns", "list-id"])

    # -- neighbours and forwarding databases -------------------------------------------------
    def neighbours(self, netns: str, dev: str) -> Reading:
        return self._read(["ip", "-n", netns, "-j", "neigh", "show", "dev", dev])

    def fdb(self, netns: str, dev: str | None = None, bridge: str | None = None) -> Reading:
        argv = ["bridge", "-n", netns, "-j", "fdb", "show"]
        argv += ["br", bridge] if bridge else ["dev", dev or ""]
        return self._read(argv)

    # -- nftables ----------------------------------------------------------------------------
    def nft(self, netns: str, *what: str) -> Reading | None:
        """`nft -j list WHAT...` (a map, a set, a table) as its list of objects without the
        metainfo; None when it does not exist (no such table: that part is not running here)."""
        if what[0] in ("map", "set", "table", "chain") and len(what) >= 3 and (what[1], what[2]) not in self.tables(netns):
            return None
        argv = ["ip", "netns", "exec", netns, "nft", "-j", "list", *what]
        try:
            reading = self._read(argv)
        except KernelError as e:
            if "No such file or directory" in e.message or "does not exist" in e.message:
                return None
            raise
        objects = [o for o in (reading.data or {}).get("nftables", []) if "metainfo" not in o] \
            if isinstance(reading.data, dict) else []
        return Reading(reading.cmd, objects)

    def tables(self, netns: str) -> set[tuple[str, str]]:
        """(family, name) of the namespace's nftables tables: one read, then a look at a table
        that is not there costs nothing."""
        try:
            reading = self._read(["ip", "netns", "exec", netns, "nft", "-j", "list", "tables"])
        except KernelError:
            return set()
        data = reading.data if isinstance(reading.data, dict) else {}
        return {(o["table"].get("family"), o["table"].get("name")) for o in data.get("nftables", []) if "table" in o}

    # -- sockets and sysctls -----------------------------------------------------------------
    def listening(self, netns: str, proto: str) -> Reading:
        """Listening TCP or bound UDP sockets: list of (address, port, process) from `ss`."""
        flags = {"tcp": "-Hltnp", "udp": "-Hlunp"}[proto]
        return self._read(["ip", "netns", "exec", netns, "ss", flags], parse=parse_ss)

    def sysctl(self, netns: str, key: str) -> str | None:
        """A sysctl of the namespace (`net/ipv4/conf/eth0/proxy_arp`), None if absent."""
        try:
            return self._read(["ip", "netns", "exec", netns, "cat", f"/proc/sys/{key}"], parse=str.strip).data
        except KernelError:
            return None


def parse_ss(text: str) -> list[tuple[str, int, str]]:
    """`ss -H -l[tu]np` lines -> (local address, port, process); addresses without brackets or
    scope ("*", "0.0.0.0", "::", "10.244.2.2")."""
    out = []
    for line in text.splitlines():
        cols = line.split()
        if len(cols) < 5:
            continue
        local = cols[3]
        addr, _, port = local.rpartition(":")
        if not port.isdigit():
            continue
        addr = addr.strip("[]").split("%", 1)[0]
        process = ""
        rest = " ".join(cols[5:])
        if 'users:(("' in rest:
            name = rest.split('users:(("', 1)[1].split('"', 1)[0]
            pid = rest.split("pid=", 1)[1].split(",", 1)[0] if "pid=" in rest else ""
            process = f"{name} (pid {pid})" if pid else name
        out.append((addr, int(port), process))
    return out
