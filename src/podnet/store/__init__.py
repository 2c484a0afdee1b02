"""The datastore: one `Store` protocol, two backends.

    sqlite:///path/to/db      embedded default; safe for several processes on one machine
    etcd://host:port          a real etcd (Debian's etcd-server), through its v3 JSON gateway

Keys are strings, values are strings (JSON documents by convention). Every change bumps a
store-wide revision; `watch` replays changes after a revision, so a watcher that lists, then
watches from the listed revision, misses nothing. Keys may be attached to a lease, and go
away (with a delete event) when the lease is not kept alive within its TTL.
"""

from __future__ import annotations

from .base import KV, Compacted, Event, Store, StoreError


def open_store(url: str) -> Store:
    """A store from its URL: sqlite:///abs/path.db or etcd://host:port."""
    if url.startswith("sqlite://"):
        from .sqlite import SQLiteStore

        path = url[len("sqlite://"):]
        if not path.startswith("/"):
            raise StoreError(f"sqlite store URL needs an absolute path: sqlite:///var/lib/podnet/store.db, not {url!r}")
        return SQLiteStore(path)
    if url.startswith("etcd://"):
        from .etcd import EtcdStore

        hostport = url[len("etcd://"):].rstrip("/")
        host, _, port = hostport.rpartition(":")
        if not host or not port.isdigit():
            raise StoreError(f"etcd store URL must be etcd://HOST:PORT, not {url!r}")
        return EtcdStore(host, int(port))
    raise StoreError(f"unknown store {url!r}: use sqlite:///path/to/db or etcd://host:port")


__all__ = ["KV", "Event", "Store", "StoreError", "Compacted", "open_store"]
