"""Many Services applied in few transactions (`podnet apply -f` of a long List).

Each object goes through the same `objects.apply` as always, but against a recorder: reads are
answered from one listing of namespaces, services and allocations taken at the start, and
create-only writes (the object and its ClusterIP/NodePort/LB claims) are recorded instead of
sent. Up to BATCH objects' records are then written by one `create_all` transaction (every key
must still be absent, so a concurrent writer that took one makes the batch fail as a whole). An
object that needs any other write (an update, a release), or whose batch failed, is applied on
its own as before. With etcd that is one round trip per 40 objects instead of four per object.
"""

from __future__ import annotations

from ..api import keys
from ..store import Store
from ..store.base import KV
from . import objects

BATCH = 40       # objects per transaction: each a Service key and its claims (etcd allows 128 operations)
MAX_OPS = 120


class NotBatchable(Exception):
    """The object needs a write a batch cannot hold: apply it on its own."""


class Recorder:
    """Enough of the Store protocol for objects.apply on a new Service, from a snapshot."""

    def __init__(self, store: Store) -> None:
        self.known: dict[str, KV] = {}
        for prefix in (keys.NAMESPACES, keys.SERVICES, keys.ALLOCATIONS):
            for kv in store.list(prefix)[0]:
                self.known[kv.key] = kv
        self.taken: set[str] = set()             # keys earlier objects of this apply will create
        self.pending: list[tuple[str, str]] = []  # this object's creates

    def get(self, key: str) -> KV | None:
        return self.known.get(key)

    def list(self, prefix: str) -> tuple[list[KV], int]:
        return [kv for k, kv in sorted(self.known.items()) if k.startswith(prefix)], 0

    def create(self, key: str, value: str, lease: int = 0) -> bool:
        if lease:
            raise NotBatchable("a write with a lease")
        if key in self.known or key in self.taken or any(k == key for k, _ in self.pending):
            return False
        self.pending.append((key, value))
        return True

    def cas(self, *_args, **_kw) -> bool:
        raise NotBatchable("an update")

    def put(self, *_args, **_kw) -> int:
        raise NotBatchable("a put")

    def delete(self, *_args, **_kw) -> bool:
        raise NotBatchable("a delete")


def apply_services(store: Store, objs: list[dict], created_namespaces: frozenset[str] = frozenset()) -> list:
    """objects.apply for each of `objs` (Services), in their order: a list of (result, None) or
    (None, the exception objects.apply raised)."""
    out: list = [None] * len(objs)
    recorder = Recorder(store)
    batch: list[tuple[int, list[tuple[str, str]]]] = []

    def commit() -> None:
        items = [item for _, records in batch for item in records]
        if store.create_all(items):
            for i, _ in batch:
                out[i] = ("created", None)
        else:  # someone else took a key meanwhile: each on its own, as a single apply would
            for i, _ in batch:
                out[i] = _single(store, objs[i], created_namespaces)
        batch.clear()

    for i, obj in enumerate(objs):
        recorder.pending = []
        try:
            result = objects.apply(recorder, obj, created_namespaces)  # type: ignore[arg-type]
        except NotBatchable:
            out[i] = _single(store, obj, created_namespaces)
            continue
        except Exception as e:  # noqa: BLE001 - the same errors a single apply reports
            out[i] = (None, e)
            continue
        if result != "created":  # "unchanged": nothing to write
            out[i] = (result, None)
            continue
        if sum(len(r) for _, r in batch) + len(recorder.pending) > MAX_OPS:
            commit()
        batch.append((i, recorder.pending))
        recorder.taken.update(k for k, _ in recorder.pending)
        if len(batch) >= BATCH:
            commit()
    if batch:
        commit()
    return out


def _single(store: Store, obj: dict, created_namespaces: frozenset[str]):
    try:
        return objects.apply(store, obj, created_namespaces), None
    except Exception as e:  # noqa: BLE001
        return None, e
