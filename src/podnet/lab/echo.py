"""A tiny server for pods, on TCP and optionally UDP, on one or more ports.

TCP: answers each connection with the client's address as it saw it, followed by its own pod
name, so a test can check that source IPs are preserved between pods (no NAT) and which endpoint
a service picked; then echoes back every line it receives, so one long-lived connection can show
that it survives (an agent restart, a policy update...).

UDP: answers every datagram with the same "client-address pod-name" line.

    python -m podnet.lab.echo --port 80 --port 81 --udp
"""

from __future__ import annotations

import argparse
import os
import socket
import threading


def _greeting(addr: str) -> bytes:
    return f"{addr} {os.environ.get('POD_NAME', '')}".rstrip().encode() + b"\n"


def tcp_listener(port: int) -> socket.socket:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(128)
    return srv


def udp_listener(port: int) -> socket.socket:
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("0.0.0.0", port))
    return srv


def serve_tcp(srv: socket.socket) -> None:
    while True:
        conn, (addr, _) = srv.accept()
        threading.Thread(target=_answer, args=(conn, addr), daemon=True).start()


def serve_udp(srv: socket.socket) -> None:
    while True:
        _, (addr, peer_port) = srv.recvfrom(2048)
        try:
            srv.sendto(_greeting(addr), (addr, peer_port))
        except OSError:
            pass  # a reply that cannot leave (no route, blocked) is the client's problem


def _answer(conn: socket.socket, addr: str) -> None:
    with conn:
        try:
            conn.sendall(_greeting(addr))
            while True:
                data = conn.recv(4096)
                if not data:
                    return
                conn.sendall(data)
        except OSError:
            pass


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m podnet.lab.echo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, action="append", help="port to serve (repeatable; default 8080)")
    ap.add_argument("--udp", action="store_true", help="also serve UDP on the same ports")
    args = ap.parse_args(argv)
    ports = args.port or [8080]
    # bind everything first, so a port in use ends the process with an error instead of one thread
    servers = [(serve_tcp, tcp_listener(p)) for p in ports] + ([(serve_udp, udp_listener(p)) for p in ports] if args.udp else [])
    threads = [threading.Thread(target=fn, args=(srv,), daemon=True) for fn, srv in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
