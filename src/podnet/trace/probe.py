"""`podnet trace --probe`: confirm a walk with one real packet, watched by the kernel's own
nftables tracing (nft monitor trace), namespace by namespace.

    rules       per namespace on the path, one temporary table `inet podnet_probe_<random>`
                (and `bridge podnet_probe_<random>` where the walk crosses a bridge at L2 only,
                e.g. the underlay) whose prerouting and output chains (priority -400) set
                `meta nftrace` for exactly the probe's tuples there (inner, before and after
                DNAT; the VXLAN outer header where the namespace sees it), plus empty chains at
                the other hooks so every hook the traced packet passes reports itself.
                The kernel clears the mark when a packet changes namespace or is encapsulated:
                that is why it is set again in each namespace.
    monitors    `nft monitor trace` in each of those namespaces, started before the packet
    send        one tcp connect() (1 s), one udp datagram or one ping, from the source's namespace
    correlate   each hop: confirmed (its namespace saw the packet at the hop's hook, on the hop's
                devices), contradicted (dropped where the walk says it passes, or passed where the
                walk says it is dropped), unobserved (nothing seen)

Whatever it adds is removed in a `finally`, also on SIGINT/SIGTERM; nothing else is changed.
"""

from __future__ import annotations

import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from .model import Hop, Packet, Trace

HOOKS = ("prerouting", "input", "forward", "output", "postrouting")
PRIORITY = -400
SETTLE = 0.5                     # seconds to wait for the last events after the packet
START = 0.3                      # seconds for the monitors to subscribe before the packet


# -- the rules ----------------------------------------------------------------------------------
def _match(p: Packet, outer: bool = False) -> str:
    """The nft match for one tuple."""
    if outer:
        return f"udp dport {p.dport} ip saddr {p.src} ip daddr {p.dst}"
    m = f"ip saddr {p.src} ip daddr {p.dst}"
    if p.proto == "icmp":
        return m + " icmp type echo-request"
    if not p.sport and not p.dport:
        return m + f" meta l4proto {p.proto}"
    if p.sport:
        m += f" {p.proto} sport {p.sport}"
    if p.dport:
        m += f" {p.proto} dport {p.dport}"
    if p.proto == "tcp":
        m += " tcp flags & (syn | ack) == syn"   # the connection attempt only, not the rest of the flow
    return m


def _tuples(h: Hop) -> list[str]:
    """The matches for what hop h's namespace sees of the probe: the outer header while the packet
    travels encapsulated (and the inner one too where it is put in or taken out)."""
    if h.outer is None:
        return [_match(h.packet)]
    inner = [_match(h.packet)] if h.stage in ("encapsulate", "decapsulate") else []
    return inner + [_match(h.outer, outer=True)]


def matches(trace: Trace) -> dict[str, list[str]]:
    """Per namespace on the path (in path order), the nft matches of the probe's tuples there:
    those of its hops and of the packet arriving from the hop before (pre-DNAT)."""
    out: dict[str, list[str]] = {}
    prev: Hop | None = None
    for h in trace.hops:
        ms = out.setdefault(h.netns, [])
        arriving = _tuples(prev) if prev is not None and prev.netns != h.netns else []
        for c in arriving + _tuples(h):
            if c not in ms:
                ms.append(c)
        prev = h
    return out


def l2_namespaces(trace: Trace) -> set[str]:
    """Namespaces where the walk has an L2-only hop and no L3 hop: netfilter's inet hooks do not
    see a bridged frame there, a bridge table does."""
    l3 = {h.netns for h in trace.hops if h.hook}
    return {h.netns for h in trace.hops if not h.hook and h.netns not in l3}


def ruleset(table: str, ms: list[str], family: str = "inet") -> str:
    """One nft script adding the probe table (one transaction)."""
    lines = [f"table {family} {table} {{"]
    hooks = HOOKS if family == "inet" else ("prerouting", "forward", "output", "postrouting")
    for hook in hooks:
        lines.append(f"\tchain {hook} {{")
        lines.append(f"\t\ttype filter hook {hook} priority {PRIORITY}; policy accept;")
        if hook in ("prerouting", "output"):
            for m in ms:
                lines.append(f"\t\t{m} meta nftrace set 1")
        lines.append("\t}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def table_name() -> str:
    return f"podnet_probe_{secrets.token_hex(4)}"


# -- the events -------------------------------------------------------------------------------
_EVENT = re.compile(r"^trace id (\S+) (\S+) (\S+) (\S+) (.*)$")


@dataclass
class Event:
    trace_id: str
    family: str
    table: str
    chain: str
    what: str                    # "packet: ...", "rule ... (verdict x)", "verdict x", "policy x"
    iif: str | None = None
    oif: str | None = None

    @property
    def verdict(self) -> str | None:
        m = re.search(r"\(verdict (\w+)", self.what) or re.match(r"(?:verdict|policy) (\w+)", self.what)
        return m.group(1) if m else None

    def short(self) -> str:
        what = self.what
        if what.startswith("packet:"):
            keep = re.findall(r'(?:iif|oif) "[^"]*"|ip (?:saddr|daddr) \S+|(?:tcp|udp) (?:sport|dport) \d+|'
                              r'icmp type \S+', what)
            what = "packet: " + " ".join(keep)
        return f"{self.family} {self.table} {self.chain} {what}".strip()


def parse(lines) -> list[Event]:
    events = []
    for line in lines:
        m = _EVENT.match(line.strip())
        if not m:
            continue
        e = Event(*m.groups())
        if e.what.startswith("packet:"):
            i = re.search(r'\biif "([^"]*)"', e.what)
            o = re.search(r'\boif "([^"]*)"', e.what)
            e.iif, e.oif = (i.group(1) if i else None), (o.group(1) if o else None)
        events.append(e)
    return events


@dataclass
class Seen:
    """What one namespace reported: per hook of the probe's own chains, the devices."""
    hooks: dict[str, list[tuple[str | None, str | None]]] = field(default_factory=dict)
    drops: list[Event] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    table: str = ""


def seen(events: list[Event], table: str) -> Seen:
    s = Seen(events=events, table=table)
    for e in events:
        if e.table == table and e.what.startswith("packet:"):
            s.hooks.setdefault(e.chain, []).append((e.iif, e.oif))
        if e.verdict in ("drop", "reject"):
            s.drops.append(e)
    return s


def _at_hook(s: Seen, h: Hop) -> list[Event]:
    """The probe's packet events that show hop h: at its hook and on its devices."""
    out = []
    for e in s.events:
        if not e.what.startswith("packet:") or e.family == "bridge" and h.hook:
            continue
        if h.hook:
            if e.table != s.table:
                continue
            if e.chain != h.hook:
                continue
            if h.in_ and h.hook in ("prerouting", "input", "forward") and e.iif not in (h.in_, None):
                continue
            if h.out and h.hook in ("output", "postrouting", "forward") and e.oif not in (h.out, None):
                continue
            out.append(e)
        else:  # L2: any event on one of the hop's devices
            devs = {h.in_, h.out} - {None}
            if not devs or e.iif in devs or e.oif in devs:
                out.append(e)
    return out


def correlate(trace: Trace, by_ns: dict[str, Seen]) -> dict:
    """Set each hop's `probe`; return the counts."""
    counts = {"confirmed": 0, "contradicted": 0, "unobserved": 0}
    for h in trace.hops:
        s = by_ns.get(h.netns) or Seen()
        hits = _at_hook(s, h)
        drops = s.drops
        if h.result == "drop":
            if drops:
                status, shown = "confirmed", drops
            elif s.events:
                status, shown = "contradicted", hits or s.events[:2]
            else:
                status, shown = "unobserved", []
        elif drops and not hits:
            status, shown = "contradicted", drops
        elif hits:
            status, shown = "confirmed", hits
        else:
            status, shown = "unobserved", []
        lines = list(dict.fromkeys(e.short() for e in shown))
        h.probe = {"status": status, "events": lines[:4]}
        counts[status] += 1
    return counts


def summarize(trace: Trace, counts: dict, sent: str) -> None:
    trace.probe = {**counts, "sent": sent}
    trace.notes.append(f"probe: {sent}: {counts['confirmed']} hops confirmed, {counts['contradicted']} contradicted, "
                       f"{counts['unobserved']} unobserved")
    bad = [h.index for h in trace.hops if (h.probe or {}).get("status") == "contradicted"]
    if bad:
        trace.reason += f" (the probe contradicts this at hop{'s' if len(bad) > 1 else ''} " \
                        f"{', '.join(map(str, bad))})"
    elif trace.verdict == "DELIVERED" and trace.hops and (trace.hops[-1].probe or {}).get("status") != "confirmed":
        trace.reason += " (the probe packet was not seen arriving at the destination)"


# -- running it ------------------------------------------------------------------------------
def _nft(ns: str, *args: str, script: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, "nft", *args], input=script, capture_output=True, text=True,
                          check=False, timeout=20)


def _send_argv(ns: str, pkt: Packet) -> list[str]:
    """One packet from `ns`: an echo request, a tcp connect() (1 s) or one udp datagram, from the
    walked source address (and --sport if given), so that it is the tuple the walk followed."""
    if pkt.proto == "icmp":   # one echo request from a raw socket (what `ping -c1 -W1` sends; no ping needed)
        code = ("import os, socket, struct\n"
                "def csum(b):\n"
                "    t = sum(struct.unpack('!%dH' % (len(b) // 2), b))\n"
                "    t = (t >> 16) + (t & 0xffff)\n"
                "    return ~(t + (t >> 16)) & 0xffff\n"
                "body = struct.pack('!HH', os.getpid() & 0xffff, 1) + b'podnet-probe'\n"
                "msg = struct.pack('!BBH', 8, 0, csum(struct.pack('!BBH', 8, 0, 0) + body)) + body\n"
                "s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)\n"
                "s.settimeout(1)\n"
                f"s.bind(({pkt.src!r}, 0))\n"
                f"s.sendto(msg, ({pkt.dst!r}, 0))\n"
                "try:\n    s.recv(1500)\nexcept OSError:\n    pass\n")
        return ["ip", "netns", "exec", ns, sys.executable, "-c", code]
    kind = "SOCK_STREAM" if pkt.proto == "tcp" else "SOCK_DGRAM"
    code = (f"import socket\ns = socket.socket(socket.AF_INET, socket.{kind})\n"
            "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            + f"s.bind(({pkt.src!r}, {pkt.sport or 0}))\n"      # the walked source address, and port if given
            + "s.settimeout(1)\ntry:\n"
            + f"    s.connect(({pkt.dst!r}, {pkt.dport or 0}))\n"
            + ("    s.send(b'podnet-probe')\n" if pkt.proto == "udp" else "")
            + "except OSError:\n    pass\n")
    return ["ip", "netns", "exec", ns, sys.executable, "-c", code]


def sent_packet(trace: Trace) -> Packet:
    """The packet as the source sends it: before any DNAT."""
    first = trace.hops[0]
    if first.stage == "dnat":
        return first.packet.copy(dst=trace.dst.ip, dport=trace.dst.port)
    return first.packet.copy()


class ProbeError(RuntimeError):
    """The probe could not be set up (e.g. nft refused the table); nothing is left behind."""


class _Interrupted(KeyboardInterrupt):
    pass


def probe(trace: Trace) -> Trace:
    """Send one packet along the walked path and mark every hop. Adds temporary tables in the
    path's namespaces and always removes them (also on SIGINT/SIGTERM)."""
    if not trace.hops:
        return trace
    pkt, first = sent_packet(trace), trace.hops[0]
    table = table_name()
    per_ns = matches(trace)
    l2 = l2_namespaces(trace)
    added: list[tuple[str, str]] = []        # (ns, family), recorded before the attempt
    monitors: dict[str, subprocess.Popen] = {}
    sender: subprocess.Popen | None = None
    lines: dict[str, list[str]] = {}
    readers: list[threading.Thread] = []

    def _raise(signum, frame):
        raise _Interrupted()

    old = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, _raise)
    try:
        for ns, ms in per_ns.items():
            for family in ("inet",) + (("bridge",) if ns in l2 else ()):
                added.append((ns, family))
                r = _nft(ns, "-f", "-", script=ruleset(table, ms, family))
                if r.returncode:
                    raise ProbeError(f"adding the probe table in {ns}: {r.stderr.strip()}")
        for ns in per_ns:
            p = subprocess.Popen(["ip", "netns", "exec", ns, "nft", "monitor", "trace"], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True)
            monitors[ns] = p
            buf = lines.setdefault(ns, [])
            t = threading.Thread(target=lambda p=p, buf=buf: [buf.append(line) for line in p.stdout], daemon=True)
            t.start()
            readers.append(t)
        time.sleep(START)
        sender = subprocess.Popen(_send_argv(first.netns, pkt), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            sender.wait(timeout=5)
        except subprocess.TimeoutExpired:
            sender.kill()
            sender.wait()
        time.sleep(SETTLE)
    finally:
        if old:
            for sig in old:
                signal.signal(sig, signal.SIG_IGN)   # let the cleanup finish
        try:
            for p in ([sender] if sender is not None else []) + list(monitors.values()):
                if p.poll() is None:
                    p.terminate()
            for p in ([sender] if sender is not None else []) + list(monitors.values()):
                try:
                    p.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            for ns, family in added:
                _nft(ns, "delete", "table", family, table)
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
    for t in readers:
        t.join(timeout=1)
    by_ns = {ns: seen(parse(lines.get(ns, [])), table) for ns in per_ns}
    counts = correlate(trace, by_ns)
    summarize(trace, counts, f"one {pkt.proto} packet {pkt.flow()} from {first.place}")
    return trace
