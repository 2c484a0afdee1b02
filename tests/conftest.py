"""Shared fixtures: private network namespaces (always removed) and plugin runners.

Every namespace a test makes is named `pn-<random>` and is deleted at teardown, also when the
test fails. Nothing here touches the root namespace's links, routes, sysctls or nft tables:
plugins are run *inside* a private "node" namespace with `ip netns exec`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid

import pytest

REFERENCE_DIR = "/usr/lib/cni"


def is_root() -> bool:
    return os.geteuid() == 0


def pytest_collection_modifyitems(config, items):
    if is_root() and shutil.which("ip"):
        return
    skip = pytest.mark.skip(reason="needs root and iproute2 (network namespaces)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


class Namespaces:
    """Creates uniquely named namespaces and deletes every one of them at the end."""

    def __init__(self) -> None:
        self.created: list[str] = []

    def new(self, label: str = "ns", lo_up: bool = True) -> str:
        name = f"pn-{label[:6]}-{uuid.uuid4().hex[:8]}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        self.created.append(name)
        if lo_up:
            subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        return name

    def cleanup(self) -> None:
        for name in reversed(self.created):
            # kill what still runs in it, then drop it
            pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), 9)
                except (ProcessLookupError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        self.created.clear()


@pytest.fixture
def netns():
    ns = Namespaces()
    try:
        yield ns
    finally:
        ns.cleanup()


@pytest.fixture(scope="session")
def ours(tmp_path_factory) -> str:
    """A CNI bin directory holding podnet's plugin executables."""
    from podnet.plugins.registry import install

    d = str(tmp_path_factory.mktemp("podnet-bin"))
    install(d)
    return d


@pytest.fixture(scope="session")
def reference() -> str:
    if not os.path.exists(os.path.join(REFERENCE_DIR, "bridge")):
        pytest.skip("reference plugins (Debian containernetworking-plugins) not installed")
    return REFERENCE_DIR


def ns_path(name: str) -> str:
    return f"/var/run/netns/{name}"


class PluginRun:
    def __init__(self, proc: subprocess.CompletedProcess) -> None:
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        try:
            self.json = json.loads(proc.stdout) if proc.stdout.strip() else None
        except ValueError:
            self.json = None

    @property
    def code(self):
        return (self.json or {}).get("code")

    def __repr__(self) -> str:
        return f"PluginRun(rc={self.rc}, stdout={self.stdout!r}, stderr={self.stderr!r})"


def run_plugin(bindir: str, plugin: str, command: str, conf: dict | str, *, host_ns: str | None = None,
               netns: str = "", container_id: str = "c1", ifname: str = "eth0", cni_args: str = "",
               env_drop: tuple[str, ...] = ()) -> PluginRun:
    """Run one plugin executable the way a runtime does (optionally inside a node namespace)."""
    env = dict(os.environ)
    env.update({"CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_NETNS": netns,
                "CNI_IFNAME": ifname, "CNI_ARGS": cni_args, "CNI_PATH": bindir})
    for k in env_drop:
        env.pop(k, None)
    stdin = conf if isinstance(conf, str) else json.dumps(conf)
    argv = [os.path.join(bindir, plugin)]
    if host_ns:
        argv = ["ip", "netns", "exec", host_ns, *argv]
    return PluginRun(subprocess.run(argv, input=stdin, env=env, capture_output=True, text=True, timeout=60))


def ip_json(ns: str, *args: str) -> list:
    out = subprocess.run(["ip", "-n", ns, "-j", *args], capture_output=True, text=True, check=True).stdout
    return json.loads(out or "[]")


_MAC = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
_VETH = re.compile(r"^veth[0-9a-f]{8}$")


def normalize(obj, sandbox_names: dict | None = None):
    """Mask what differs run to run (MACs, random veth names, namespace paths)."""
    if isinstance(obj, dict):
        return {k: normalize(v, sandbox_names) for k, v in obj.items()}
    if isinstance(obj, list):
        return [normalize(v, sandbox_names) for v in obj]
    if isinstance(obj, str):
        if _MAC.match(obj):
            return "<mac>"
        if _VETH.match(obj):
            return "<veth>"
        if obj.startswith("/var/run/netns/"):
            return "<netns>"
    return obj
