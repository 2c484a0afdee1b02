#!/usr/bin/env python3
"""Ingress: throughput and latency through the lab's nginx Ingress controller, and the time for
an Ingress change to serve.

In a 2-node lab with `--ingress`, 4 backend pods each run nginx serving a short answer.
1. Requests/s and p99 latency with keep-alive connections in several client processes, all in
   node1's namespace (the one place that reaches both the pods and the LoadBalancer address):
   (a) to the backend pods directly (the reference: the same nginx, no Ingress in between) and
   (b) through the Ingress (LoadBalancer address -> the controller's nginx -> the pods).
   Printed as ratios to the reference. (c) The Ingress again, from outside the cluster (the
   underlay), for the absolute figure a client there sees.
2. The time from `podnet apply` of one new Ingress to its host answering 200 through the
   controller, with 10 Ingresses installed and with 1,000 (the ratio says what the cluster's
   size costs a change).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from podnet.kernel import netns as kns  # noqa: E402
from podnet.lab import ingress as ingress_mod  # noqa: E402
from podnet.lab import topology  # noqa: E402
from cli_apply import apply, podnet  # noqa: E402

BACKEND = ("d=$(mktemp -d); printf '%s' \"events {} http { access_log off; server { listen 8080; "
           "location / { return 200 \\\"$POD_NAME\\n\\\"; } } }\" > $d/nginx.conf; "
           "exec nginx -p $d -c $d/nginx.conf -g \"daemon off; pid $d/nginx.pid; error_log stderr;\"")


def ingress(name: str, host: str) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name, "namespace": "default"},
            "spec": {"rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
                "service": {"name": "web", "port": {"number": 80}}}}]}}]}}


# -- load -------------------------------------------------------------------------------------------
def _worker(args: tuple) -> tuple[int, int, list[float]]:
    """One process: `conns` keep-alive connections in turn for `seconds`; (ok, failed, latencies)."""
    underlay, targets, host, seconds = args
    ok = failed = 0
    lat: list[float] = []
    with kns.entered(f"/var/run/netns/{underlay}"):
        conns = [http.client.HTTPConnection(ip, port, timeout=5) for ip, port in targets]
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end:
            conn = conns[i % len(conns)]
            i += 1
            t0 = time.perf_counter()
            try:
                conn.request("GET", "/", headers={"Host": host})
                r = conn.getresponse()
                r.read()
                if r.status == 200:
                    ok += 1
                    lat.append(time.perf_counter() - t0)
                else:
                    failed += 1
            except (OSError, http.client.HTTPException):
                failed += 1
                conn.close()
                time.sleep(0.01)  # (a refused connection fails at once: don't spin)
    return ok, failed, lat


def load(underlay: str, targets: list[tuple[str, int]], host: str, seconds: float, procs: int) -> dict:
    with multiprocessing.Pool(procs) as pool:
        parts = pool.map(_worker, [(underlay, targets, host, seconds)] * procs)
    lat = sorted(x for p in parts for x in p[2])
    ok, failed = sum(p[0] for p in parts), sum(p[1] for p in parts)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else float("nan")
    return {"rps": ok / seconds, "p99": p99, "p50": statistics.median(lat) * 1000 if lat else float("nan"), "failed": failed}


def serving_after(underlay: str, address: str, directory: str, name: str, host: str, limit: float = 120) -> float | None:
    """Seconds from `podnet apply` of a new Ingress until its host answers 200, or None."""
    t0 = time.monotonic()
    apply(directory, [ingress(name, host)])
    with kns.entered(f"/var/run/netns/{underlay}"):
        while time.monotonic() - t0 < limit:
            conn = http.client.HTTPConnection(address, 80, timeout=2)
            try:
                conn.request("GET", "/", headers={"Host": host})
                if conn.getresponse().status == 200:
                    return time.monotonic() - t0
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()
            time.sleep(0.005)
    print(f"  {host} never served within {limit:g} s", file=sys.stderr)
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5, help="length of each load run")
    ap.add_argument("--procs", type=int, default=2, help="client processes")
    ap.add_argument("--ingresses", type=int, default=1000, help="how many Ingresses the big case has")
    ap.add_argument("--samples", type=int, default=3)
    args = ap.parse_args()
    if shutil.which("nginx") is None:
        print("ingress bench: nginx is not installed (apt-get install nginx); skipped")
        return
    name = "in" + uuid.uuid4().hex[:4]
    directory = tempfile.mkdtemp(prefix="pn-bench-")
    os.environ["PODNET_LAB_DIR"] = directory
    try:
        state = topology.up(name, directory, 2, "vxlan", "sqlite")
        address = ingress_mod.start(state)
        apply(directory, [
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
             "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}}, "template": {
                 "metadata": {"labels": {"app": "web"}},
                 "spec": {"containers": [{"name": "nginx", "command": ["sh", "-c", BACKEND],
                                          "ports": [{"containerPort": 8080}],
                                          "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}}}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
             "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}])
        r = podnet("wait", "--for=condition=Available", "deployment/web", "--timeout", "90s")
        if r.returncode:
            raise RuntimeError(f"backends not ready: {r.stdout}{r.stderr}")
        pods = json.loads(podnet("get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]
        direct = [(p["status"]["podIP"], 8080) for p in pods]
        small = [ingress(f"f{i}", f"f{i}.bench.example") for i in range(10)]
        apply(directory, small)
        if serving_after(state.underlay, address, directory, "warm", "warm.bench.example") is None:
            raise RuntimeError("the Ingress never served")
        client = state.node("node1").netns
        ref = load(client, direct, "x", args.seconds, args.procs)
        via = load(client, [(address, 80)], "f0.bench.example", args.seconds, args.procs)
        outside = load(state.underlay, [(address, 80)], "f0.bench.example", args.seconds, args.procs)
        t_small = [serving_after(state.underlay, address, directory, f"s{i}", f"s{i}.bench.example")
                   for i in range(args.samples)]
        apply(directory, [ingress(f"g{i}", f"g{i}.bench.example") for i in range(args.ingresses - 10)])
        serving_after(state.underlay, address, directory, "warm2", "warm2.bench.example", limit=600)
        t_big = [serving_after(state.underlay, address, directory, f"b{i}", f"b{i}.bench.example")
                 for i in range(args.samples)]
    finally:
        topology.down(name, directory)
        shutil.rmtree(directory, ignore_errors=True)
    print(f"ingress: {args.procs} client processes with keep-alive connections, {args.seconds:g} s per case")
    print(f"  {'case':44} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'failed':>7}")
    for label, m in (("node1 -> pods directly (nginx, reference)", ref), ("node1 -> through the Ingress", via),
                     ("underlay (outside) -> through the Ingress", outside)):
        print(f"  {label:44} {m['rps']:9.0f} {m['p50']:8.2f} {m['p99']:8.2f} {m['failed']:7d}")
    if ref["rps"] and via["rps"]:
        print(f"  Ingress / direct: {via['rps'] / ref['rps']:.2f}x req/s, {via['p99'] / ref['p99']:.2f}x p99 latency")
    else:
        print("  (a case had no successful request: no ratio)")
    print(f"apply of one new Ingress -> its host serves through the controller (ms; median of {args.samples})")
    if not all(t_small) or not all(t_big):
        print("  (some Ingresses never served: see above)")
        return
    small_ms, big_ms = statistics.median(t_small) * 1000, statistics.median(t_big) * 1000
    print(f"  {10 + args.samples + 1:>6} Ingresses  {small_ms:8.0f}")
    print(f"  {args.ingresses + 2 * args.samples + 2:>6} Ingresses  {big_ms:8.0f}")
    print(f"  ratio {big_ms / small_ms:.2f}x")


if __name__ == "__main__":
    main()
