"""A tiny TCP server for pods: answers each connection with the client's address as it saw it,
followed by its own pod name, so a test can check that source IPs are preserved between pods
(no NAT) and which endpoint a service picked; then echoes back every
line it receives, so one long-lived connection can show that it survives (an agent restart...)."""

from __future__ import annotations

import argparse
import os
import socket
import threading


def serve(port: int) -> None:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(128)
    while True:
        conn, (addr, _) = srv.accept()
        threading.Thread(target=_answer, args=(conn, addr), daemon=True).start()


def _answer(conn: socket.socket, addr: str) -> None:
    with conn:
        try:
            conn.sendall(f"{addr} {os.environ.get('POD_NAME', '')}".rstrip().encode() + b"\n")
            while True:
                data = conn.recv(4096)
                if not data:
                    return
                conn.sendall(data)
        except OSError:
            pass


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, default=8080)
    serve(ap.parse_args().port)
