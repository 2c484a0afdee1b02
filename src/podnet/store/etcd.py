"""The etcd backend, over etcd's v3 JSON gateway (etcd3gw for requests, leases and txns).

Semantics map one to one: revisions are etcd's, create/cas are txns comparing
create_revision/mod_revision, watches are the gateway's streaming /watch with start_revision.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Optional

from .base import KV, Compacted, Event, StoreError, WatchIterMixin


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def _unb64(s: str) -> str:
    return base64.b64decode(s or "").decode()


def _range_end(prefix: str) -> str:
    raw = bytearray(prefix.encode())
    for i in range(len(raw) - 1, -1, -1):
        if raw[i] < 0xFF:
            raw[i] += 1
            return base64.b64encode(bytes(raw[: i + 1])).decode()
    return base64.b64encode(b"\0").decode()


def _reason(e: Exception, timeout: float) -> str:
    """What went wrong, never an empty string (etcd3gw's timeout errors carry no message)."""
    import requests
    from etcd3gw import exceptions

    text = str(e).strip()
    if isinstance(e, (exceptions.ConnectionTimeoutError, requests.exceptions.Timeout)) or "timed out" in text.lower():
        return f"no answer within {timeout:g} s (etcd stalled or overloaded){': ' + text if text else ''}"
    if isinstance(e, (exceptions.ConnectionFailedError, requests.exceptions.ConnectionError)):
        return f"cannot connect{': ' + text if text else ''}"
    return f"{e.__class__.__name__}{': ' + text if text else ''}"


class EtcdStore(WatchIterMixin):
    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        from etcd3gw.client import Etcd3Client

        self.client = Etcd3Client(host=host, port=port, timeout=timeout, api_path="/v3/")
        self.timeout = timeout
        self.base = f"http://{host}:{port}/v3/"

    def _post(self, path: str, body: dict) -> dict:
        import requests
        from etcd3gw import exceptions

        try:
            return self.client.post(self.base + path, json=body)
        except (exceptions.Etcd3Exception, requests.exceptions.RequestException, ValueError) as e:
            raise StoreError(f"etcd {path}: {_reason(e, self.timeout)}") from None

    @staticmethod
    def _kv(raw: dict) -> KV:
        return KV(key=_unb64(raw["key"]), value=_unb64(raw.get("value", "")), mod_revision=int(raw.get("mod_revision", 0)),
                  create_revision=int(raw.get("create_revision", 0)), lease=int(raw.get("lease", 0)))

    def revision(self) -> int:
        return int(self._post("kv/range", {"key": _b64("\0"), "limit": 1})["header"]["revision"])

    def get(self, key: str) -> Optional[KV]:
        kvs = self._post("kv/range", {"key": _b64(key)}).get("kvs") or []
        return self._kv(kvs[0]) if kvs else None

    def _put_op(self, key: str, value: str, lease: int) -> dict:
        op = {"key": _b64(key), "value": _b64(value)}
        if lease:
            op["lease"] = str(lease)
        return op

    def put(self, key: str, value: str, lease: int = 0) -> int:
        return int(self._post("kv/put", self._put_op(key, value, lease))["header"]["revision"])

    def _txn(self, key: str, target: str, result: str, value: int, success: list[dict]) -> bool:
        compare = [{"key": _b64(key), "result": result, "target": target, target.lower() + "_revision": str(value)}]
        resp = self._post("kv/txn", {"compare": compare, "success": success})
        return bool(resp.get("succeeded"))

    def create(self, key: str, value: str, lease: int = 0) -> bool:
        return self._txn(key, "CREATE", "EQUAL", 0, [{"request_put": self._put_op(key, value, lease)}])

    def create_all(self, items: list[tuple[str, str]]) -> bool:
        if len({k for k, _ in items}) != len(items):
            return False  # the same key twice: it could not be created twice
        compare = [{"key": _b64(k), "result": "EQUAL", "target": "CREATE", "create_revision": "0"} for k, _ in items]
        success = [{"request_put": self._put_op(k, v, 0)} for k, v in items]
        resp = self._post("kv/txn", {"compare": compare, "success": success})
        return bool(resp.get("succeeded"))

    def cas(self, key: str, value: str, mod_revision: int, lease: int = 0) -> bool:
        return self._txn(key, "MOD", "EQUAL", mod_revision, [{"request_put": self._put_op(key, value, lease)}])

    def delete(self, key: str, mod_revision: int = 0) -> bool:
        if mod_revision:
            return self._txn(key, "MOD", "EQUAL", mod_revision, [{"request_delete_range": {"key": _b64(key)}}])
        return int(self._post("kv/deleterange", {"key": _b64(key)}).get("deleted", 0)) > 0

    def list(self, prefix: str) -> tuple[list[KV], int]:
        resp = self._post("kv/range", {"key": _b64(prefix), "range_end": _range_end(prefix)})
        return [self._kv(k) for k in resp.get("kvs") or []], int(resp["header"]["revision"])

    def watch(self, prefix: str, after_revision: int, timeout: float) -> list[Event]:
        import requests

        body = {"create_request": {"key": _b64(prefix), "range_end": _range_end(prefix), "start_revision": str(after_revision + 1)}}
        events: list[Event] = []
        deadline = time.monotonic() + timeout
        try:
            with requests.post(self.base + "watch", data=json.dumps(body), stream=True, timeout=(5, max(0.2, timeout))) as resp:
                for line in resp.iter_lines():
                    if not line:
                        continue
                    result = json.loads(line).get("result", {})
                    if int(result.get("compact_revision", 0) or 0):
                        raise Compacted(f"revision {after_revision} is compacted (etcd kept from {result['compact_revision']})")
                    for ev in result.get("events") or []:
                        kv = ev["kv"]
                        events.append(Event(type="delete" if ev.get("type") == "DELETE" else "put", key=_unb64(kv["key"]),
                                            value=_unb64(kv.get("value", "")), revision=int(kv.get("mod_revision", 0))))
                    if events or time.monotonic() >= deadline:
                        break
        except requests.exceptions.ConnectionError as e:
            if "Read timed out" not in str(e):
                raise StoreError(f"etcd watch: {_reason(e, timeout)}") from None
        except requests.exceptions.Timeout:
            pass
        except (requests.exceptions.RequestException, ValueError) as e:
            raise StoreError(f"etcd watch: {_reason(e, timeout)}") from None
        return events

    def grant(self, ttl: int) -> int:
        return int(self._post("lease/grant", {"TTL": ttl, "ID": 0})["ID"])

    def keepalive(self, lease: int) -> bool:
        resp = self._post("lease/keepalive", {"ID": str(lease)})
        return int(resp.get("result", {}).get("TTL", -1)) > 0

    def revoke(self, lease: int) -> None:
        try:
            self._post("kv/lease/revoke", {"ID": str(lease)})
        except StoreError:
            pass  # already gone

    def close(self) -> None:
        self.client.session.close()
