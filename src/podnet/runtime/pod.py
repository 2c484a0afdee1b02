"""Run one pod's containers inside its sandbox, the part of the kubelet's pod worker that has to
stay near the processes: init containers one after the other, each to completion, then every
app container at once, each restarted on its own per restartPolicy, each with its probes.

    python -m podnet.runtime.pod SPEC.json

The kubelet writes SPEC (below) and starts this process inside the pod's namespaces, so every
container, probe and hook inherits them. Each container's ContainerStatus goes to its own state
file; a container not yet started has none. SIGTERM stops the pod: every running container gets
its preStop hook, then SIGTERM, then SIGKILL when the pod's grace period is over, all at once.

SPEC: {"restartPolicy": "Always", "grace": 30, "podIP": "10.244.1.5", "backoff": [10, 300],
       "initContainers": [C...], "containers": [C...]}
C:    {"name", "argv", "env", "state", "log", "probes": {...}, "preStop": [...], "postStart": [...]}
"""

from __future__ import annotations

import signal
import sys
import threading

from .. import fastjson as json
from .container import Container


def init_restart(pod_policy: str) -> str:
    """An init container is rerun until it succeeds, unless the pod's policy is Never."""
    return "Never" if pod_policy == "Never" else "OnFailure"


class PodRunner:
    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.grace = float(spec.get("grace", 30))
        self.stopping = threading.Event()
        self.current: list[Container] = []

    def container(self, c: dict, restart: str) -> Container:
        backoff = tuple(self.spec.get("backoff") or (10.0, 300.0))
        return Container(c["name"], c["argv"], c["state"], c.get("log", ""), restart, (float(backoff[0]), float(backoff[1])),
                         float(self.spec.get("resetAfter", 600)), self.grace, c.get("env") or {}, c.get("probes") or {},
                         c.get("preStop") or [], c.get("postStart") or [], self.spec.get("podIP") or "127.0.0.1")

    def on_signal(self, _signum: int, _frame) -> None:
        self.stopping.set()
        for c in self.current:
            c.stop(self.grace)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)
        policy = self.spec.get("restartPolicy", "Always")
        for c in self.spec.get("initContainers") or []:
            init = self.container(c, init_restart(policy))
            self.current = [init]
            if self.stopping.is_set():
                return 0
            last = self._run_all([init])[0]
            if self.stopping.is_set() or last.get("exitCode") != 0:
                return 0  # failed for good (restartPolicy Never): the pod failed, nothing else starts
        apps = [self.container(c, policy) for c in self.spec.get("containers") or []]
        self.current = apps
        if not self.stopping.is_set():
            self._run_all(apps)
        return 0

    def _run_all(self, containers: list[Container]) -> list[dict]:
        """Run containers in threads, the main thread left free for signals; their last states."""
        results: list[dict] = [{} for _ in containers]

        def one(i: int, c: Container) -> None:
            results[i] = c.run()

        threads = [threading.Thread(target=one, args=(i, c), name=c.name, daemon=True) for i, c in enumerate(containers)]
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.2)
        return results


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print(__doc__, file=sys.stderr)
        return 0 if args and args[0] in ("-h", "--help") else 2
    with open(args[0], "rb") as f:
        spec = json.loads(f.read())
    return PodRunner(spec).run()


if __name__ == "__main__":
    sys.exit(main())
