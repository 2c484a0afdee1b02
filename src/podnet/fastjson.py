"""JSON without importing `json`, for code on the plugin hot path (CNI, netlink, nftables).

`import json` pulls in `re`, `enum`, `functools` and `collections` (about 11 ms here) because
its pure-Python decoder and encoder use regular expressions. The C accelerator `_json` needs
none of that: its scanner parses whole documents natively, and its string escaper is all an
encoder needs. Errors are raised as `ValueError` (json.JSONDecodeError is a subclass), after
importing `json` lazily on that cold path only.

The scanner reports a syntax error through `json.decoder.JSONDecodeError`, which it looks up in
`sys.modules` without importing it: when `json` was never imported (the plugin path), it fails
with a bare SystemError ("returned NULL without setting an exception"). That, too, sends us to
the cold path, which imports `json` and raises the real error. Input nested deeper than the
interpreter's recursion limit is reported as a ValueError, never a RecursionError.
"""

from __future__ import annotations

import _json

NaN = float("nan")
Infinity = float("inf")


class _Context:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"NaN": NaN, "Infinity": Infinity, "-Infinity": -Infinity}[name]


_scan = _json.make_scanner(_Context())
_WS = " \t\n\r"


def loads(data: str | bytes) -> object:
    if isinstance(data, (bytes, bytearray)):
        data = data.decode("utf-8-sig")
    start = 0
    while start < len(data) and data[start] in _WS:
        start += 1
    try:
        obj, end = _scan(data, start)
    except (StopIteration, SystemError) as e:
        return _slow_loads(data, e)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    while end < len(data) and data[end] in _WS:
        end += 1
    if end != len(data):
        return _slow_loads(data, None)
    return obj


def _slow_loads(data: str, _cause: object) -> object:
    import json  # only to produce the same error messages as json.loads

    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _encode(obj: object, indent: str, level: int, out: list[str]) -> None:
    if isinstance(obj, str):
        out.append(_json.encode_basestring_ascii(obj))
    elif obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, (int, float)):
        out.append(repr(obj) if isinstance(obj, float) else str(int(obj)))
    elif isinstance(obj, dict):
        if not obj:
            out.append("{}")
            return
        pad, inner = ("\n" + indent * level, "\n" + indent * (level + 1)) if indent else ("", "")
        out.append("{")
        for i, (k, v) in enumerate(obj.items()):
            out.append(("," if i else "") + (inner or (" " if i else "")) + _json.encode_basestring_ascii(str(k)) + ": ")
            _encode(v, indent, level + 1, out)
        out.append(pad + "}")
    elif isinstance(obj, (list, tuple)):
        if not obj:
            out.append("[]")
            return
        pad, inner = ("\n" + indent * level, "\n" + indent * (level + 1)) if indent else ("", "")
        out.append("[")
        for i, v in enumerate(obj):
            out.append(("," if i else "") + (inner or (" " if i else "")))
            _encode(v, indent, level + 1, out)
        out.append(pad + "]")
    else:
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def dumps(obj: object, indent: int | None = None) -> str:
    out: list[str] = []
    _encode(obj, " " * indent if indent else "", 0, out)
    return "".join(out)
