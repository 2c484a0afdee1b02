"""A real client: Debian's podman (CNI backend, runc) networks its containers with our plugins.

podman runs inside a private node namespace (`ip netns exec`), in that command's private
mount namespace: cgroup hierarchies are re-mounted there for runc, and podman's own netns
mounts never reach the host. Containers use a busybox-static rootfs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile

import pytest

pytestmark = [pytest.mark.root, pytest.mark.slow]
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]  # within this sandbox's hard limits


def cgroup_prelude() -> str:
    """Shell commands re-creating this machine's cgroup mounts inside a fresh /sys."""
    lines = []
    with open("/proc/self/mountinfo") as f:
        mounts = [l.split() for l in f]
    for m in mounts:
        mountpoint, sep = m[4], m.index("-")
        fstype, opts = m[sep + 1], m[sep + 3]
        if not mountpoint.startswith("/sys/fs/cgroup"):
            continue
        if fstype == "tmpfs" and mountpoint == "/sys/fs/cgroup":
            lines.append("mount -t tmpfs cgroup_root /sys/fs/cgroup")
        elif fstype == "cgroup2":
            lines.append(f"mkdir -p {mountpoint} && mount -t cgroup2 none {mountpoint}")
        elif fstype == "cgroup":
            keep = [o for o in opts.split(",") if o not in ("rw", "ro", "relatime", "nosuid", "nodev", "noexec")]
            if any(o.startswith("name=") for o in keep):
                keep = ["none"] + keep
            lines.append(f"mkdir -p {mountpoint} && mount -t cgroup -o {','.join(keep)} cgroup {mountpoint}")
    return "; ".join(lines)


@pytest.fixture
def podman_env(tmp_path, ours):
    if not shutil.which("podman") or not shutil.which("runc") or not os.path.exists("/bin/busybox"):
        pytest.skip("podman, runc and busybox-static are needed")
    rootfs = tmp_path / "rootfs"
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp"):
        (rootfs / d).mkdir(parents=True)
    shutil.copy("/bin/busybox", rootfs / "bin" / "busybox")
    for tool in ("sh", "ping", "sleep", "ip", "cat"):
        os.symlink("busybox", rootfs / "bin" / tool)
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    netconf = tmp_path / "netconf"
    netconf.mkdir()
    (netconf / "pnnet.conflist").write_text(json.dumps({
        "cniVersion": "0.4.0", "name": "pnnet", "plugins": [
            {"type": "bridge", "bridge": "pnpod0", "isGateway": True, "ipMasq": True, "hairpinMode": True,
             "ipam": {"type": "host-local", "dataDir": str(tmp_path / "ipam"),
                      "ranges": [[{"subnet": "10.89.0.0/24", "gateway": "10.89.0.1"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ]}))
    (tmp_path / "containers.conf").write_text(
        f'[network]\nnetwork_backend = "cni"\ncni_plugin_dirs = ["{ours}"]\nnetwork_config_dir = "{netconf}"\n'
        '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n')
    return tmp_path, rootfs


def test_podman_containers_get_our_network_and_reach_each_other(netns, podman_env):
    tmp, rootfs = podman_env
    node = netns.new("podman")
    runroot = tempfile.mkdtemp(prefix="pn-run-")  # podman wants a runroot path under 50 characters
    podman = (f"env CONTAINERS_CONF={tmp}/containers.conf podman --root {tmp}/root --runroot {runroot} "
              "--cgroup-manager cgroupfs")
    run = f"{podman} run --network pnnet {' '.join(ULIMITS)}"
    image = f"--rootfs {rootfs}"  # takes the image's place: options must come before it
    script = "; ".join([
        "set -e",
        cgroup_prelude(),
        f"{run} -d --name a {image} sleep 120 >/dev/null",
        f"A=$({podman} inspect a --format '{{{{.NetworkSettings.Networks.pnnet.IPAddress}}}}')",
        'echo "A=$A"',
        f"{run} --rm --name b {image} sh -c \"ip -4 -o addr show eth0; ping -c 2 -W 2 $A\"",
        f"{podman} rm -f -t 0 a >/dev/null",
    ])
    try:
        r = subprocess.run(["ip", "netns", "exec", node, "sh", "-c", script], capture_output=True, text=True, timeout=240)
    finally:
        subprocess.run(["ip", "netns", "exec", node, "sh", "-c", f"{cgroup_prelude()}; {podman} rm -af -t 0"],
                       capture_output=True, timeout=120)
        subprocess.run(["rm", "-rf", f"{tmp}/root", runroot], capture_output=True)
    assert r.returncode == 0, r.stdout + r.stderr
    a_ip = r.stdout.split("A=")[1].split()[0]
    assert a_ip.startswith("10.89.0."), r.stdout
    assert " 0% packet loss" in r.stdout, r.stdout
    # every allocation was released when podman removed the containers
    assert [f for f in os.listdir(tmp / "ipam" / "pnnet") if f[0].isdigit()] == []
