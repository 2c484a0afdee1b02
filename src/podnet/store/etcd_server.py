"""Start and stop a single-member etcd (Debian's etcd-server) inside a network namespace."""

from __future__ import annotations

import os
import shutil
import subprocess
import time


class EtcdServer:
    def __init__(self, netns: str, data_dir: str, ip: str = "127.0.0.1", port: int = 2379, log_path: str = "",
                 wrap=None) -> None:
        """`wrap(argv) -> argv`: run etcd through another program, such as a supervisor that
        restarts it (which then owns the log); `proc` is then that program."""
        self.netns = netns
        self.data_dir = data_dir
        self.ip = ip
        self.port = port
        self.log_path = log_path or os.path.join(data_dir, "etcd.log")
        self.wrap = wrap
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"etcd://{self.ip}:{self.port}"

    def start(self, timeout: float = 30.0) -> "EtcdServer":
        etcd = shutil.which("etcd")
        if etcd is None:
            raise RuntimeError("etcd is not installed (Debian package etcd-server)")
        os.makedirs(self.data_dir, exist_ok=True)
        client = f"http://{self.ip}:{self.port}"
        argv = ["ip", "netns", "exec", self.netns, etcd, "--name", "podnet", "--data-dir", os.path.join(self.data_dir, "member"),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", f"http://127.0.0.1:{self.port + 1}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.port + 1}",
                "--initial-cluster", f"podnet=http://127.0.0.1:{self.port + 1}"]
        if self.wrap is not None:
            argv = argv[:4] + self.wrap(argv[4:])
            self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        else:
            log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited with {self.proc.returncode}; see {self.log_path}")
            probe = subprocess.run(["ip", "netns", "exec", self.netns, "busybox", "wget", "-q", "-O", "-", f"{client}/health"],
                                   capture_output=True, text=True, timeout=10)
            if '"health":"true"' in probe.stdout.replace(" ", ""):
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"etcd did not become healthy in {timeout:g}s; see {self.log_path}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
