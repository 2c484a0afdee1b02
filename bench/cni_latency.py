#!/usr/bin/env python3
"""ADD and DEL latency of podnet's bridge+host-local against the reference plugins.

Both plugin sets run on identical configs, interleaved in the same run, inside a private node
namespace (the benchmark enters it itself, so no `ip netns exec` cost is measured). Each
sample is the wall time of one plugin executable from spawn to exit, as a runtime sees it.
Prints p50/p95 per case and ours/reference ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from podnet.plugins.registry import install  # noqa: E402
from podnet.kernel import netns  # noqa: E402

REFERENCE = "/usr/lib/cni"


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def run(bindir: str, command: str, conf: dict, ns: str, cid: str) -> float:
    env = dict(os.environ, CNI_COMMAND=command, CNI_CONTAINERID=cid, CNI_NETNS=f"/var/run/netns/{ns}",
               CNI_IFNAME="eth0", CNI_PATH=bindir)
    t0 = time.perf_counter()
    p = subprocess.run([os.path.join(bindir, "bridge")], input=json.dumps(conf).encode(), env=env, capture_output=True)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{bindir}/bridge {command} failed: {p.stdout.decode()} {p.stderr.decode()}")
    return dt * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--iterations", type=int, default=40, help="ADD+DEL pairs per case (default 40)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the benchmark creates network namespaces")
    if not os.path.exists(os.path.join(REFERENCE, "bridge")):
        raise SystemExit("reference plugins missing: apt-get install containernetworking-plugins")
    tag = uuid.uuid4().hex[:6]
    node, pods = f"pn-bench-{tag}", [f"pn-bpod-{tag}-{i}" for i in range(4)]
    work = tempfile.mkdtemp(prefix="pn-bench-")
    ours = os.path.join(work, "bin")
    install(ours)
    made = []
    try:
        for ns in [node, *pods]:
            subprocess.run(["ip", "netns", "add", ns], check=True)
            made.append(ns)
        subprocess.run(["ip", "-n", node, "link", "set", "lo", "up"], check=True)
        samples: dict[tuple[str, bool, str], list[float]] = {}
        impls = {"podnet": ours, "reference": REFERENCE}
        with netns.entered(f"/var/run/netns/{node}"):
            for i in range(args.iterations + 2):  # two warm-up rounds, discarded
                for masq in (False, True):
                    for impl, bindir in impls.items():
                        conf = {"cniVersion": "1.0.0", "name": f"bench-{impl}", "type": "bridge",
                                "bridge": f"br-{impl[:6]}", "isGateway": True, "ipMasq": masq,
                                "ipam": {"type": "host-local", "dataDir": os.path.join(work, "ipam"),
                                         "subnet": "10.90.0.0/24" if impl == "podnet" else "10.91.0.0/24",
                                         "routes": [{"dst": "0.0.0.0/0"}]}}
                        pod = pods[i % len(pods)]
                        add = run(bindir, "ADD", conf, pod, f"c{i}")
                        delete = run(bindir, "DEL", conf, pod, f"c{i}")
                        if i >= 2:
                            samples.setdefault((impl, masq, "ADD"), []).append(add)
                            samples.setdefault((impl, masq, "DEL"), []).append(delete)
        print(f"CNI bridge+host-local latency, {args.iterations} samples per case (ms; lower is better)")
        print(f"{'case':<22}{'podnet p50':>12}{'p95':>8}{'reference p50':>16}{'p95':>8}{'ratio p50':>11}{'ratio p95':>11}")
        for masq in (False, True):
            for verb in ("ADD", "DEL"):
                o, r = samples[("podnet", masq, verb)], samples[("reference", masq, verb)]
                name = f"{verb} {'with' if masq else 'without'} ipMasq"
                print(f"{name:<22}{pct(o, 50):>12.1f}{pct(o, 95):>8.1f}{pct(r, 50):>16.1f}{pct(r, 95):>8.1f}"
                      f"{pct(o, 50) / pct(r, 50):>10.2f}x{pct(o, 95) / pct(r, 95):>10.2f}x")
        print(f"(stdev of podnet ADD without ipMasq: {statistics.stdev(samples[('podnet', False, 'ADD')]):.1f} ms)")
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
