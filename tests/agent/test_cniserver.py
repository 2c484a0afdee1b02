"""The agent's CNI socket answers every request in its wire format and cannot be made to pile
up threads by clients that connect and send nothing."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from podnet.agent.cniserver import CNIServer


def ask(path: str, payload: bytes, timeout: float = 5.0) -> dict | None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                s.connect(path)
                break
            except BlockingIOError:  # a full listen backlog: a Unix socket says EAGAIN, not "wait"
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    finally:
        s.close()
    return json.loads(data) if data else None


@pytest.fixture
def server(tmp_path):
    srv = CNIServer(str(tmp_path / "cni.sock"), max_handlers=8, request_timeout=0.5)
    srv.run_plugin = lambda env, stdin: (0, json.dumps({"echo": env["CNI_COMMAND"]}))
    srv.delegate = type("D", (), {"cni_path": "/bin", "rewrite": staticmethod(lambda conf: conf)})()
    thread = srv.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


def request(conf: object) -> bytes:
    return json.dumps({"env": {"CNI_COMMAND": "ADD"}, "stdin": conf if isinstance(conf, str) else json.dumps(conf)}).encode()


@pytest.mark.parametrize("payload", [
    b"[" * 100_000,                                          # nested past the recursion limit
    b'{"env": ' + b"[" * 100_000,
    request("[" * 100_000),                                  # the network config itself nested
    b"{not json", b'"just a string"', b'{"env": 1, "stdin": 2}', b'{"env": {}, "stdin": "{}"}' + b"\xff",
    request("{not json"), request([1, 2]),
])
def test_every_malformed_request_gets_error_6(server, payload):
    reply = ask(server.server_address, payload)
    assert reply is not None, "connection closed without a reply"
    assert reply["code"] == 1
    err = json.loads(reply["stdout"])
    assert err["code"] == 6, err


def test_a_good_request_is_relayed(server):
    reply = ask(server.server_address, request({"cniVersion": "1.0.0", "name": "n", "type": "podnet"}))
    assert reply == {"code": 0, "stdout": json.dumps({"echo": "ADD"})}


def test_half_open_connections_are_bounded_and_time_out(server):
    before = threading.active_count()
    idle = []
    for _ in range(200):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(server.server_address)
        except BlockingIOError:
            pass  # the listen backlog is full: the kernel holds the rest
        idle.append(s)
    try:
        time.sleep(0.3)
        assert threading.active_count() - before <= 8, "one thread per idle connection"
        # the idle ones time out slot by slot; a real request gets through afterwards
        for s in idle:
            s.close()
        reply = ask(server.server_address, request({"cniVersion": "1.0.0", "name": "n", "type": "podnet"}), timeout=30)
        assert reply is not None and reply["code"] == 0
    finally:
        for s in idle:
            s.close()


def test_a_request_trickling_in_is_dropped_after_the_timeout(server):
    import select

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(server.server_address)
    deadline = time.monotonic() + 5
    closed = False
    try:
        while not closed and time.monotonic() < deadline:
            try:
                s.send(b" ")  # never the end of a request
            except OSError:
                closed = True
                break
            if select.select([s], [], [], 0.05)[0]:
                closed = s.recv(1) == b""
    finally:
        s.close()
    assert closed, "the server kept a trickling client for 5 s (its limit is 0.5 s)"
