"""The forwarder process (forwarder.c), run by the agent's backend task: started with the
route table on its stdin, fed what changes; one that dies is started again by the agent's loop
for backend tasks (with its back-off). Closing its stdin stops it."""

from __future__ import annotations

import os
import subprocess
import threading

from . import native


class ForwarderExited(RuntimeError):
    pass


def table_diff(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """The forwarder's commands that turn table `old` into `new` (subnet -> node address)."""
    lines = [f"del {dst}" for dst in sorted(old) if dst not in new]
    lines += [f"add {dst} {via}" for dst, via in sorted(new.items()) if old.get(dst) != via]
    return lines


class Forwarder:
    def __init__(self, state_dir: str, log=print) -> None:
        self.logfile = os.path.join(state_dir, "udp-forwarder.log")
        self.log = log
        self.lock = threading.Lock()
        self.want: dict[str, str] = {}   # the table the leases ask for
        self.sent: dict[str, str] = {}   # what the running forwarder has
        self.proc: subprocess.Popen | None = None
        self.restarts = 0

    def set_table(self, want: dict[str, str]) -> tuple[int, int]:
        """(added or changed, removed) routes sent to the running forwarder (none while it is
        not running: it gets the whole table when it starts)."""
        with self.lock:
            self.want = dict(want)
            return self._send()

    def _send(self) -> tuple[int, int]:
        proc = self.proc
        if proc is None or proc.poll() is not None or proc.stdin is None:
            return 0, 0
        lines = table_diff(self.sent, self.want)
        if not lines:
            return 0, 0
        try:
            proc.stdin.write("".join(line + "\n" for line in lines).encode())
            proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return 0, 0  # it died: run() starts another, which gets the whole table
        self.sent = dict(self.want)
        removed = sum(1 for line in lines if line.startswith("del "))
        return len(lines) - removed, removed

    def run(self, args: list[str], stop: threading.Event) -> None:
        """One forwarder, until `stop` (then its stdin is closed: it exits). One that dies on its
        own raises ForwarderExited: the agent runs backend tasks again with back-off."""
        argv = [native.binary(), *args]
        with open(self.logfile, "a") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=log, stderr=log)
        with self.lock:
            self.proc, self.sent = proc, {}
            self._send()
        self.log(f"udp: forwarder started (pid {proc.pid}, {len(self.want)} routes; log {self.logfile})")
        try:
            while not stop.is_set() and proc.poll() is None:
                stop.wait(0.2)
        finally:
            with self.lock:
                self.proc = None
            if proc.poll() is None:
                try:
                    proc.stdin.close()
                    proc.wait(5)
                except (OSError, subprocess.TimeoutExpired):
                    proc.kill()
                    proc.wait()
        if not stop.is_set():
            self.restarts += 1
            raise ForwarderExited(f"the forwarder (pid {proc.pid}) exited with code {proc.returncode} (see {self.logfile})")
