"""One container's life, as a container shim and the kubelet run it together: start its process,
restart it per restart policy with the kubelet's back-off, run its probes, run its lifecycle
hooks, stop it gracefully, and keep its ContainerStatus in a JSON file.

The back-off is the kubelet's: the first restart at once, then after INITIAL seconds, doubling
up to MAX; a run longer than `reset_after` starts over. The status file is shaped like a
Kubernetes ContainerStatus (state running / waiting / terminated with reason, exit code and
message; lastState; restartCount; ready; started), written atomically after every change, so the
kubelet reads it as is.

Probes (podnet.runtime.probes) run in threads of their own, one per probe, for one run of the
process at a time: a startupProbe holds the other two back until it passes; a failing
liveness or startup probe kills the process (preStop first, SIGTERM, SIGKILL after the grace
period) and the restart policy decides what follows; the readiness probe sets `ready`.
A container without a readiness probe is ready once it runs (and its startup probe passed).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

from .. import fastjson as json  # (`json` imports `re`: start-up time a pod's start waits for)

POLICIES = ("Always", "OnFailure", "Never")
POLL = 0.1             # how often a running process is checked for exit, stop or kill (s)
HOOK_LIMIT = 30.0      # the longest a postStart hook may take
LIVENESS_KILL_GRACE = 30.0


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def write_state(path: str, status: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(status))
    os.replace(tmp, path)


def read_state(path: str) -> dict | None:
    """The last recorded status, or None when there is none (yet) or it cannot be read."""
    try:
        with open(path, "rb") as f:
            status = json.loads(f.read())
    except (OSError, ValueError):
        return None
    return status if isinstance(status, dict) else None


def exit_reason(code: int) -> tuple[int, str]:
    """(exit code as Kubernetes reports it, reason): a signal N is 128+N, as a shell says."""
    if code < 0:
        return 128 - code, "Error"
    return code, "Completed" if code == 0 else "Error"


class Container:
    """One container. `run()` returns when the process has ended for good (restart policy) or
    the container was stopped; `stop()` may be called from any thread or a signal handler."""

    def __init__(self, name: str, argv: list[str], state_path: str, log_path: str = "", restart: str = "Always",
                 backoff: tuple[float, float] = (10.0, 300.0), reset_after: float = 600.0, grace: float = 30.0,
                 env: dict[str, str] | None = None, probes: dict[str, dict] | None = None,
                 pre_stop: list[str] | None = None, post_start: list[str] | None = None, pod_ip: str = "127.0.0.1") -> None:
        self.name, self.argv, self.restart = name, argv, restart
        self.state_path, self.log_path = state_path, log_path
        self.initial, self.maximum = backoff
        self.reset_after, self.grace = reset_after, grace
        self.env = dict(os.environ if env is None else env)
        self.probes = probes or {}
        self.pre_stop, self.post_start = pre_stop or [], post_start or []
        self.pod_ip = pod_ip
        self.child: subprocess.Popen | None = None
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.stop_deadline = float("inf")
        self.kill_reason = ""              # set by a failing probe: end this run
        self.run_over = threading.Event()  # the current run's process has exited (probes stop)
        self.readiness_ok = False
        self.status: dict = {"name": name, "state": {"waiting": {"reason": "ContainerCreating"}}, "lastState": {},
                             "ready": False, "restartCount": 0, "started": False, "pid": 0, "supervisorPid": os.getpid()}

    # -- the status file ------------------------------------------------------------------------
    def save(self) -> None:
        with self.lock:
            write_state(self.state_path, self.status)

    def _set_ready(self) -> None:
        """ready = running, started, and the readiness probe (if any) passing. Call under lock."""
        running = "running" in self.status["state"]
        ok = self.readiness_ok if "readinessProbe" in self.probes else True
        self.status["ready"] = bool(running and self.status["started"] and ok)

    # -- control, from other threads ------------------------------------------------------------
    def stop(self, grace: float | None = None) -> None:
        """Stop for good: preStop, SIGTERM, SIGKILL once `grace` (default: the container's) is over."""
        deadline = time.monotonic() + (self.grace if grace is None else grace)
        self.stop_deadline = min(self.stop_deadline, deadline)
        self.stopping.set()

    def kill(self, reason: str) -> None:
        """End the current run (a failed liveness or startup probe); the restart policy decides."""
        if not self.kill_reason:
            self.kill_reason = reason

    # -- the run loop ---------------------------------------------------------------------------
    def _start(self) -> tuple[bool, str]:
        env = dict(self.env, PODNET_RESTART_COUNT=str(self.status["restartCount"]))
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.child = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
            return True, ""
        except OSError as e:
            self.child = None
            if isinstance(e, FileNotFoundError):
                return False, f'exec: "{self.argv[0]}": executable file not found in $PATH'
            return False, f'exec: "{self.argv[0]}": {e.strerror}'
        finally:
            if log is not subprocess.DEVNULL:
                log.close()

    def run(self) -> dict:
        """Run until the process is done for good; its last `terminated` state."""
        delay = 0.0  # the first restart is immediate, as the kubelet does it
        self.save()
        while True:
            started_at = now()
            t0 = time.monotonic()
            ok, error = (False, "") if self.stopping.is_set() else self._start()
            if ok:
                self.kill_reason, self.readiness_ok = "", False
                self.run_over = threading.Event()
                with self.lock:
                    self.status.update(state={"running": {"startedAt": started_at}}, pid=self.child.pid,
                                       started="startupProbe" not in self.probes)
                    self._set_ready()
                self.save()
                self._start_probes(t0)
                if self.post_start:
                    ok_hook, message = run_exec(self.post_start, self.env, min(HOOK_LIMIT, self.grace or HOOK_LIMIT))
                    if not ok_hook:
                        self.kill(f"PostStartHook failed: {message}")
                code, message = self._wait()
                self.run_over.set()
                exit_code, reason = exit_reason(code)
                terminated = {"exitCode": exit_code, "reason": reason, "startedAt": started_at, "finishedAt": now()}
                if message:
                    terminated["message"] = message
            elif self.stopping.is_set():
                terminated = {"exitCode": 0, "reason": "Completed", "startedAt": started_at, "finishedAt": now(),
                              "message": "stopped before it started"}
            else:
                terminated = {"exitCode": 128, "reason": "StartError", "message": error, "startedAt": started_at,
                              "finishedAt": now()}
            with self.lock:
                self.status.update(state={"terminated": terminated}, ready=False, started=False, pid=0)
            self.save()
            if self.stopping.is_set():
                return terminated
            if self.restart == "Never" or (self.restart == "OnFailure" and terminated["exitCode"] == 0):
                return terminated
            if time.monotonic() - t0 >= self.reset_after:
                delay = 0.0  # it ran long enough: this crash starts a new back-off
            with self.lock:
                self.status["lastState"] = {"terminated": terminated}
            if delay:
                with self.lock:
                    self.status["state"] = {"waiting": {"reason": "CrashLoopBackOff",
                                                        "message": f"back-off {delay:g}s restarting failed container={self.name}"}}
                self.save()
                if self.stopping.wait(delay):
                    with self.lock:
                        self.status["state"] = {"terminated": terminated}
                    self.save()
                    return terminated
            delay = min(delay * 2, self.maximum) if delay else self.initial
            with self.lock:
                self.status["restartCount"] += 1

    def _wait(self) -> tuple[int, str]:
        """The process's exit code (negative: killed by that signal) and why it was ended, if
        it was: on stop or kill, the preStop hook, then SIGTERM, then SIGKILL at the deadline."""
        assert self.child is not None
        deadline, message = None, ""
        while True:
            try:
                return self.child.wait(timeout=POLL), message
            except subprocess.TimeoutExpired:
                pass
            if deadline is None and (self.stopping.is_set() or self.kill_reason):
                if self.stopping.is_set():
                    deadline = self.stop_deadline
                else:
                    message = self.kill_reason
                    grace = self.probe_grace() or self.grace
                    deadline = time.monotonic() + grace
                if self.pre_stop:
                    run_exec(self.pre_stop, self.env, max(0.0, deadline - time.monotonic()))
                try:
                    self.child.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
            if deadline is not None:
                if self.stopping.is_set():
                    deadline = min(deadline, self.stop_deadline)
                if time.monotonic() >= deadline:
                    self.child.kill()

    def probe_grace(self) -> float:
        """A liveness or startup probe's own terminationGracePeriodSeconds, if it has one."""
        for kind in ("livenessProbe", "startupProbe"):
            value = (self.probes.get(kind) or {}).get("terminationGracePeriodSeconds")
            if value:
                return float(value)
        return 0.0

    # -- probes -----------------------------------------------------------------------------------
    def _start_probes(self, started: float) -> None:
        for kind, probe in self.probes.items():
            threading.Thread(target=self._probe_loop, args=(kind, probe, self.run_over, started),
                             name=f"{self.name}-{kind}", daemon=True).start()

    def _probe_loop(self, kind: str, probe: dict, over: threading.Event, started: float) -> None:
        from . import probes  # only containers with probes pay for socket and http.client

        if over.wait(max(0.0, started + float(probe.get("initialDelaySeconds", 0)) - time.monotonic())):
            return
        period = float(probe.get("periodSeconds", 10))
        successes = failures = 0
        while not over.is_set():
            if kind != "startupProbe" and not self.status["started"]:
                over.wait(min(period, 0.2))
                continue
            ok, message = probes.run(probe, self.pod_ip, self.env)
            if over.is_set():
                return
            successes, failures = (successes + 1, 0) if ok else (0, failures + 1)
            if kind == "startupProbe":
                if ok:
                    with self.lock:
                        self.status["started"] = True
                        self._set_ready()
                    self.save()
                    return
                if failures >= int(probe.get("failureThreshold", 3)):
                    self.kill(f"Startup probe failed: {message}")
                    return
            elif kind == "livenessProbe":
                if failures >= int(probe.get("failureThreshold", 3)):
                    self.kill(f"Container {self.name} failed liveness probe, will be restarted: {message}")
                    return
            else:
                want = self.readiness_ok
                if successes >= int(probe.get("successThreshold", 1)):
                    want = True
                elif failures >= int(probe.get("failureThreshold", 3)):
                    want = False
                if want != self.readiness_ok:
                    with self.lock:
                        self.readiness_ok = want
                        self._set_ready()
                    self.save()
            over.wait(period)


def run_exec(command: list[str], env: dict[str, str], timeout: float) -> tuple[bool, str]:
    """Run a command (an exec probe, a lifecycle hook) to completion within `timeout` seconds;
    (it exited 0, why not)."""
    if timeout <= 0:
        return False, "no time left in the grace period"
    try:
        r = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"command timed out after {timeout:g}s"
    except OSError as e:
        return False, f'exec: "{command[0]}": {e.strerror}'
    if r.returncode == 0:
        return True, ""
    output = r.stdout[-200:].decode(errors="replace").strip()
    return False, f"command {' '.join(command)!r} exited with {r.returncode}" + (f": {output}" if output else "")
