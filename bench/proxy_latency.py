#!/usr/bin/env python3
"""Network programming latency, end to end as a user sees it: in a 2-node lab, the time from
`podnet apply -f` of one new Service until a pod on the other node connects to its ClusterIP,
with 10 services installed and then with 10,000 more (each Service selects the same pod), and
the time to apply the 10,000 and have the last one answer; the agent's memory (RSS) at 10k.
The reference is the same measurement at 10 services: the goal is a ratio <= 1.5."""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from podnet.lab import topology  # noqa: E402
from podnet.lab.state import LabState  # noqa: E402
from podnet.runtime.supervisor import read_state  # noqa: E402
from cli_apply import PODNET, apply, podnet  # noqa: E402

WAITER = ("import socket,sys,time\nip=sys.argv[1];end=time.time()+float(sys.argv[2])\n"
          "while time.time()<end:\n s=socket.socket();s.settimeout(0.05)\n"
          " try:\n  s.connect((ip,80));print(time.time());sys.exit(0)\n except OSError: time.sleep(0.002)\n finally: s.close()\n"
          "sys.exit(1)")


def service(name: str, ip: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"clusterIP": ip, "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}


def waiter(ip: str, limit: float) -> subprocess.Popen:
    return subprocess.Popen([*PODNET, "exec", "client", "--", sys.executable, "-c", WAITER, ip, str(limit)],
                            stdout=subprocess.PIPE, text=True)


def reachable_after(directory: str, objs: list[dict], ip: str, limit: float = 120) -> tuple[float, float] | None:
    """(seconds for `podnet apply`, seconds until `ip`:80 answers from the client pod), or None."""
    w = waiter(ip, limit)
    time.sleep(1.0)  # the waiter polls before the service exists
    t0 = time.time()
    apply(directory, objs)
    t_apply = time.time() - t0
    out, _ = w.communicate(timeout=limit + 30)
    if w.returncode:
        print(f"  {ip} never answered within {limit:g} s", file=sys.stderr)
        return None
    return t_apply, float(out.strip().splitlines()[-1]) - t0


def rss_mb(state: LabState, node: str) -> float | None:
    pid = (read_state(topology.agent_state_path(state, node)) or {}).get("pid")
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024
    except (OSError, StopIteration, TypeError, ValueError):
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--services", type=int, default=10000, help="how many services the big case adds")
    ap.add_argument("--samples", type=int, default=3)
    args = ap.parse_args()
    name = "pl" + uuid.uuid4().hex[:4]
    directory = tempfile.mkdtemp(prefix="pn-bench-")
    os.environ["PODNET_LAB_DIR"] = directory
    try:
        state = topology.up(name, directory, 2, "vxlan", "sqlite")
        apply(directory, [
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
             "spec": {"nodeName": "node2", "containers": [{"name": "w", "command": [
                 sys.executable, "-m", "podnet.lab.echo", "--port", "8080"]}]}},
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
             "spec": {"nodeName": "node1", "containers": [{"name": "c", "command": ["sleep", "3600"]}]}}])
        r = podnet("wait", "--for=condition=Ready", "pod/web", "pod/client", "--timeout", "60s")
        if r.returncode:
            raise RuntimeError(f"pods not ready: {r.stdout}{r.stderr}")
        apply(directory, [service(f"s{i}", f"10.96.200.{i + 1}") for i in range(10)])
        small = [reachable_after(directory, [service(f"p{i}", f"10.96.201.{i + 1}")], f"10.96.201.{i + 1}")
                 for i in range(args.samples)]
        big_list = [service(f"b{i}", f"10.96.{100 + i // 250}.{i % 250 + 1}") for i in range(args.services)]
        last = big_list[-1]["spec"]["clusterIP"]
        bulk = reachable_after(directory, big_list, last, limit=900)
        big = [reachable_after(directory, [service(f"q{i}", f"10.96.202.{i + 1}")], f"10.96.202.{i + 1}")
               for i in range(args.samples)]
        rss = rss_mb(state, "node1")
    finally:
        topology.down(name, directory)
        shutil.rmtree(directory, ignore_errors=True)
    total = 10 + args.samples + args.services
    print(f"network programming latency: podnet apply of one Service -> first connect from a pod on another node "
          f"(ms; median of {args.samples})")
    if not all(small) or not all(big) or bulk is None:
        print("  (some services never answered: see above)")
        return
    lat_small = statistics.median(s[1] for s in small) * 1000
    lat_big = statistics.median(s[1] for s in big) * 1000
    for count, lat, runs in ((10 + args.samples, lat_small, small), (total, lat_big, big)):
        cli = statistics.median(s[0] for s in runs) * 1000
        print(f"  {count:>6} services  {lat:8.0f}   (`podnet apply` itself returned after {cli:.0f})")
    ratio = lat_big / lat_small
    print(f"  ratio {ratio:.2f}x ({'goal met' if ratio <= 1.5 else 'goal missed'}: <= 1.5x)")
    print(f"  {args.services} services in one List: applied in {bulk[0]:.1f} s, the last one answers after {bulk[1]:.1f} s")
    if rss is not None:
        print(f"  agent RSS with {total} services: {rss:.0f} MB ({'goal met' if rss < 300 else 'goal missed'}: < 300 MB)")


if __name__ == "__main__":
    main()
