"""Reachability between pods, tested with real packets from inside their namespaces."""

from __future__ import annotations

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
