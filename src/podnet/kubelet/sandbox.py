"""A pod's sandbox: its network namespace, wired through CNI exactly as a container runtime
does it (loopback, then the node's network config, with libcni's result cache), and the
resolv.conf its processes see. Made once per pod, undone step by step on any failure."""

from __future__ import annotations

import os
import shutil
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


def netns_path(name: str) -> str:
    return f"/var/run/netns/{name}"


def resolv_conf_path(netns: str) -> str:
    """`ip netns exec` bind-mounts /etc/netns/<netns>/resolv.conf over /etc/resolv.conf."""
    return f"/etc/netns/{netns}/resolv.conf"


def resolv_conf(namespace: str, nameserver: str, domain: str) -> str:
    """What the kubelet writes for dnsPolicy ClusterFirst."""
    return (f"nameserver {nameserver}\nsearch {namespace}.svc.{domain} svc.{domain} {domain}\n"
            "options ndots:5\n")


def _runtime(netns: str, container_id: str, namespace: str, name: str, ifname: str = "eth0") -> RuntimeConf:
    return RuntimeConf(container_id=container_id, netns=netns_path(netns), ifname=ifname,
                       args=[("IgnoreUnknown", "1"), ("K8S_POD_NAMESPACE", namespace), ("K8S_POD_NAME", name)])


def create(cni: CNI, netns: str, container_id: str, namespace: str, name: str, resolv: str) -> str:
    """Make the sandbox; the pod's IP. On failure nothing is left and SandboxError says why."""
    runner, made, added_lo, added = cni.runner(), False, False, False
    lo = ConfList.parse(LOOPBACK)
    try:
        net = ConfList.load(cni.conf_file)
        r = subprocess.run(["ip", "netns", "add", netns], capture_output=True, text=True)
        if r.returncode != 0:
            raise SandboxError(f"cannot create network namespace {netns}: {r.stderr.strip()}")
        made = True
        runner.add(lo, RuntimeConf(container_id=container_id, netns=netns_path(netns), ifname="lo"))
        added_lo = True
        result = runner.add(net, _runtime(netns, container_id, namespace, name))
        added = True
        ips = [ip["address"].split("/")[0] for ip in result.get("ips") or [] if ":" not in ip["address"]]
        if not ips:
            raise SandboxError("the network plugin gave the pod no IPv4 address")
        path = resolv_conf_path(netns)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(resolv)
        return ips[0]
    except CNIError as e:
        _undo(cni, netns, container_id, namespace, name, made, added_lo, added)
        raise SandboxError(f"CNI ADD failed: {e} (code {e.code})") from None
    except BaseException:
        _undo(cni, netns, container_id, namespace, name, made, added_lo, added)
        raise


def _undo(cni: CNI, netns: str, container_id: str, namespace: str, name: str, made: bool, added_lo: bool, added: bool) -> None:
    if added or added_lo:
        destroy(cni, netns, container_id, namespace, name)
    elif made:
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)


def destroy(cni: CNI, netns: str, container_id: str, namespace: str, name: str) -> None:
    """Undo a sandbox (idempotent): CNI DEL of both networks, the namespace, its resolv.conf.
    A DEL that fails is not fatal: the namespace goes anyway, and the addresses with it."""
    runner = cni.runner()
    try:
        runner.delete(ConfList.load(cni.conf_file), _runtime(netns, container_id, namespace, name))
    except (CNIError, OSError):
        pass
    try:
        runner.delete(ConfList.parse(LOOPBACK), RuntimeConf(container_id=container_id, netns=netns_path(netns), ifname="lo"))
    except (CNIError, OSError):
        pass
    pids = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True).stdout.split()
    for pid in pids:  # nothing may outlive its pod's network
        try:
            os.kill(int(pid), 9)
        except (ProcessLookupError, ValueError):
            pass
    subprocess.run(["ip", "netns", "del", netns], capture_output=True)
    shutil.rmtree(os.path.dirname(resolv_conf_path(netns)), ignore_errors=True)
