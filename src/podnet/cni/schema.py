"""Type checks of a decoded network config, the way Go's json.Unmarshal into a typed struct
checks the reference plugins' configs: a field of the wrong JSON type is error 6 ("error
unmarshall network config: ...") naming the field, before any handler reads it. `null` is the
zero value, as in Go, except as a list element. Unknown fields are ignored, as in Go.

A schema maps a key to a type (str, int, bool, float), a nested schema (a dict), a list whose
one element gives the element's schema, or ANY. Standard library only: it runs on the plugin
executables' hot path.
"""

from __future__ import annotations

from .errors import DECODING_FAILURE, CNIError

ANY = object()
_NAMES = {str: "a string", int: "an integer", bool: "true or false", float: "a number", dict: "an object",
          list: "a list"}


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "null"


def _fail(where: str, expected: object, value: object) -> CNIError:
    want = _NAMES.get(expected, "an object") if not isinstance(expected, list) else "a list"
    if isinstance(expected, dict):
        want = "an object"
    return CNIError(DECODING_FAILURE, f"error unmarshall network config: {where}: expected {want}, got {_json_type(value)}")


def check(value: object, schema: object, where: str = "") -> None:
    """Raise error 6 naming the first field whose JSON type does not match `schema`."""
    if value is None or schema is ANY:
        return
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            raise _fail(where or "config", dict, value)
        for key, sub in schema.items():
            if key in value:
                check(value[key], sub, f"{where}.{key}" if where else key)
        return
    if isinstance(schema, list):
        if not isinstance(value, list):
            raise _fail(where, list, value)
        for i, item in enumerate(value):
            if item is None and schema[0] is not ANY:  # a null element is no zero value a plugin can use
                raise _fail(f"{where}[{i}]", schema[0] if not isinstance(schema[0], dict) else dict, item)
            check(item, schema[0], f"{where}[{i}]")
        return
    if schema is int:
        ok = isinstance(value, int) and not isinstance(value, bool) or isinstance(value, float) and value.is_integer()
    elif schema is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, schema) and not (schema is not bool and isinstance(value, bool))
    if not ok:
        raise _fail(where, schema, value)
    if schema is int and not -(2 ** 63) <= value < 2 ** 63:
        raise CNIError(DECODING_FAILURE, f"error unmarshall network config: {where}: number {value} out of range")


DNS = {"nameservers": [str], "domain": str, "search": [str], "options": [str]}
ROUTE = {"dst": str, "gw": str, "mtu": int, "advmss": int, "priority": int, "table": int, "scope": int}
RANGE = {"subnet": str, "rangeStart": str, "rangeEnd": str, "gateway": str}
IPAM = {"type": str, "subnet": str, "rangeStart": str, "rangeEnd": str, "gateway": str, "ranges": [[RANGE]],
        "routes": [ROUTE], "dataDir": str, "resolvConf": str}
RESULT = {"cniVersion": str, "interfaces": [{"name": str, "mac": str, "mtu": int, "sandbox": str, "socketPath": str}],
          "ips": [{"address": str, "gateway": str, "interface": int, "version": str}], "routes": [ROUTE], "dns": DNS,
          "ip4": {"ip": str, "gateway": str, "routes": [ROUTE]}, "ip6": {"ip": str, "gateway": str, "routes": [ROUTE]}}
NETCONF = {"cniVersion": str, "name": str, "type": str, "capabilities": {}, "ipam": IPAM, "dns": DNS,
           "prevResult": RESULT, "args": {}, "runtimeConfig": {},
           "cni.dev/valid-attachments": [{"containerID": str, "ifname": str}]}


def netconf(**fields: object) -> dict:
    """The common network config schema plus a plugin's own fields."""
    out = dict(NETCONF)
    out.update(fields)
    return out
