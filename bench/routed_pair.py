"""A client and a server namespace routed through a node namespace, for latency benchmarks:

    client 10.200.0.2 -- c0 [node 10.200.0.1 | 10.201.0.1] s0 -- server 10.201.0.2

All three are pn-<tag>-{c,n,s}; the caller deletes them (`remove`)."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time

from podnet.kernel import netns as kns

CLIENT_IP, SERVER_IP = "10.200.0.2", "10.201.0.2"


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def nft(ns: str, cmds: list) -> float:
    """Apply a JSON command list in `ns`; the seconds it took."""
    t0 = time.perf_counter()
    r = subprocess.run(["ip", "netns", "exec", ns, "nft", "-j", "-f", "-"], input=json.dumps({"nftables": cmds}).encode(),
                       capture_output=True)
    if r.returncode != 0:
        raise SystemExit(f"nft failed: {r.stderr.decode()[:500]}")
    return time.perf_counter() - t0


def topology(tag: str) -> tuple[str, str, str]:
    client, node, server = f"pn-{tag}-c", f"pn-{tag}-n", f"pn-{tag}-s"
    for ns in (client, node, server):
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("ip", "-n", node, "link", "add", "c0", "type", "veth", "peer", "name", "eth0", "netns", client)
    sh("ip", "-n", node, "link", "add", "s0", "type", "veth", "peer", "name", "eth0", "netns", server)
    for ns, dev, addr in ((node, "c0", "10.200.0.1/24"), (client, "eth0", f"{CLIENT_IP}/24"),
                          (node, "s0", "10.201.0.1/24"), (server, "eth0", f"{SERVER_IP}/24")):
        sh("ip", "-n", ns, "addr", "add", addr, "dev", dev)
        sh("ip", "-n", ns, "link", "set", dev, "up")
    sh("ip", "-n", client, "route", "add", "default", "via", "10.200.0.1")
    sh("ip", "-n", server, "route", "add", "default", "via", "10.201.0.1")
    sh("ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    return client, node, server


def remove(*namespaces: str) -> None:
    for ns in namespaces:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def serve(server: str, port: int, stop: threading.Event) -> None:
    """Accept and close connections on SERVER_IP:port until `stop`."""
    with kns.entered(f"/var/run/netns/{server}"):
        srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((SERVER_IP, port))
    srv.listen(1024)
    srv.settimeout(0.5)
    while not stop.is_set():
        try:
            conn, _ = srv.accept()
            conn.close()
        except OSError:
            pass
    srv.close()


def wait_listening(client: str, ip: str, port: int, timeout: float = 10.0) -> None:
    """Until a connect from `client` to ip:port succeeds (the server thread binds a moment
    after it starts)."""
    deadline = time.monotonic() + timeout
    while True:
        with kns.entered(f"/var/run/netns/{client}"):
            s = socket.socket()
        with s:
            s.settimeout(1)
            try:
                s.connect((ip, port))
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"nothing answers on {ip}:{port} after {timeout:g} s")
        time.sleep(0.05)


def connect_latency(client: str, ip: str, port: int, count: int) -> list[float]:
    """Microseconds of `count` TCP connects from `client` to ip:port, one new connection each."""
    out = []
    for _ in range(count):
        with kns.entered(f"/var/run/netns/{client}"):
            s = socket.socket()
        with s:
            s.settimeout(2)
            t0 = time.perf_counter()
            s.connect((ip, port))
            out.append((time.perf_counter() - t0) * 1e6)
    return out
