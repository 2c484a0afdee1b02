#!/usr/bin/env python3
"""ADD/DEL latency of the agent-backed `podnet` plugin against the reference bridge+host-local.

One-node labs provide running agents: one with a bridge (vxlan backend: bridge + host-local
in the agent) and one routed (bgp backend: a block allocation in the datastore, then the routed
plugin). In each node's namespace, for each sample, the `podnet` plugin executable (which
forwards to the agent) and the reference bridge (with and without ipMasq) each ADD and then
DEL a pod namespace, interleaved, from the same process. Prints p50/p95 and ratios; the goal
is podnet ADD p50 <= reference-with-ipMasq ADD p50.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from podnet.kernel import netns  # noqa: E402
from podnet.lab import topology  # noqa: E402

REFERENCE = "/usr/lib/cni"


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def timed(path, command, conf, ns, cid):
    env = dict(os.environ, CNI_COMMAND=command, CNI_CONTAINERID=cid, CNI_NETNS=f"/var/run/netns/{ns}",
               CNI_IFNAME="eth0", CNI_PATH=os.path.dirname(path))
    t0 = time.perf_counter()
    p = subprocess.run([path], input=json.dumps(conf).encode(), env=env, capture_output=True)
    dt = (time.perf_counter() - t0) * 1000
    if p.returncode != 0:
        raise SystemExit(f"{path} {command}: {p.stdout.decode()}{p.stderr.decode()}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--iterations", type=int, default=40)
    ap.add_argument("--backends", default="vxlan,bgp", help="the agents to measure, comma-separated")
    args = ap.parse_args()
    tag = "b" + uuid.uuid4().hex[:4]
    directory = tempfile.mkdtemp(prefix="pn-bench-")
    pods = [f"pn-{tag}-bp{i}" for i in range(4)]
    labs = {}
    try:
        for backend in args.backends.split(","):
            labs[backend] = topology.up(f"{tag}{backend[0]}", os.path.join(directory, backend), 1, backend, "sqlite")
        for ns in pods:
            subprocess.run(["ip", "netns", "add", ns], check=True)
        cases = {}
        for backend, state in labs.items():
            node = state.nodes[0]
            ours = os.path.join(state.node_dir(node.name), "bin", "podnet")
            with open(os.path.join(state.node_dir(node.name), "net.d", "10-podnet.conflist")) as f:
                conf = {**json.load(f)["plugins"][0], "cniVersion": "1.0.0", "name": "podnet"}
            wiring = "routed" if backend == "bgp" else "bridge"
            cases[f"podnet {backend} ({wiring})"] = (ours, conf, node.netns)
        first = next(iter(labs.values())).nodes[0].netns
        ref = {"cniVersion": "1.0.0", "name": "ref", "type": "bridge", "bridge": "refbr", "isGateway": True,
               "isDefaultGateway": True, "ipam": {"type": "host-local", "dataDir": os.path.join(directory, "ref"),
                                                  "subnet": "10.99.0.0/24"}}
        cases["reference"] = (f"{REFERENCE}/bridge", ref, first)
        cases["reference ipMasq"] = (f"{REFERENCE}/bridge", {**ref, "name": "refm", "ipMasq": True, "bridge": "refbrm",
                                                             "ipam": {**ref["ipam"], "subnet": "10.98.0.0/24"}}, first)
        samples = {k: {"ADD": [], "DEL": []} for k in cases}
        for i in range(args.iterations + 2):
            for label, (path, conf, node_ns) in cases.items():
                pod = pods[i % len(pods)]
                with netns.entered(f"/var/run/netns/{node_ns}"):
                    add = timed(path, "ADD", conf, pod, f"c{i}")
                    dele = timed(path, "DEL", conf, pod, f"c{i}")
                if i >= 2:
                    samples[label]["ADD"].append(add)
                    samples[label]["DEL"].append(dele)
        print(f"CNI ADD/DEL latency in a lab node, {args.iterations} samples (ms; lower is better)")
        print(f"{'plugin':<26}{'ADD p50':>9}{'p95':>8}{'DEL p50':>10}{'p95':>8}")
        for label, s in samples.items():
            print(f"{label:<26}{pct(s['ADD'], 50):>9.1f}{pct(s['ADD'], 95):>8.1f}{pct(s['DEL'], 50):>10.1f}"
                  f"{pct(s['DEL'], 95):>8.1f}")
        ref_masq, ref_plain = pct(samples["reference ipMasq"]["ADD"], 50), pct(samples["reference"]["ADD"], 50)
        for label in [k for k in cases if k.startswith("podnet ")]:
            ours_add = pct(samples[label]["ADD"], 50)
            print(f"{label} ADD p50 / reference-with-ipMasq ADD p50 = {ours_add / ref_masq:.2f}x "
                  f"({'goal met' if ours_add <= ref_masq else 'goal not met'}: <= 1.00x); "
                  f"/ reference without ipMasq = {ours_add / ref_plain:.2f}x")
        if "podnet bgp (routed)" in samples and "podnet vxlan (bridge)" in samples:
            print(f"routed ADD p50 / bridge ADD p50 = "
                  f"{pct(samples['podnet bgp (routed)']['ADD'], 50) / pct(samples['podnet vxlan (bridge)']['ADD'], 50):.2f}x")
    finally:
        for ns in pods:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        for backend, state in labs.items():
            topology.down(state.name, state.directory)
        shutil.rmtree(directory, ignore_errors=True)  # the reference plugin's IPAM state lives here too


if __name__ == "__main__":
    main()
