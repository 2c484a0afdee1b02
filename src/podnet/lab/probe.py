"""Reachability between pods, tested with real packets from inside their namespaces."""

from __future__ import annotations

import itertools
import subprocess
from concurrent.futures import ThreadPoolExecutor


def ping(src_netns: str, dst_ip: str, timeout: int = 2) -> bool:
    r = subprocess.run(["ip", "netns", "exec", src_netns, "busybox", "ping", "-c", "1", "-W", str(timeout), dst_ip],
                       capture_output=True)
    return r.returncode == 0


def tcp_source(src_netns: str, dst_ip: str, port: int, timeout: int = 3) -> str:
    """Connect to an echo server (podnet.lab.echo); return the source address it saw, '' on failure."""
    # `nc -w` closes our side once stdin is done; the server answers with our address first
    r = subprocess.run(["ip", "netns", "exec", src_netns, "timeout", str(timeout), "busybox", "nc", "-w", "1", dst_ip, str(port)],
                       capture_output=True, text=True, input="")
    words = r.stdout.split("\n")[0].split()
    return words[0] if words else ""


def matrix(pods: list[dict], check, workers: int = 8) -> dict[tuple[str, str], object]:
    """check(src_pod, dst_pod) for every ordered pair, in parallel."""
    pairs = [(a, b) for a in pods for b in pods]
    with ThreadPoolExecutor(workers) as ex:
        results = list(ex.map(lambda ab: check(*ab), pairs))
    return {(a["metadata"]["name"], b["metadata"]["name"]): r for (a, b), r in zip(pairs, results)}


def grid(names: list[str], results: dict[tuple[str, str], object], ok=lambda r: bool(r)) -> str:
    """Rows are sources, columns destinations: '.' reachable, 'X' not (as the e2e netpol tests print)."""
    width = max(len(n) for n in names)
    lines = [" " * width + "  " + " ".join(n.rjust(width) for n in names)]
    for a in names:
        lines.append(a.rjust(width) + "  " + " ".join(("." if ok(results[(a, b)]) else "X").rjust(width) for b in names))
    return "\n".join(lines)


def tcp_exchange(netns: str, ip: str, port: int, timeout: float = 3.0, send: bytes = b"") -> tuple[str, str, float]:
    """Connect from inside `netns` (this thread switches into it); return (first line received,
    error text, seconds). A refused connection shows as 'ConnectionRefusedError' at once."""
    import socket
    import time

    from ..kernel import netns as kns

    start = time.monotonic()
    try:
        with kns.entered(f"/var/run/netns/{netns}"):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with s:
            s.settimeout(timeout)
            s.connect((ip, port))
            if send:
                s.sendall(send)
            data = b""
            while b"\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        return data.decode(errors="replace").split("\n")[0].strip(), "", time.monotonic() - start
    except OSError as e:
        return "", type(e).__name__, time.monotonic() - start


def reach(netns: str, ip: str, port: int, protocol: str = "TCP", timeout: float = 1.0) -> bool:
    """One probe from inside `netns`: TCP connects, or a UDP datagram gets an answer (the lab's
    echo server answers every datagram). Blocked by policy, refused, silent: all False."""
    import socket

    from ..kernel import netns as kns

    kind = socket.SOCK_STREAM if protocol == "TCP" else socket.SOCK_DGRAM
    with kns.entered(f"/var/run/netns/{netns}"):
        s = socket.socket(socket.AF_INET, kind)
    with s:
        try:
            if protocol == "TCP":
                s.settimeout(timeout)
                s.connect((ip, port))
                return True
            s.settimeout(timeout / 2)
            _fresh_source_port(s)
            s.connect((ip, port))
            for _ in range(2):  # a datagram may wait for ARP or be lost: ask twice
                s.send(b"probe\n")
                try:
                    return bool(s.recv(2048))
                except TimeoutError:
                    continue
            return False
        except OSError:
            return False


_probes = itertools.count()  # next() is atomic: the matrix's threads share it


def _fresh_source_port(s) -> None:
    """A UDP probe's source port, new for every probe of this process (20000-31999, in turn).
    A random ephemeral port can repeat one an earlier probe used to the same pod within the
    conntrack timeout; the policy table accepts `ct state established` (replies of allowed
    flows), so that probe would pass as the old, allowed flow even after a policy blocks it."""
    for _ in range(8):
        port = 20000 + next(_probes) % 12000
        try:
            s.bind(("0.0.0.0", port))
            return
        except OSError:
            continue  # in use here: the next one


def pod_label(pod: dict) -> str:
    return f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"


def probe_pods(pods: list[dict], port: int, protocol: str = "TCP", timeout: float = 1.0,
               workers: int = 32) -> dict[tuple[str, str], bool]:
    """{("x/a", "y/b"): reachable} for every ordered pair of pods, probed in parallel."""
    pairs = [(a, b) for a in pods for b in pods]

    def one(pair: tuple[dict, dict]) -> bool:
        src, dst = pair
        return reach(src["metadata"]["annotations"]["podnet.io/netns"], dst["status"]["podIP"], port, protocol, timeout)

    with ThreadPoolExecutor(workers) as ex:
        results = list(ex.map(one, pairs))
    return {(pod_label(a), pod_label(b)): r for (a, b), r in zip(pairs, results)}


def parse_grid(text: str) -> tuple[list[str], dict[tuple[str, str], bool]]:
    """Read a grid as `grid()` prints it (header of destinations, then a row per source of '.'/'X').
    Blank lines and lines starting with '#' are skipped. Raises ValueError naming the bad line."""
    lines = [(n, l.split()) for n, l in enumerate(text.splitlines(), 1) if l.strip() and not l.lstrip().startswith("#")]
    if not lines:
        raise ValueError("empty grid: expected a header line of destination names, then one row per source")
    header = lines[0][1]
    cells: dict[tuple[str, str], bool] = {}
    sources = []
    for n, words in lines[1:]:
        if len(words) != len(header) + 1:
            raise ValueError(f"line {n}: {len(words) - 1} cells for {len(header)} destinations")
        src, marks = words[0], words[1:]
        for dst, mark in zip(header, marks):
            if mark not in (".", "X"):
                raise ValueError(f"line {n}: cell {src} -> {dst} is {mark!r}, expected '.' or 'X'")
            cells[(src, dst)] = mark == "."
        sources.append(src)
    if sorted(sources) != sorted(header):
        raise ValueError(f"rows ({' '.join(sources)}) and columns ({' '.join(header)}) name different pods")
    return header, cells


def differences(expected: dict[tuple[str, str], bool], observed: dict[tuple[str, str], bool]) -> list[str]:
    """Human-readable lines for every pair whose answer differs, or that only one side has."""
    out = []
    for pair in sorted(set(expected) | set(observed)):
        want, got = expected.get(pair), observed.get(pair)
        if want is None:
            out.append(f"{pair[0]} -> {pair[1]}: not in the expected grid (observed {'.' if got else 'X'})")
        elif got is None:
            out.append(f"{pair[0]} -> {pair[1]}: expected but no such pod pair was probed")
        elif want != got:
            out.append(f"{pair[0]} -> {pair[1]}: expected {'.' if want else 'X'}, observed {'.' if got else 'X'}")
    return out
