#!/usr/bin/env python3
"""Pod-to-pod TCP throughput (iperf3) and time to first reply, against a plain veth pair.

Measured in the same run: a veth pair between two namespaces (the reference), pods on the
same node (bridge, and routed), pods on two nodes with host-gw, with vxlan, with bgp (the
routed mode: /32s, BIRD's routes; both nodes on one segment, so nothing is encapsulated; the
pod MTU is 1450 as the default pool allows VXLAN across segments, as Calico's auto-MTU does),
with udp (flannel's UDP backend: every packet through a userspace forwarder; pod MTU 1472), and
with the Weave-style mesh, by its fast path (kernel VXLAN between the two peers) and by its
sleeve alone (frames through the routers in Python; pod MTU 1372 for both).
A lab per backend, so each gets its own MTU. Then, in the vxlan lab: the time from asking for a pod on
node2 to the first ping reply it sends to a pod on node1. "Asking" is an apply, as with
kubectl; the pod counts as created when node2's kubelet reports its container running (CNI ADD
through the agent, the container started under its supervisor, the status written back).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from podnet.api.pod import parse_pod  # noqa: E402
from podnet.lab import pods as pods_mod  # noqa: E402
from podnet.lab import topology  # noqa: E402
from podnet.store import open_store  # noqa: E402


def iperf(server_ns: str, server_ip: str, client_ns: str, seconds: int, attempts: int = 5) -> float | None:
    """Gbit/s from client_ns to server_ip, or None (with the reason on stderr) when iperf3 never
    gave a result: it sometimes exits 0 with JSON that holds only an "error", or no JSON at all."""
    problem = ""
    for attempt in range(attempts):
        srv = subprocess.Popen(["ip", "netns", "exec", server_ns, "iperf3", "-s", "-1", "-B", server_ip],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(50):
                r = subprocess.run(["ip", "netns", "exec", client_ns, "iperf3", "-c", server_ip, "-t", str(seconds), "-J"],
                                   capture_output=True, text=True)
                if r.returncode == 0 or (r.stdout.strip() and "Connection refused" not in r.stdout):
                    break
                time.sleep(0.1)  # the server is not listening yet
            gbps, problem = _bits_per_second(r.stdout, r.stderr)
            if gbps is not None:
                return gbps / 1e9
        finally:
            srv.kill()
            srv.wait()
        print(f"  iperf3 {client_ns} -> {server_ip}: attempt {attempt + 1} gave no result ({problem}); retrying",
              file=sys.stderr)
    print(f"  iperf3 {client_ns} -> {server_ip}: no result after {attempts} attempts ({problem})", file=sys.stderr)
    return None


def _bits_per_second(stdout: str, stderr: str) -> tuple[float | None, str]:
    try:
        doc = json.loads(stdout)
    except ValueError:
        return None, f"not JSON: {(stdout or stderr).strip()[:200]!r}"
    try:
        return float(doc["end"]["sum_received"]["bits_per_second"]), ""
    except (KeyError, TypeError, ValueError):
        return None, str(doc.get("error") or "JSON without end.sum_received")[:200] if isinstance(doc, dict) else "odd JSON"


def pod(state, store, name, node, command=None):
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"nodeName": node, "containers": [{"name": "c", "command": command or ["sleep", "3600"]}]}}
    return pods_mod.create_pod(state, store, parse_pod(doc, "bench"))


def netns_of(p):
    return p["metadata"]["annotations"]["podnet.io/netns"]


def time_first_replies(state, store, target: str, samples: int) -> list[tuple[float, float]]:
    """(ms until the kubelet reports a new pod on node2 running, ms until it first pings `target`)."""
    out = []
    for i in range(samples):
        t0 = time.perf_counter()
        new = pod(state, store, f"new{i}", "node2")
        created = time.perf_counter()
        replied = False
        while time.perf_counter() - t0 < 10:
            if subprocess.run(["ip", "netns", "exec", netns_of(new), "busybox", "ping", "-c", "1", "-W", "1", target],
                              capture_output=True).returncode == 0:
                replied = True
                break
        if replied:
            out.append(((created - t0) * 1000, (time.perf_counter() - t0) * 1000))
        else:
            print(f"  first reply, sample {i}: no reply within 10 s (left out)", file=sys.stderr)
        pods_mod.delete_pod(state, store, "default", f"new{i}")
    return out


def veth_baseline(tag: str, seconds: int) -> float | None:
    a, b = f"pn-{tag}-va", f"pn-{tag}-vb"
    try:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run(["ip", "-n", a, "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", b], check=True)
        for ns, dev, addr in ((a, "v0", "10.123.0.1/24"), (b, "v1", "10.123.0.2/24")):
            subprocess.run(["ip", "-n", ns, "addr", "add", addr, "dev", dev], check=True)
            subprocess.run(["ip", "-n", ns, "link", "set", dev, "up"], check=True)
            subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        return iperf(a, "10.123.0.1", b, seconds)
    finally:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-t", "--seconds", type=int, default=3, help="iperf3 duration per case")
    ap.add_argument("-r", "--rounds", type=int, default=3,
                    help="rounds over every case, interleaved (the median is printed: this machine is shared)")
    ap.add_argument("-n", "--first-reply-samples", type=int, default=10)
    args = ap.parse_args()
    tag = "b" + uuid.uuid4().hex[:5]
    cases: dict[str, tuple] = {}
    labs = []
    first_reply = []
    try:
        setups = [("host-gw", "host-gw", None), ("vxlan", "vxlan", None), ("bgp", "bgp", None), ("udp", "udp", None),
                  ("mesh fastdp", "mesh", None), ("mesh sleeve", "mesh", {"FastDP": False})]
        for i, (label, backend, fields) in enumerate(setups):  # all up at once, so the cases can be interleaved
            name = f"{tag}{i}"
            directory = tempfile.mkdtemp(prefix="pn-bench-")
            labs.append((name, directory))
            state = topology.up(name, directory, 2, backend, "sqlite", backend_fields=fields)
            store = open_store(state.store_url)
            server = pod(state, store, "server", "node1")
            local = pod(state, store, "local", "node1")
            remote = pod(state, store, "remote", "node2")
            if backend in ("host-gw", "bgp"):
                cases["same node (routed)" if backend == "bgp" else "same node (bridge)"] = (server, local)
            cases[f"cross-node {label}"] = (server, remote)
            if backend == "vxlan":
                first_reply = time_first_replies(state, store, server["status"]["podIP"], args.first_reply_samples)
            store.close()
        samples: dict[str, list[float]] = {"veth pair (reference)": [], **{label: [] for label in cases}}
        for _ in range(args.rounds):
            got = veth_baseline(tag, args.seconds)
            if got is not None:
                samples["veth pair (reference)"].append(got)
            for label, (server, client) in cases.items():
                got = iperf(netns_of(server), server["status"]["podIP"], netns_of(client), args.seconds)
                if got is not None:
                    samples[label].append(got)
    finally:
        for name, directory in labs:
            topology.down(name, directory)
            shutil.rmtree(directory, ignore_errors=True)
    rows = [(label, statistics.median(v) if v else None) for label, v in samples.items()]
    base = rows[0][1]
    print(f"pod-to-pod TCP throughput, iperf3 {args.seconds} s per case, median of {args.rounds} interleaved rounds "
          "(Gbit/s; higher is better)")
    for label, gbps in rows:
        if gbps is None:
            print(f"  {label:<24}{'n/a':>8}   (iperf3 gave no result; see above)")
        elif base:
            print(f"  {label:<24}{gbps:>8.2f}   {gbps / base:>5.2f}x of veth")
        else:
            print(f"  {label:<24}{gbps:>8.2f}   (no veth reference this run)")
    by = dict(rows)
    if by.get("cross-node udp") and by.get("cross-node vxlan"):
        udp = by["cross-node udp"]
        print(f"  cross-node udp / vxlan = {udp / by['cross-node vxlan']:.2f}x; udp {udp:.2f} Gbit/s "
              f"({'goal met' if udp >= 1.0 else 'goal not met'}: at least 1 Gbit/s at the lab's MTU)")
    if by.get("cross-node vxlan"):
        for label in ("mesh fastdp", "mesh sleeve"):
            if by.get(f"cross-node {label}"):
                ratio = by[f"cross-node {label}"] / by["cross-node vxlan"]
                goal = f" ({'goal met' if ratio >= 0.9 else 'goal not met'}: within 10% of vxlan)" if label == "mesh fastdp" else ""
                print(f"  cross-node {label} / vxlan = {ratio:.2f}x{goal}")
    if by.get("cross-node bgp") and by.get("cross-node host-gw"):
        ratio = by["cross-node bgp"] / by["cross-node host-gw"]
        print(f"  cross-node bgp / host-gw = {ratio:.2f}x ({'goal met' if ratio >= 0.95 else 'goal not met'}: within 5%)")
    made = [c for c, _ in first_reply]
    total = [t for _, t in first_reply]
    if not total:
        print("pod created on node2 -> first ping reply: no samples")
        return
    print(f"pod created on node2 -> first ping reply from a pod on node1 (vxlan), {len(total)} samples (ms):")
    print(f"  apply -> kubelet reports it running         p50 {statistics.median(made):.1f}   max {max(made):.1f}")
    print(f"  ... + first reply                           p50 {statistics.median(total):.1f}   max {max(total):.1f}")


if __name__ == "__main__":
    main()
