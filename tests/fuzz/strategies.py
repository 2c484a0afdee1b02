"""Hypothesis strategies shared by the fuzz tests: JSON values, and mutations of a valid
document (a subtree replaced, a key dropped or added), which reach much deeper into a parser
than random bytes do."""

from __future__ import annotations

import copy
import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# `make test` runs a bounded number of examples; `make fuzz` (PODNET_FUZZ=N) runs N per property.
EXAMPLES = int(os.environ.get("PODNET_FUZZ", "0") or 0)
settings.register_profile("bounded", max_examples=40, deadline=None, suppress_health_check=list(HealthCheck),
                          derandomize=True)
settings.register_profile("fuzz", max_examples=max(EXAMPLES, 1), deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile("fuzz" if EXAMPLES else "bounded")

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**63, max_value=2**64), st.floats(allow_nan=False),
                    st.text(max_size=30), st.sampled_from(["", "0", "-1", "10.0.0.1", "10.0.0.0/8", "::1", "eth0",
                                                           "a" * 300, "1.1.0", "0.4.0", "tcp", "TCP", "None"]))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                           max_leaves=12)


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))


@st.composite
def mutated(draw, doc: dict, frozen: tuple[tuple, ...] = (), rounds: int = 3) -> dict:
    """`doc` with up to `rounds` mutations; paths in `frozen` (and their ancestors) are never
    replaced or removed (e.g. ipam.dataDir: fuzzing must not write outside its directory)."""
    out = copy.deepcopy(doc)
    for _ in range(draw(st.integers(0, rounds))):
        paths = [p for p in _paths(out) if p and not any(f[:len(p)] == p for f in frozen)]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = out
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "drop", "add"]))
        if action == "drop" and isinstance(parent, dict):
            parent.pop(path[-1], None)
        elif action == "add" and isinstance(parent, dict):
            key = draw(st.text(max_size=10))
            if key not in parent:  # never overwrite (a frozen key among them)
                parent[key] = draw(json_values)
        else:
            parent[path[-1]] = draw(json_values)
    return out
