"""The embedded store: one SQLite file in WAL mode, shared safely by several processes.

Every mutation runs in a BEGIN IMMEDIATE transaction that bumps the store revision and
appends to an event log; watchers poll the log. Leases expire lazily: any operation first
deletes the keys of leases past their deadline, writing delete events like any delete.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from typing import Optional

from .base import KV, Compacted, Event, StoreError, WatchIterMixin

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, create_rev INTEGER NOT NULL,
                               mod_rev INTEGER NOT NULL, lease INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS events (rev INTEGER PRIMARY KEY, type TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS leases (id INTEGER PRIMARY KEY AUTOINCREMENT, ttl INTEGER NOT NULL, deadline REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('revision', 0), ('compacted', 0);
"""
KEEP_EVENTS = 20000
POLL = 0.02  # how often a waiting watch looks at the event log (s)


class SQLiteStore(WatchIterMixin):
    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self._local = threading.local()
        self._retry_locked(lambda: self._db().executescript(SCHEMA))

    @staticmethod
    def _retry_locked(fn, timeout: float = 30.0):
        """Run fn, retrying while another opener holds the file: switching a fresh database to
        WAL and creating the schema do not wait on SQLite's busy handler, so first opens racing
        each other would fail with "database is locked" without this."""
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.2)

    # -- connections: one per thread, WAL, waiting on locks instead of failing ----------------
    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self._retry_locked(lambda: db.execute("PRAGMA journal_mode=WAL"))
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    class _Tx:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def __enter__(self) -> sqlite3.Connection:
            self.db.execute("BEGIN IMMEDIATE")
            return self.db

        def __exit__(self, exc_type, *_: object) -> None:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")

    def _tx(self) -> "_Tx":
        return self._Tx(self._db())

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # -- internals -----------------------------------------------------------------------------
    @staticmethod
    def _bump(db: sqlite3.Connection) -> int:
        db.execute("UPDATE meta SET value = value + 1 WHERE name = 'revision'")
        return db.execute("SELECT value FROM meta WHERE name = 'revision'").fetchone()[0]

    def _write(self, db: sqlite3.Connection, key: str, value: str, lease: int) -> int:
        if lease and not db.execute("SELECT 1 FROM leases WHERE id = ?", (lease,)).fetchone():
            raise StoreError(f"lease {lease} not found (expired or revoked)")
        rev = self._bump(db)
        db.execute(
            "INSERT INTO kv (key, value, create_rev, mod_rev, lease) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value, mod_rev = excluded.mod_rev, lease = excluded.lease",
            (key, value, rev, rev, lease))
        db.execute("INSERT INTO events VALUES (?, 'put', ?, ?)", (rev, key, value))
        return rev

    def _remove(self, db: sqlite3.Connection, key: str) -> int:
        rev = self._bump(db)
        db.execute("DELETE FROM kv WHERE key = ?", (key,))
        db.execute("INSERT INTO events VALUES (?, 'delete', ?, '')", (rev, key))
        return rev

    def _expire(self, db: sqlite3.Connection) -> None:
        now = time.time()
        expired = [r[0] for r in db.execute("SELECT id FROM leases WHERE deadline < ?", (now,))]
        for lease in expired:
            for (key,) in db.execute("SELECT key FROM kv WHERE lease = ?", (lease,)).fetchall():
                self._remove(db, key)
            db.execute("DELETE FROM leases WHERE id = ?", (lease,))
        rev = db.execute("SELECT value FROM meta WHERE name = 'revision'").fetchone()[0]
        if rev % 1000 == 0 and rev > KEEP_EVENTS:
            db.execute("DELETE FROM events WHERE rev <= ?", (rev - KEEP_EVENTS,))
            db.execute("UPDATE meta SET value = ? WHERE name = 'compacted'", (rev - KEEP_EVENTS,))

    def _maybe_expire(self) -> None:
        db = self._db()
        if db.execute("SELECT 1 FROM leases WHERE deadline < ? LIMIT 1", (time.time(),)).fetchone():
            with self._tx() as tx:
                self._expire(tx)

    # -- the protocol --------------------------------------------------------------------------
    def revision(self) -> int:
        self._maybe_expire()
        return self._db().execute("SELECT value FROM meta WHERE name = 'revision'").fetchone()[0]

    def get(self, key: str) -> Optional[KV]:
        self._maybe_expire()
        row = self._db().execute("SELECT key, value, mod_rev, create_rev, lease FROM kv WHERE key = ?", (key,)).fetchone()
        return KV(*row) if row else None

    def put(self, key: str, value: str, lease: int = 0) -> int:
        with self._tx() as db:
            self._expire(db)
            return self._write(db, key, value, lease)

    def create(self, key: str, value: str, lease: int = 0) -> bool:
        with self._tx() as db:
            self._expire(db)
            if db.execute("SELECT 1 FROM kv WHERE key = ?", (key,)).fetchone():
                return False
            self._write(db, key, value, lease)
            return True

    def create_all(self, items: list[tuple[str, str]]) -> bool:
        if len({k for k, _ in items}) != len(items):
            return False  # the same key twice: it could not be created twice
        with self._tx() as db:
            self._expire(db)
            for key, _ in items:
                if db.execute("SELECT 1 FROM kv WHERE key = ?", (key,)).fetchone():
                    return False
            for key, value in items:
                self._write(db, key, value, 0)
            return True

    def cas(self, key: str, value: str, mod_revision: int, lease: int = 0) -> bool:
        with self._tx() as db:
            self._expire(db)
            row = db.execute("SELECT mod_rev FROM kv WHERE key = ?", (key,)).fetchone()
            if (row[0] if row else 0) != mod_revision:
                return False
            self._write(db, key, value, lease)
            return True

    def delete(self, key: str, mod_revision: int = 0) -> bool:
        with self._tx() as db:
            self._expire(db)
            row = db.execute("SELECT mod_rev FROM kv WHERE key = ?", (key,)).fetchone()
            if not row or (mod_revision and row[0] != mod_revision):
                return False
            self._remove(db, key)
            return True

    def list(self, prefix: str) -> tuple[list[KV], int]:
        self._maybe_expire()
        db = self._db()
        db.execute("BEGIN")
        try:
            rows = db.execute("SELECT key, value, mod_rev, create_rev, lease FROM kv WHERE key >= ? AND key < ? ORDER BY key",
                              (prefix, prefix + "\U0010ffff")).fetchall()
            rev = db.execute("SELECT value FROM meta WHERE name = 'revision'").fetchone()[0]
        finally:
            db.execute("COMMIT")
        return [KV(*r) for r in rows], rev

    def watch(self, prefix: str, after_revision: int, timeout: float) -> list[Event]:
        deadline = time.monotonic() + timeout
        db = self._db()
        while True:
            self._maybe_expire()
            compacted = db.execute("SELECT value FROM meta WHERE name = 'compacted'").fetchone()[0]
            if after_revision < compacted:
                raise Compacted(f"revision {after_revision} is compacted (oldest kept: {compacted + 1})")
            rows = db.execute("SELECT rev, type, key, value FROM events WHERE rev > ? AND key >= ? AND key < ? ORDER BY rev",
                              (after_revision, prefix, prefix + "\U0010ffff")).fetchall()
            if rows:
                return [Event(type=t, key=k, value=v, revision=r) for r, t, k, v in rows]
            if time.monotonic() >= deadline:
                return []
            time.sleep(POLL)

    def grant(self, ttl: int) -> int:
        with self._tx() as db:
            cur = db.execute("INSERT INTO leases (ttl, deadline) VALUES (?, ?)", (ttl, time.time() + ttl))
            return cur.lastrowid

    def keepalive(self, lease: int) -> bool:
        with self._tx() as db:
            self._expire(db)
            cur = db.execute("UPDATE leases SET deadline = ? + ttl WHERE id = ?", (time.time(), lease))
            return cur.rowcount == 1

    def revoke(self, lease: int) -> None:
        with self._tx() as db:
            for (key,) in db.execute("SELECT key FROM kv WHERE lease = ?", (lease,)).fetchall():
                self._remove(db, key)
            db.execute("DELETE FROM leases WHERE id = ?", (lease,))


def _as_store_error(fn):
    """sqlite3's own errors (a locked or corrupt file, a full disk) leave the store as
    StoreError, the one error type every caller handles."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except sqlite3.Error as e:
            raise StoreError(f"sqlite {fn.__name__}: {e}") from None

    return wrapper


for _name in ("__init__", "revision", "get", "put", "create", "cas", "delete", "list", "watch", "grant", "keepalive", "revoke"):
    setattr(SQLiteStore, _name, _as_store_error(getattr(SQLiteStore, _name)))
