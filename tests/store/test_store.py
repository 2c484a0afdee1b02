"""One suite, both backends: revisions, CAS, leases, list + watch without gaps."""

from __future__ import annotations

import os
import shutil
import threading
import time

import pytest

from podnet.kernel import netns as kns
from podnet.store import StoreError, open_store
from podnet.store.etcd_server import EtcdServer
from tests.conftest import ns_path


@pytest.fixture(params=["sqlite", "etcd"])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = open_store(f"sqlite://{tmp_path}/store.db")
        yield s
        s.close()
        return
    if os.geteuid() != 0 or not shutil.which("etcd"):
        pytest.skip("etcd tests need root and Debian's etcd-server")
    ns = request.getfixturevalue("netns").new("etcd")
    server = EtcdServer(ns, str(tmp_path / "etcd")).start()
    try:
        # This thread talks to etcd from inside its private namespace.
        with kns.entered(ns_path(ns)):
            s = open_store(server.url)
            yield s
            s.close()
    finally:
        server.stop()


def test_put_get_revisions(store):
    r1 = store.put("/t/a", "1")
    r2 = store.put("/t/a", "2")
    kv = store.get("/t/a")
    assert r2 > r1 and kv.value == "2" and kv.mod_revision == r2 and kv.create_revision == r1
    assert store.get("/t/missing") is None
    assert store.revision() >= r2


def test_create_only_once(store):
    assert store.create("/t/c", "first")
    assert not store.create("/t/c", "second")
    assert store.get("/t/c").value == "first"


def test_compare_and_set(store):
    store.put("/t/x", "a")
    rev = store.get("/t/x").mod_revision
    assert store.cas("/t/x", "b", rev)
    assert not store.cas("/t/x", "c", rev)  # stale revision
    assert store.get("/t/x").value == "b"
    assert store.cas("/t/new", "v", 0)  # 0 = must not exist
    assert not store.cas("/t/new", "w", 0)


def test_delete_conditional(store):
    store.put("/t/d", "v")
    rev = store.get("/t/d").mod_revision
    assert not store.delete("/t/d", rev + 1000)
    assert store.delete("/t/d", rev)
    assert not store.delete("/t/d")


def test_list_by_prefix(store):
    for k in ("/p/a", "/p/b", "/p2/c", "/q/d"):
        store.put(k, k)
    kvs, rev = store.list("/p/")
    assert [kv.key for kv in kvs] == ["/p/a", "/p/b"]
    assert rev == store.revision()


def test_list_then_watch_misses_nothing(store):
    store.put("/w/a", "1")
    _, rev = store.list("/w/")
    store.put("/w/b", "2")
    store.put("/other", "x")
    store.delete("/w/a")
    events = []
    deadline = time.monotonic() + 5
    while len(events) < 2 and time.monotonic() < deadline:
        got = store.watch("/w/", rev, 1.0)
        events += got
        if got:
            rev = got[-1].revision
    assert [(e.type, e.key, e.value) for e in events] == [("put", "/w/b", "2"), ("delete", "/w/a", "")]


def test_watch_waits_for_a_change(store):
    _, rev = store.list("/late/")

    def later():
        time.sleep(0.3)
        store.put("/late/k", "v")

    t = threading.Thread(target=later)
    t.start()
    events = store.watch("/late/", rev, 5.0)
    t.join()
    assert [(e.type, e.key) for e in events] == [("put", "/late/k")]
    assert store.watch("/late/", events[-1].revision, 0.3) == []


def test_lease_expiry_deletes_keys_with_an_event(store):
    lease = store.grant(1)
    store.put("/l/k", "v", lease=lease)
    _, rev = store.list("/l/")
    assert store.get("/l/k").lease == lease
    deadline = time.monotonic() + 10
    events = []
    while not events and time.monotonic() < deadline:
        events = store.watch("/l/", rev, 1.0)
    assert [(e.type, e.key) for e in events] == [("delete", "/l/k")]
    assert store.get("/l/k") is None
    assert not store.keepalive(lease)


def test_keepalive_keeps_keys(store):
    lease = store.grant(2)
    store.put("/l/keep", "v", lease=lease)
    for _ in range(4):
        time.sleep(0.8)
        assert store.keepalive(lease)
    assert store.get("/l/keep") is not None
    store.revoke(lease)
    assert store.get("/l/keep") is None


def test_bad_urls():
    for url in ("sqlite://relative.db", "etcd://nohost", "redis://x"):
        with pytest.raises(StoreError):
            open_store(url)


def test_sqlite_is_shared_between_processes(tmp_path):
    import subprocess
    import sys

    url = f"sqlite://{tmp_path}/shared.db"
    code = ("import sys; from podnet.store import open_store; s = open_store(sys.argv[1]); "
            "[s.create(f'/n/{i}', sys.argv[2]) for i in range(50)]")
    procs = [subprocess.Popen([sys.executable, "-c", code, url, f"p{j}"]) for j in range(4)]
    assert all(p.wait() == 0 for p in procs)
    kvs, _ = open_store(url).list("/n/")
    assert len(kvs) == 50  # each key created exactly once, by one of the four writers
