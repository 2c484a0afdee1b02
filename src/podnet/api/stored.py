"""Reading API objects back from the store without trusting them.

What podnet writes is always well formed, but a store is shared: another tool, a hand edit or
a bug can leave a value that is not JSON, or JSON of the wrong shape. Readers that serve
(the agent, DNS, the CLI) must skip such a value, say which key it was, and go on with the
others: one bad object must never stop every other object from being served.
"""

from __future__ import annotations

import json
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")


def decode(value: str, namespaced: bool = True) -> dict | None:
    """The object, or None when it is not a JSON object with metadata.name (and namespace)."""
    try:
        obj = json.loads(value)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict):
        return None
    meta = obj["metadata"]
    if not isinstance(meta.get("name"), str) or (namespaced and not isinstance(meta.get("namespace"), str)):
        return None
    for section in ("spec", "status"):
        if section in obj and not isinstance(obj[section], dict):
            return None
    return obj


def decode_all(kvs: Iterable, namespaced: bool = True) -> tuple[list[dict], list[str]]:
    """(the objects that decode, the keys of those that do not)."""
    good, bad = [], []
    for kv in kvs:
        obj = decode(kv.value, namespaced)
        if obj is None:
            bad.append(kv.key)
        else:
            good.append(obj)
    return good, bad


def ident(obj: object) -> str:
    try:
        meta = obj["metadata"]  # type: ignore[index]
        return f"{meta.get('namespace', '')}/{meta['name']}".lstrip("/")
    except (KeyError, TypeError, AttributeError):
        return "<unnamed>"


def partition(items: list[T], works: Callable[[T], object]) -> tuple[list[T], list[T]]:
    """(items for which `works(item)` returns, items for which it raises): used after a render
    of everything failed, to find the objects it choked on and render the rest."""
    good, bad = [], []
    for item in items:
        try:
            works(item)
        except Exception:  # noqa: BLE001 - any failure marks the object as the culprit
            bad.append(item)
        else:
            good.append(item)
    return good, bad
