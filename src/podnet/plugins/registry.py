"""The plugins podnet ships, by the name a network config gives as `type`.

`podnet cni install` and the agent write one executable per entry; `in_process` is the
resolver the CNI invoker and runner are given, so an IPAM call from bridge or ptp to podnet's
own host-local runs in the caller's process instead of starting an interpreter.
"""

from __future__ import annotations

from ..cni import install as _install

PLUGINS = {
    "bridge": "podnet.plugins.bridge",
    "host-local": "podnet.plugins.host_local",
    "loopback": "podnet.plugins.loopback",
    "portmap": "podnet.plugins.portmap",
    "ptp": "podnet.plugins.ptp",
    "routed": "podnet.plugins.routed",
    "static": "podnet.plugins.static",
    "podnet": "podnet.plugins.podnet",
}


def in_process(name: str):
    """The Plugin to run in-process for one of podnet's executables, or None (exec it):
    host-local (files only), static (nothing at all) and loopback (one link in the container's namespace, entered by
    the calling thread and left again), which cost far less than an interpreter start."""
    if name == "host-local":
        from . import host_local

        return host_local.PLUGIN
    if name == "loopback":
        from . import loopback

        return loopback.PLUGIN
    if name == "static":
        from . import static

        return static.PLUGIN
    return None


def install(directory: str, python: str = "", names: list[str] | None = None) -> list[str]:
    """Write every plugin executable into `directory`; their paths."""
    return _install.install(directory, PLUGINS, python, names)
