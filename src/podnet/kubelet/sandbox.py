"""A pod's sandbox, what outlives its containers: its network namespace, wired through CNI
exactly as a container runtime does it (loopback, then the node's network config, with
libcni's result cache), its UTS namespace (the hostname), and the files over /etc its
processes see (resolv.conf, hosts). The namespaces are kept by bind mounts, as `ip netns`
keeps them, so no pause process is needed and a restarted container finds them as they were.

A hostNetwork pod has no network namespace of its own: its sandbox names the node's
(`ip netns attach`), so everything else (entering it, its /etc files) works the same, and
its teardown never touches the node's network. Made once per pod, undone on any failure."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass

from ..cni.errors import CNIError
from ..cni.runner import ConfList, Runner, RuntimeConf
from ..plugins.registry import in_process

LOOPBACK = b'{"cniVersion": "1.0.0", "name": "lo", "type": "loopback"}'


@dataclass(frozen=True)
class CNI:
    """Where the node's CNI plugins and network config are (kubelet's --cni-bin-dir, --cni-conf-dir)."""
    bin_dir: str
    conf_file: str
    cache_dir: str

    def runner(self) -> Runner:
        return Runner([self.bin_dir], cache_dir=self.cache_dir, resolve=in_process)


class SandboxError(RuntimeError):
    pass


UTS_DIR = "/run/podnet/uts"


def netns_path(name: str) -> str:
    return f"/var/run/netns/{name}"


def uts_path(netns: str) -> str:
    """The pod's UTS namespace (its hostname), kept by a bind mount as `ip netns` keeps netns."""
    return os.path.join(UTS_DIR, netns)


def etc_dir(netns: str) -> str:
    """`ip netns exec` bind-mounts each file of /etc/netns/<netns>/ over the one in /etc: the
    pod's resolv.conf and hosts, seen by its processes only."""
    return f"/etc/netns/{netns}"


def resolv_conf_path(netns: str) -> str:
    return os.path.join(etc_dir(netns), "resolv.conf")


@dataclass(frozen=True)
class Sandbox:
    """What a pod's sandbox is made of: its network namespace's name (for a hostNetwork pod, a
    second name of the node's own), its hostname, and the files over /etc it sees."""
    netns: str
    container_id: str
    namespace: str
    name: str
    hostname: str
    host_network: bool = False


def _runtime(sb: Sandbox, ifname: str = "eth0") -> RuntimeConf:
    return RuntimeConf(container_id=sb.container_id, netns=netns_path(sb.netns), ifname=ifname,
                       args=[("IgnoreUnknown", "1"), ("K8S_POD_NAMESPACE", sb.namespace), ("K8S_POD_NAME", sb.name)])


def _run(argv: list[str], what: str) -> None:
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        raise SandboxError(f"cannot {what}: {(r.stderr or r.stdout).strip()}")


def create(cni: CNI, sb: Sandbox, node_ip: str = "") -> str:
    """Make the sandbox; the pod's IP (a hostNetwork pod's is the node's). On failure nothing
    is left and SandboxError says why."""
    try:
        if sb.host_network:
            if not node_ip:
                raise SandboxError("a hostNetwork pod needs the node's IP (start the kubelet with --node-ip)")
            _run(["ip", "netns", "attach", sb.netns, str(os.getpid())], f"name the node's network namespace {sb.netns}")
            ip = node_ip
        else:
            _run(["ip", "netns", "add", sb.netns], f"create network namespace {sb.netns}")
            _ipv4_only(sb.netns)
            ip = _attach(cni, sb)
        _make_uts(sb)
        return ip
    except BaseException:
        destroy(cni, sb)
        raise


def _ipv4_only(netns: str) -> None:
    """Interfaces made in the pod's namespace from now on (its eth0) get no IPv6: pod networking
    here is IPv4 (NetworkPolicy and anti-spoofing cover IPv4 only; the node drops pods' IPv6), so
    a pod need not send router solicitations and DAD probes into it. lo keeps ::1."""
    _run(["ip", "netns", "exec", netns, "sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1"],
         f"turn IPv6 off for new interfaces in {netns}")


def write_files(netns: str, files: dict[str, str]) -> None:
    """The pod's own /etc files (name -> content), e.g. resolv.conf and hosts."""
    os.makedirs(etc_dir(netns), exist_ok=True)
    for fname, content in files.items():
        with open(os.path.join(etc_dir(netns), f"{fname}.tmp"), "w") as f:
            f.write(content)
        os.replace(os.path.join(etc_dir(netns), f"{fname}.tmp"), os.path.join(etc_dir(netns), fname))


def _attach(cni: CNI, sb: Sandbox) -> str:
    """Loopback, then the node's network, through CNI; the pod's IPv4 address."""
    runner = cni.runner()
    try:
        runner.add(ConfList.parse(LOOPBACK), RuntimeConf(container_id=sb.container_id, netns=netns_path(sb.netns), ifname="lo"))
        result = runner.add(ConfList.load(cni.conf_file), _runtime(sb))
    except CNIError as e:
        raise SandboxError(f"CNI ADD failed: {e} (code {e.code})") from None
    ips = [ip["address"].split("/")[0] for ip in result.get("ips") or [] if ":" not in ip["address"]]
    if not ips:
        raise SandboxError("the network plugin gave the pod no IPv4 address")
    return ips[0]


def _make_uts(sb: Sandbox) -> None:
    path = uts_path(sb.netns)
    os.makedirs(UTS_DIR, exist_ok=True)
    open(path, "a").close()
    _run(["unshare", f"--uts={path}", "hostname", sb.hostname], f"make the pod's UTS namespace (hostname {sb.hostname})")


def pids_in(ns_file: str, kind: str) -> list[int]:
    """The processes whose `kind` namespace (net, uts) is the one bound at `ns_file`."""
    try:
        want = os.stat(ns_file)
    except OSError:
        return []
    if want.st_dev == os.stat(os.path.dirname(ns_file)).st_dev:
        return []  # not bound (a plain file): no namespace to look for
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                st = os.stat(f"/proc/{entry}/ns/{kind}")
            except OSError:
                continue
            if (st.st_ino, st.st_dev) == (want.st_ino, want.st_dev):
                out.append(int(entry))
    return out


def kill_all(sb: Sandbox) -> None:
    """Nothing may outlive its pod: every process in its UTS namespace, and for a pod with a
    network namespace of its own, every process in that too."""
    pids = set(pids_in(uts_path(sb.netns), "uts"))
    if not sb.host_network:
        pids |= set(pids_in(netns_path(sb.netns), "net"))
    pids.discard(os.getpid())
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def destroy(cni: CNI, sb: Sandbox) -> None:
    """Undo a sandbox (idempotent): its processes, CNI DEL of both networks, the namespaces, its
    files. A DEL that fails is not fatal: the namespace goes anyway, and the addresses with it."""
    kill_all(sb)
    if not sb.host_network:
        runner = cni.runner()
        try:
            runner.delete(ConfList.load(cni.conf_file), _runtime(sb))
        except (CNIError, OSError):
            pass
        try:
            runner.delete(ConfList.parse(LOOPBACK), RuntimeConf(container_id=sb.container_id, netns=netns_path(sb.netns), ifname="lo"))
        except (CNIError, OSError):
            pass
    if os.path.exists(netns_path(sb.netns)):
        subprocess.run(["ip", "netns", "del", sb.netns], capture_output=True)  # a hostNetwork pod's: only the name goes
    release_uts(sb.netns)
    shutil.rmtree(etc_dir(sb.netns), ignore_errors=True)


def release_uts(netns: str) -> None:
    path = uts_path(netns)
    if os.path.exists(path):
        subprocess.run(["umount", "-l", path], capture_output=True)
        try:
            os.unlink(path)
        except OSError:
            pass
