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

import signal
import sys

from .container import POLICIES, Container, exit_reason, now, read_state, write_state  # noqa: F401 - the API here


class Supervisor:
    """One Container run in the foreground: SIGTERM or SIGINT stop it (and then the supervisor)."""

    def __init__(self, argv: list[str], state_path: str, log_path: str, restart: str, name: str,
                 backoff: tuple[float, float], reset_after: float, grace: float) -> None:
        self.container = Container(name, argv, state_path, log_path, restart, backoff, reset_after, grace)

    def on_signal(self, _signum: int, _frame) -> None:
        self.container.stop()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)
        self.container.run()
        return 0


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
