"""The page server on loopback with a fake store (no root): the routes, the Host check, the
event stream pushing a changed model, and addresses it refuses."""

from __future__ import annotations

import http.client
import json
import threading
import time

import pytest

from podnet.store.base import Event
from podnet.topo import serve
from podnet.topo.model import Pod, Topology
from tests.topo.sample import sample


class FakeStore:
    """Enough of the Store protocol for serve.run: a revision and a watch fed by the test."""

    def __init__(self) -> None:
        self.rev = 1
        self.pending: list[Event] = []
        self.cond = threading.Condition()

    def revision(self) -> int:
        return self.rev

    def put(self, key: str) -> None:
        with self.cond:
            self.rev += 1
            self.pending.append(Event("put", key, "{}", self.rev))
            self.cond.notify_all()

    def watch(self, prefix: str, after: int, timeout: float) -> list[Event]:
        with self.cond:
            self.cond.wait_for(lambda: any(e.revision > after for e in self.pending), timeout)
            return [e for e in self.pending if e.revision > after and e.key.startswith(prefix)]


@pytest.fixture
def served(monkeypatch):
    monkeypatch.setattr(serve, "STREAM_SECONDS", 1.5)  # streams end sooner: the tests wait for that
    store, model, stop = FakeStore(), sample(), threading.Event()
    server = serve.Server(serve.parse_address("127.0.0.1:0"), serve.Feed())
    thread = threading.Thread(target=serve.run, args=(server, store, lambda: model), kwargs={"stop": stop, "announce": lambda s: None})
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.feed.version and time.monotonic() < deadline:
            time.sleep(0.01)
        yield server, store, model
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def get(server, path, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.address.port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read().decode()
    finally:
        conn.close()


def test_page_and_model(served):
    server, _, model = served
    status, headers, body = get(server, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert 'data-live="true"' in body and f'data-version="{server.feed.version}"' in body
    status, headers, body = get(server, "/model.json")
    assert status == 200 and json.loads(body) == model.to_json()
    assert get(server, "/nothing")[0] == 404


def test_only_loopback_host_names_are_served(served):
    server = served[0]
    assert get(server, "/model.json", {"Host": "evil.example:80"})[0] == 403
    assert get(server, "/model.json", {"Host": f"localhost:{server.address.port}"})[0] == 200


def read_events(server, since: str, until: float):
    """(id, event, data) of every event on one /events stream, until it ends or `until`."""
    conn = http.client.HTTPConnection("127.0.0.1", server.address.port, timeout=10)
    conn.request("GET", f"/events?since={since}")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Type") == "text/event-stream"
    events, current = [], {}
    try:
        while time.monotonic() < until:
            line = resp.fp.readline().decode()
            if not line:
                break
            line = line.rstrip("\n")
            if not line:
                if "event" in current:
                    events.append((current.get("id"), current["event"], current.get("data")))
                current = {}
                continue
            key, _, value = line.partition(": ")
            current[key] = value
    finally:
        conn.close()
    return events


def test_events_push_a_changed_model_and_end_the_stream(served):
    server, store, model = served
    first = server.feed.version
    assert read_events(server, first, time.monotonic() + 0.3) == []  # nothing new: nothing sent
    got: list = []
    reader = threading.Thread(target=lambda: got.extend(read_events(server, first, time.monotonic() + 30)))
    started = time.monotonic()
    reader.start()
    time.sleep(0.3)
    model.pods.append(Pod("pod/default/new", "default", "new", "10.244.2.50", "node2"))
    store.put("/podnet/pods/default/new")
    reader.join(30)
    assert time.monotonic() - started < serve.STREAM_SECONDS + 2  # the stream ends by itself
    assert len(got) == 1
    version, event, data = got[0]
    assert event == "model" and version == server.feed.version != first
    assert Topology.from_json(json.loads(data)).pods[-1].ip == "10.244.2.50"
    # a page that missed it gets it at once when it reconnects with its last id
    again = read_events(server, first, time.monotonic() + 1)
    assert [e[0] for e in again] == [server.feed.version]


def test_unrelated_store_changes_do_not_push(served):
    server, store, _ = served
    version = server.feed.version
    store.put("/podnet/leader/controller-manager")
    time.sleep(1.5)
    assert server.feed.version == version


def test_feed_publishes_only_changes():
    feed = serve.Feed()
    assert feed.publish({"a": 1}) is True
    version = feed.version
    assert feed.publish({"a": 1}) is False and feed.version == version
    assert feed.wait_newer(version, 0.01) is False
    assert feed.publish({"a": 2}) is True and feed.wait_newer(version, 0.01) is True


@pytest.mark.parametrize("text,host,port", [("127.0.0.1:8080", "127.0.0.1", 8080), (":8080", "127.0.0.1", 8080),
                                            ("8080", "127.0.0.1", 8080), ("[::1]:9000", "::1", 9000),
                                            ("localhost:0", "localhost", 0)])
def test_parse_address(text, host, port):
    assert serve.parse_address(text) == serve.Address(host, port)


@pytest.mark.parametrize("text", ["0.0.0.0:8080", "[::]:80", "10.1.2.3:80"])
def test_non_loopback_needs_listen_any(text):
    with pytest.raises(serve.ServeError, match="--listen-any"):
        serve.parse_address(text)
    assert serve.parse_address(text, listen_any=True).port in (8080, 80)


@pytest.mark.parametrize("text", ["127.0.0.1", "127.0.0.1:http", "127.0.0.1:70000", ""])
def test_bad_addresses(text):
    with pytest.raises(serve.ServeError, match="HOST:PORT"):
        serve.parse_address(text)
