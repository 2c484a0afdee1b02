"""Run one process and keep it running, the way a container shim and the kubelet do together.

The supervisor is the process's parent for its whole life, so no exit status is ever lost, and
whoever started the supervisor may go away. It restarts the process per restart policy
(Always, OnFailure, Never) with the kubelet's back-off: the first restart at once, then after
INITIAL seconds, doubling up to MAX; a run longer than --reset-after starts over. It records
the process's state in a JSON file shaped like a Kubernetes ContainerStatus (state running /
waiting / terminated with reason, exit code and message; lastState; restartCount; ready),
written atomically, so the kubelet and the lab read it as is.

    python -m podnet.runtime.supervisor --state S.json --log OUT.log --restart Always \\
        --backoff 10:300 --name web -- busybox httpd -f -p 80

A command that cannot be started (not found, not executable) is a `StartError` with the
reason in `message`, then `CrashLoopBackOff` while waiting for the next try. SIGTERM stops the
process (SIGTERM, then SIGKILL after --grace seconds) and then the supervisor.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from .. import fastjson as json  # (`json` imports `re`: start-up time a pod's start waits for)

POLICIES = ("Always", "OnFailure", "Never")


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


class Supervisor:
    def __init__(self, argv: list[str], state_path: str, log_path: str, restart: str, name: str,
                 backoff: tuple[float, float], reset_after: float, grace: float) -> None:
        self.argv = argv
        self.state_path = state_path
        self.log_path = log_path
        self.restart = restart
        self.name = name
        self.initial, self.maximum = backoff
        self.reset_after = reset_after
        self.grace = grace
        self.child: subprocess.Popen | None = None
        self.stopping = False
        self.status: dict = {"name": name, "state": {"waiting": {"reason": "ContainerCreating"}}, "lastState": {},
                             "ready": False, "restartCount": 0, "started": False, "pid": 0, "supervisorPid": os.getpid()}

    def save(self) -> None:
        write_state(self.state_path, self.status)

    def on_signal(self, signum: int, _frame) -> None:
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            try:
                self.child.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass

    def start(self) -> tuple[bool, str]:
        env = dict(os.environ, PODNET_RESTART_COUNT=str(self.status["restartCount"]))
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

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)
        delay = 0.0  # the first restart is immediate, as the kubelet does it
        self.save()
        while True:
            started_at = now()
            t0 = time.monotonic()
            ok, error = self.start()
            if ok:
                self.status.update(state={"running": {"startedAt": started_at}}, ready=True, started=True, pid=self.child.pid)
                self.save()
                code = self._wait()
                exit_code, reason = exit_reason(code)
                terminated = {"exitCode": exit_code, "reason": reason, "startedAt": started_at, "finishedAt": now()}
            else:
                terminated = {"exitCode": 128, "reason": "StartError", "message": error, "startedAt": started_at,
                              "finishedAt": now()}
            self.status.update(state={"terminated": terminated}, ready=False, started=False, pid=0)
            self.save()
            if self.stopping:
                return 0
            if self.restart == "Never" or (self.restart == "OnFailure" and terminated["exitCode"] == 0):
                return 0
            if time.monotonic() - t0 >= self.reset_after:
                delay = 0.0  # it ran long enough: this crash starts a new back-off
            self.status["lastState"] = {"terminated": terminated}
            if delay:
                self.status["state"] = {"waiting": {"reason": "CrashLoopBackOff",
                                                    "message": f"back-off {delay:g}s restarting failed container={self.name}"}}
                self.save()
                if self._sleep(delay):
                    self.status["state"] = {"terminated": terminated}
                    self.save()
                    return 0
            delay = min(delay * 2, self.maximum) if delay else self.initial
            self.status["restartCount"] += 1

    def _wait(self) -> int:
        """The child's exit code (negative: killed by that signal); on stop, SIGTERM then SIGKILL."""
        assert self.child is not None
        deadline = None
        while True:
            try:
                return self.child.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass
            if self.stopping:
                deadline = deadline or time.monotonic() + self.grace
                if time.monotonic() >= deadline:
                    self.child.kill()

    def _sleep(self, seconds: float) -> bool:
        """Wait out a back-off; True when told to stop meanwhile."""
        end = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < end:
            time.sleep(min(0.1, end - time.monotonic()))
        return self.stopping


def command(argv: list[str], state: str, log: str = "", restart: str = "Always", name: str = "main",
            backoff: str = "10:300", reset_after: float = 600.0, grace: float = 5.0, python: str = sys.executable) -> list[str]:
    """The command line that runs `argv` under a supervisor."""
    return [python, "-m", "podnet.runtime.supervisor", "--state", state, "--log", log, "--restart", restart,
            "--name", name, "--backoff", backoff, "--reset-after", f"{reset_after:g}", "--grace", f"{grace:g}",
            "--", *argv]


USAGE = """usage: python -m podnet.runtime.supervisor --state FILE [--log FILE] [--restart Always|OnFailure|Never]
        [--name NAME] [--backoff INITIAL:MAX] [--reset-after S] [--grace S] -- COMMAND [ARGS...]

  --state FILE        JSON file to keep the process's status in (required)
  --log FILE          file that receives the process's stdout and stderr (appended)
  --restart POLICY    Always (default), OnFailure or Never
  --name NAME         the name recorded in the status (default: main)
  --backoff I:M       restart back-off in seconds: at once, then I doubling to M (default 10:300, as the kubelet)
  --reset-after S     a run this long starts the back-off over (default 600)
  --grace S           seconds between SIGTERM and SIGKILL when stopped (default 5)
"""


class UsageError(ValueError):
    pass


def parse_backoff(text: str) -> tuple[float, float]:
    try:
        initial, _, maximum = text.partition(":")
        pair = (float(initial), float(maximum or initial))
    except ValueError:
        raise UsageError(f"--backoff {text!r}: give INITIAL:MAX in seconds, e.g. 10:300") from None
    if not 0 < pair[0] <= pair[1]:
        raise UsageError(f"--backoff {text!r}: need 0 < INITIAL <= MAX")
    return pair


def parse_args(argv: list[str]) -> dict:
    """The options, by hand: argparse alone costs 11 ms of start-up, and a pod's start waits
    for this process."""
    opts: dict = {"state": "", "log": "", "restart": "Always", "name": "main", "backoff": (10.0, 300.0),
                  "reset_after": 600.0, "grace": 5.0, "command": []}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            opts["command"] = argv[i + 1:]
            break
        if arg in ("-h", "--help"):
            raise UsageError("")
        key, eq, value = arg.partition("=")
        name = key[2:].replace("-", "_") if key.startswith("--") else ""
        if name not in opts or name == "command":
            raise UsageError(f"unknown option {arg!r}")
        if not eq:
            i += 1
            if i >= len(argv):
                raise UsageError(f"{key} needs a value")
            value = argv[i]
        if name == "backoff":
            opts[name] = parse_backoff(value)
        elif name in ("reset_after", "grace"):
            try:
                opts[name] = float(value)
            except ValueError:
                raise UsageError(f"{key} {value!r}: give a number of seconds") from None
        elif name == "restart" and value not in POLICIES:
            raise UsageError(f"--restart {value!r}: one of {', '.join(POLICIES)}")
        else:
            opts[name] = value
        i += 1
    if not opts["state"]:
        raise UsageError("--state is required")
    if not opts["command"]:
        raise UsageError("give the command after --")
    return opts


def main(argv: list[str] | None = None) -> int:
    try:
        o = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as e:
        print(f"{__doc__}\n{USAGE}" if not str(e) else f"{USAGE}\nerror: {e}", file=sys.stderr)
        return 0 if not str(e) else 2
    sup = Supervisor(o["command"], o["state"], o["log"], o["restart"], o["name"], o["backoff"], o["reset_after"], o["grace"])
    return sup.run()


if __name__ == "__main__":
    sys.exit(main())
