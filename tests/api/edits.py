"""Manifests with a few fields changed, for validation tests."""

from __future__ import annotations

import copy


def edited(doc: dict, *edits) -> dict:
    """A deep copy of `doc` with (path tuple, value) edits applied; the value KeyError deletes the key."""
    out = copy.deepcopy(doc)
    for path, value in edits:
        target = out
        for k in path[:-1]:
            target = target[k]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    return out
