"""BIRD, run by the agent in the node's namespace: one daemon per node, its own control socket.

  - A config is installed only after `bird -p -c` accepted it; one it refuses leaves the
    running config (and the file) as they were, and the error is reported. A running BIRD
    picks the new file up with `birdc configure`.
  - `supervise` keeps BIRD running: started when absent, restarted when it dies (kill -9
    included), adopted when a previous agent started it (the pidfile). BIRD runs in its own
    session, so it outlives an agent restart and routes stay while the agent is down.
  - A BIRD started where an earlier one left `proto bird` routes in the kernel starts with
    -R (graceful restart recovery): it keeps those routes until its peers have sent theirs
    again, instead of flushing them, and peers keep its routes meanwhile (graceful restart).
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import threading
import time

from ....kernel import rtnl

RTPROT_BIRD = 12
CONF, CTL, PID, LOG = "bird.conf", "bird.ctl", "bird.pid", "bird.log"


class BirdError(RuntimeError):
    pass


def binaries() -> tuple[str, str]:
    bird, birdc = shutil.which("bird"), shutil.which("birdc")
    if not bird or not birdc:
        raise BirdError("the bgp backend needs BIRD 2 (Debian package bird2: `apt-get install bird2`): "
                        "bird and birdc are not on PATH")
    return bird, birdc


class Bird:
    def __init__(self, state_dir: str, log=lambda _m: None) -> None:
        self.dir = state_dir
        self.conf = os.path.join(state_dir, CONF)
        self.ctl = os.path.join(state_dir, CTL)
        self.pidfile = os.path.join(state_dir, PID)
        self.logfile = os.path.join(state_dir, LOG)
        self.log = log
        self.lock = threading.Lock()
        self.installed: str | None = None  # the text in bird.conf (None: not written by us yet)
        self.error = ""                    # why the last render was refused ("" when it was not)
        self.restarts = 0
        self.started = threading.Event()

    # -- configuration ------------------------------------------------------------------------
    def check(self, text: str) -> str:
        """'' when `bird -p` accepts the config, else its complaint."""
        bird, _ = binaries()
        candidate = f"{self.conf}.candidate"
        with open(candidate, "w") as f:
            f.write(text)
        proc = subprocess.run([bird, "-p", "-c", candidate], capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            return (proc.stderr or proc.stdout).strip() or f"bird -p exited with {proc.returncode}"
        return ""

    def apply(self, text: str) -> bool:
        """Install `text` if BIRD accepts it and it differs; True when it changed."""
        with self.lock:
            if self.installed is None and os.path.exists(self.conf):
                with open(self.conf) as f:
                    self.installed = f.read()
                if self.installed == text:
                    self._configure()  # a BIRD adopted from an earlier agent may run an older file
            if text == self.installed:
                return False
            problem = self.check(text)
            if problem:
                if problem != self.error:
                    self.log(f"bgp: BIRD refuses the rendered config, keeping the previous one: {problem}")
                self.error = problem
                raise BirdError(f"BIRD refuses the rendered config: {problem}")
            self.error = ""
            os.replace(f"{self.conf}.candidate", self.conf)
            self.installed = text
            self._configure()
            return True

    def _configure(self) -> None:
        """configure(), and if BIRD did not take the file, forget that it is installed: the next
        apply of the same text reads the file again and asks BIRD once more."""
        try:
            self.configure()
        except (BirdError, OSError, subprocess.SubprocessError):
            self.installed = None
            raise

    def configure(self) -> None:
        """Tell a running BIRD to read the file again (nothing to do when none runs yet)."""
        if self.pid() is None:
            return
        out = self.birdc("configure")
        if "Reconfigured" not in out and "Reconfiguration in progress" not in out and "Reconfiguration" not in out:
            raise BirdError(f"birdc configure: {out.strip()}")

    def birdc(self, *command: str, timeout: float = 10) -> str:
        _, birdc = binaries()
        proc = subprocess.run([birdc, "-s", self.ctl, *command], capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise BirdError(f"birdc {' '.join(command)}: {(proc.stderr or proc.stdout).strip()}")
        return proc.stdout

    # -- the process --------------------------------------------------------------------------
    def pid(self) -> int | None:
        """The PID of the BIRD running for this node (from its pidfile), if it is alive."""
        try:
            with open(self.pidfile) as f:
                pid = int(f.read().strip() or 0)
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() != "bird":
                    return None
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if self.ctl.encode() not in f.read():
                    return None
            return pid
        except (OSError, ValueError):
            return None

    def leftover_routes(self) -> bool:
        """Routes an earlier BIRD put in the kernel (this thread is in the node's namespace)."""
        with rtnl.Netlink() as nl:
            return any(r.protocol == RTPROT_BIRD for r in nl.routes(rtnl.AF_INET))

    def start(self) -> subprocess.Popen:
        bird, _ = binaries()
        if not os.path.exists(self.conf):
            raise BirdError("no BIRD config rendered yet")
        argv = [bird, "-f", "-c", self.conf, "-s", self.ctl, "-P", self.pidfile]
        if self.leftover_routes():
            argv.append("-R")
        log = open(self.logfile, "a")
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        finally:
            log.close()
        for _ in range(100):  # until the control socket answers
            if proc.poll() is not None:
                raise BirdError(f"bird exited at once with code {proc.returncode}; see {self.logfile}")
            if self.pid() == proc.pid and os.path.exists(self.ctl):
                break
            time.sleep(0.05)
        self.log(f"bgp: BIRD started (pid {proc.pid}{', graceful restart recovery' if '-R' in argv else ''})")
        return proc

    def supervise(self, stop: threading.Event) -> None:
        """Keep BIRD running until `stop` is set (BIRD itself is left running then)."""
        while not stop.is_set():
            pid = self.pid()
            child = None
            if pid is None:
                if not os.path.exists(self.conf):
                    stop.wait(0.2)
                    continue
                child = self.start()
                pid = child.pid
            else:
                self.log(f"bgp: adopting the running BIRD (pid {pid})")
            self.started.set()
            code = self._wait(pid, child, stop)
            if stop.is_set():
                return
            self.restarts += 1
            self.log(f"bgp: BIRD (pid {pid}) exited{f' with code {code}' if code is not None else ''}; starting it again")

    @staticmethod
    def _wait(pid: int, child: subprocess.Popen | None, stop: threading.Event) -> int | None:
        try:
            fd = os.pidfd_open(pid)
        except OSError:  # no pidfd here (an old kernel, a seccomp profile): the child, or poll /proc
            if child is not None:
                return child.wait()
            while not stop.is_set() and os.path.exists(f"/proc/{pid}"):
                stop.wait(0.5)
            return None
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            while not stop.is_set():
                if poller.poll(500):
                    break
        finally:
            os.close(fd)
        if child is not None and not stop.is_set():
            return child.wait()
        return None

    def stop(self) -> None:
        """Stop this node's BIRD (the backend is being replaced)."""
        pid = self.pid()
        if pid is not None:
            try:
                os.kill(pid, 15)
            except ProcessLookupError:
                pass


_PROTOCOL = re.compile(r"^(?P<name>\S+)\s+(?P<proto>\S+)\s+(?P<table>\S+)\s+(?P<state>\S+)\s+"
                       r"(?P<since>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?|\S+)\s*(?P<info>.*?)\s*$")


def parse_protocols(text: str) -> list[dict]:
    """`birdc show protocols` as rows: name, proto, table, state, since, info."""
    rows = []
    for line in text.splitlines():
        if line.startswith(("BIRD ", "Name ")) or not line.strip():
            continue
        m = _PROTOCOL.match(line)
        if m:
            rows.append(m.groupdict())
    return rows
