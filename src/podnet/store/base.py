"""The Store protocol and its value types."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Protocol


class StoreError(RuntimeError):
    pass


class Compacted(StoreError):
    """The revision a watch asked for is older than the store keeps: list again."""


@dataclass(frozen=True)
class KV:
    key: str
    value: str
    mod_revision: int
    create_revision: int
    lease: int = 0


@dataclass(frozen=True)
class Event:
    type: str  # "put" or "delete"
    key: str
    value: str  # the new value; "" for deletes
    revision: int


class WatchIterMixin:
    """watch_iter() for any backend that implements watch()."""

    def watch_iter(self, prefix: str, after_revision: int, stop=None) -> Iterator[Event]:
        rev = after_revision
        while stop is None or not stop.is_set():
            for ev in self.watch(prefix, rev, 1.0):  # type: ignore[attr-defined]
                rev = ev.revision
                yield ev


class Store(Protocol):
    def get(self, key: str) -> Optional[KV]: ...

    def put(self, key: str, value: str, lease: int = 0) -> int:
        """Write unconditionally; return the new revision."""

    def create(self, key: str, value: str, lease: int = 0) -> bool:
        """Write only if the key does not exist."""

    def create_all(self, items: list[tuple[str, str]]) -> bool:
        """Write every (key, value) in one transaction, only if none of the keys exists (False:
        nothing was written). A bulk apply's batch: one round trip for many objects."""

    def cas(self, key: str, value: str, mod_revision: int, lease: int = 0) -> bool:
        """Write only if the key's mod_revision is still `mod_revision`."""

    def delete(self, key: str, mod_revision: int = 0) -> bool:
        """Delete (only at `mod_revision` when given); False if nothing was deleted."""

    def list(self, prefix: str) -> tuple[list[KV], int]:
        """Every key under `prefix`, and the store revision they were read at."""

    def watch(self, prefix: str, after_revision: int, timeout: float) -> list[Event]:
        """Changes under `prefix` with revision > after_revision, waiting up to `timeout`
        seconds for the first one. Raises Compacted when that history is gone."""

    def watch_iter(self, prefix: str, after_revision: int, stop=None) -> Iterator[Event]: ...

    def grant(self, ttl: int) -> int:
        """A new lease; keys put with it vanish unless keepalive() is called within ttl s."""

    def keepalive(self, lease: int) -> bool:
        """Renew; False if the lease already expired (its keys are gone)."""

    def revoke(self, lease: int) -> None: ...

    def revision(self) -> int: ...

    def close(self) -> None: ...
