"""Executing a CNI plugin over the exec protocol (environment + stdin in, stdout out).

`find_plugin` searches CNI_PATH as libcni does. When the plugin found is one of podnet's own
executables (they carry a marker line) and the caller's `resolve` returns a Plugin for its
name (`podnet.plugins.registry.in_process`), `call` runs it in-process through the same
dispatcher instead of starting another interpreter: the observable protocol is the same, the
cost is not. The resolver is injected: this layer knows no plugin.
"""

from __future__ import annotations

from .. import fastjson as json
import os

from . import errors
from .errors import CNIError

MARKER = b"# podnet-cni-plugin: "


def find_plugin(name: str, dirs: list[str]) -> str:
    if not name or "/" in name or name in (".", ".."):
        raise CNIError(errors.INVALID_NETWORK_CONFIG, f"invalid plugin name {name!r}")
    for d in dirs:
        path = os.path.join(d, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise CNIError(errors.INVALID_NETWORK_CONFIG, f'failed to find plugin "{name}" in path {dirs}')


def podnet_plugin_name(path: str) -> str | None:
    """The podnet plugin an executable is, from its marker line, or None for anything else."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return None
    for line in head.splitlines():
        if line.startswith(MARKER):
            return line[len(MARKER):].decode().strip()
    return None


def call(path: str, env: dict, stdin: bytes, *, resolve=None) -> tuple[int, bytes, bytes]:
    """Run one plugin; return (exit code, stdout, stderr). `resolve(name)` may return an
    in-process Plugin for one of podnet's own executables."""
    name = podnet_plugin_name(path) if resolve is not None else None
    plugin = resolve(name) if name else None
    if plugin is not None:
        from .skel import dispatch

        code, out = dispatch(plugin, env, stdin)
        return code, out.encode(), b""
    import subprocess  # lazily: the in-process path above never needs it

    try:
        proc = subprocess.run([path], input=stdin, env=env, capture_output=True)
    except OSError as e:
        raise CNIError(errors.INTERNAL, f"failed to execute plugin {path}: {e}") from None
    return proc.returncode, proc.stdout, proc.stderr


def call_json(path: str, env: dict, stdin: bytes, *, resolve=None) -> dict | None:
    """Run a plugin; parse its result; turn its error JSON (or a crash) into CNIError."""
    code, out, err = call(path, env, stdin, resolve=resolve)
    if code != 0:
        try:
            raise CNIError.from_dict(json.loads(out))
        except (ValueError, AttributeError):
            text = (err or out).decode(errors="replace").strip()
            raise CNIError(errors.INTERNAL, f"plugin {os.path.basename(path)} failed (exit {code}): {text}") from None
    if not out.strip():
        return None
    try:
        return json.loads(out)
    except ValueError as e:
        raise CNIError(errors.DECODING_FAILURE, f"plugin {os.path.basename(path)} printed invalid JSON: {e}") from None
