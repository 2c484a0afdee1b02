"""The runtime side of CNI: run a .conf/.conflist as libcni does.

- Each plugin's config is the list's entry with `name` and `cniVersion` injected, `runtimeConfig`
  built from the capabilities it declares, and `prevResult` from the plugin before it.
- DEL runs the plugins in reverse order; CHECK and DEL get the cached ADD result as prevResult
  (from 0.4.0 on). The result cache lives at <cacheDir>/results/<network>-<containerID>-<ifname>
  in libcni's `cniCacheV1` format, so either runtime can read the other's cache.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from typing import Optional

from . import errors, validate
from .errors import CNIError
from .invoke import call_json, find_plugin
from .types import convert
from .version import SUPPORTED, verb_allowed

DEFAULT_CACHE_DIR = "/var/lib/cni"
DEFAULT_CNI_PATH = ["/opt/cni/bin"]


@dataclass
class ConfList:
    name: str
    cni_version: str
    plugins: list[dict]
    raw: bytes
    disable_check: bool = False
    disable_gc: bool = False

    @classmethod
    def load(cls, path: str) -> "ConfList":
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise CNIError(errors.IO_FAILURE, f"cannot read network config {path}: {e.strerror}") from None
        return cls.parse(raw, source=path)

    @classmethod
    def parse(cls, raw: bytes, source: str = "<config>") -> "ConfList":
        try:
            doc = json.loads(raw)
        except ValueError as e:
            raise CNIError(errors.DECODING_FAILURE, f"{source}: invalid JSON: {e}") from None
        if not isinstance(doc, dict):
            raise CNIError(errors.DECODING_FAILURE, f"{source}: the config must be a JSON object")
        if "plugins" in doc:
            plugins = doc["plugins"]
            if not isinstance(plugins, list) or not plugins:
                raise CNIError(errors.INVALID_NETWORK_CONFIG, f"{source}: 'plugins' must be a non-empty list")
        else:
            if "type" not in doc:
                raise CNIError(errors.INVALID_NETWORK_CONFIG, f"{source}: neither 'plugins' (a .conflist) nor 'type' (a .conf)")
            plugins = [doc]
            raw = json.dumps({"cniVersion": doc.get("cniVersion", ""), "name": doc.get("name", ""), "plugins": [doc]}).encode()
        for i, p in enumerate(plugins):
            if not isinstance(p, dict) or not isinstance(p.get("type"), str) or not p["type"]:
                raise CNIError(errors.INVALID_NETWORK_CONFIG, f"{source}: plugins[{i}] has no 'type'")
        name = doc.get("name") or ""
        if not isinstance(name, str):
            raise CNIError(errors.DECODING_FAILURE, f"{source}: 'name' must be a string")
        validate.network_name(name)
        version = doc.get("cniVersion") or ""
        if not isinstance(version, str):
            raise CNIError(errors.DECODING_FAILURE, f"{source}: 'cniVersion' must be a string")
        if version not in SUPPORTED:
            raise CNIError(errors.INCOMPATIBLE_VERSION, f"{source}: unsupported cniVersion {version!r}", f"supported: {', '.join(SUPPORTED)}")
        return cls(name=name, cni_version=version, plugins=plugins, raw=raw,
                   disable_check=bool(doc.get("disableCheck")), disable_gc=bool(doc.get("disableGC")))


def _result_shaped(result: dict) -> bool:
    """A cached result the plugins can be handed as prevResult (JSON types as the spec has them)."""
    from . import schema

    try:
        schema.check(result, schema.RESULT)
        convert(result, result.get("cniVersion") or "")
    except (CNIError, ValueError, KeyError, TypeError):
        return False
    return True


@dataclass
class RuntimeConf:
    container_id: str = ""
    netns: str = ""
    ifname: str = "eth0"
    args: list[tuple[str, str]] = field(default_factory=list)
    capability_args: dict = field(default_factory=dict)

    def cni_args(self) -> str:
        return ";".join(f"{k}={v}" for k, v in self.args)


class Runner:
    def __init__(self, cni_path: Optional[list[str]] = None, cache_dir: str = DEFAULT_CACHE_DIR, resolve=None) -> None:
        """`resolve(name)`: an in-process Plugin for podnet's own executables (see cni.invoke)."""
        self.cni_path = cni_path or DEFAULT_CNI_PATH
        self.cache_dir = cache_dir
        self.resolve = resolve

    # -- building plugin invocations ---------------------------------------------------------
    def plugin_config(self, net: ConfList, plugin: dict, rt: RuntimeConf, prev: Optional[dict]) -> bytes:
        conf = dict(plugin)
        conf["name"] = net.name
        conf["cniVersion"] = net.cni_version
        runtime = {cap: rt.capability_args[cap] for cap, on in (plugin.get("capabilities") or {}).items()
                   if on and cap in rt.capability_args}
        if runtime:
            conf["runtimeConfig"] = runtime
        else:
            conf.pop("runtimeConfig", None)
        if prev is not None:
            conf["prevResult"] = convert(prev, net.cni_version)
        else:
            conf.pop("prevResult", None)
        return json.dumps(conf).encode()

    def _env(self, command: str, rt: RuntimeConf) -> dict:
        env = dict(os.environ)
        env.update({
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": rt.container_id,
            "CNI_NETNS": rt.netns,
            "CNI_IFNAME": rt.ifname,
            "CNI_ARGS": rt.cni_args(),
            "CNI_PATH": os.pathsep.join(self.cni_path),
        })
        return env

    def _exec(self, command: str, net: ConfList, plugin: dict, rt: RuntimeConf, prev: Optional[dict]) -> Optional[dict]:
        path = find_plugin(plugin["type"], self.cni_path)
        return call_json(path, self._env(command, rt), self.plugin_config(net, plugin, rt, prev), resolve=self.resolve)

    # -- the result cache --------------------------------------------------------------------
    def cache_path(self, net: ConfList, rt: RuntimeConf) -> str:
        return os.path.join(self.cache_dir, "results", f"{net.name}-{rt.container_id}-{rt.ifname}")

    def _write_cache(self, net: ConfList, rt: RuntimeConf, result: dict) -> None:
        path = self.cache_path(net, rt)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        entry = {
            "kind": "cniCacheV1",
            "containerId": rt.container_id,
            "config": base64.b64encode(net.raw).decode(),
            "ifName": rt.ifname,
            "networkName": net.name,
            "netns": rt.netns,
            "cniArgs": [list(a) for a in rt.args],
            "capabilityArgs": rt.capability_args,
            "result": result,
        }
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            json.dump(entry, f)
        os.replace(tmp, path)

    def cached_result(self, net: ConfList, rt: RuntimeConf) -> Optional[dict]:
        """The cached ADD result, or None when there is none or it is unreadable (a corrupt cache
        file must not stop a DEL: the plugins then get no prevResult, as after a lost cache)."""
        try:
            with open(self.cache_path(net, rt)) as f:
                entry = json.load(f)
        except (OSError, ValueError, RecursionError):
            return None
        result = entry.get("result") if isinstance(entry, dict) else None
        return result if isinstance(result, dict) and _result_shaped(result) else None

    def cached_attachments(self, net: ConfList) -> list[dict]:
        out = []
        directory = os.path.join(self.cache_dir, "results")
        for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
            try:
                with open(os.path.join(directory, name)) as f:
                    entry = json.load(f)
            except (OSError, ValueError, RecursionError):
                continue
            if not isinstance(entry, dict) or entry.get("networkName") != net.name:
                continue
            cid, ifname = entry.get("containerId", ""), entry.get("ifName", "")
            if isinstance(cid, str) and isinstance(ifname, str) and cid and ifname:
                out.append({"containerID": cid, "ifname": ifname})
        return out

    # -- verbs -------------------------------------------------------------------------------
    def _validate_attachment(self, rt: RuntimeConf) -> None:
        validate.container_id(rt.container_id)
        validate.interface_name(rt.ifname)

    def add(self, net: ConfList, rt: RuntimeConf) -> dict:
        """ADD through the chain. If a plugin fails, the ones before it (and it) get a DEL in
        reverse order, as a runtime would do, so a failed ADD leaves nothing behind."""
        self._validate_attachment(rt)
        prev: Optional[dict] = None
        for i, plugin in enumerate(net.plugins):
            try:
                result = self._exec("ADD", net, plugin, rt, prev)
                if result is None:
                    raise CNIError(errors.INTERNAL, f"plugin {plugin['type']} returned no result")
            except CNIError:
                self._undo(net, net.plugins[: i + 1], rt, prev)
                raise
            result.setdefault("cniVersion", net.cni_version)
            prev = result
        final = convert(prev, net.cni_version)
        self._write_cache(net, rt, final)
        return final

    def _undo(self, net: ConfList, plugins: list[dict], rt: RuntimeConf, prev: Optional[dict]) -> None:
        for plugin in reversed(plugins):
            try:
                self._exec("DEL", net, plugin, rt, prev if verb_allowed("CHECK", net.cni_version) else None)
            except CNIError:
                pass  # best effort: the ADD's own error is what the caller must see

    def check(self, net: ConfList, rt: RuntimeConf) -> None:
        self._validate_attachment(rt)
        if not verb_allowed("CHECK", net.cni_version):
            raise CNIError(errors.INCOMPATIBLE_VERSION, f"configuration version {net.cni_version!r} does not support the CHECK command")
        if net.disable_check:
            return
        cached = self.cached_result(net, rt)
        if cached is None:
            raise CNIError(errors.INTERNAL, f"no cached result for {net.name}/{rt.container_id}/{rt.ifname}: was it added?")
        for plugin in net.plugins:
            self._exec("CHECK", net, plugin, rt, cached)

    def delete(self, net: ConfList, rt: RuntimeConf) -> None:
        self._validate_attachment(rt)
        cached = self.cached_result(net, rt) if verb_allowed("CHECK", net.cni_version) else None
        for plugin in reversed(net.plugins):
            self._exec("DEL", net, plugin, rt, cached)
        try:
            os.unlink(self.cache_path(net, rt))
        except FileNotFoundError:
            pass

    def gc(self, net: ConfList, valid: Optional[list[dict]] = None) -> None:
        if not verb_allowed("GC", net.cni_version):
            raise CNIError(errors.INCOMPATIBLE_VERSION, f"configuration version {net.cni_version!r} does not support the GC command")
        valid = self.cached_attachments(net) if valid is None else valid
        keep = {(a.get("containerID"), a.get("ifname")) for a in valid}
        for a in self.cached_attachments(net):
            if (a["containerID"], a["ifname"]) not in keep:
                try:
                    os.unlink(self.cache_path(net, RuntimeConf(container_id=a["containerID"], ifname=a["ifname"])))
                except FileNotFoundError:
                    pass
        if net.disable_gc:
            return
        rt = RuntimeConf()
        for plugin in net.plugins:
            conf = json.loads(self.plugin_config(net, plugin, rt, None))
            conf["cni.dev/valid-attachments"] = valid
            call_json(find_plugin(plugin["type"], self.cni_path), self._env("GC", rt), json.dumps(conf).encode(),
                      resolve=self.resolve)

    def status(self, net: ConfList) -> None:
        if not verb_allowed("STATUS", net.cni_version):
            raise CNIError(errors.INCOMPATIBLE_VERSION, f"configuration version {net.cni_version!r} does not support the STATUS command")
        for plugin in net.plugins:
            self._exec("STATUS", net, plugin, RuntimeConf(), None)
