#!/usr/bin/env python3
"""Route convergence in the routed (bgp) mode: how long from a new node's agent start until every
other node routes to the new node's block, at several cluster sizes (how it grows).

For each size N: a bgp lab of N nodes on one segment (full mesh), then node N+1 is added: its
namespace is made first, the clock starts when its agent is started, and stops when every other
node's kernel has a route to the block the new node claimed (BIRD learned it over a new BGP
session and installed it). Split into: agent start -> block claimed (agent start-up, store),
and block claimed -> the last node routes it (BGP session setup, BIRD, kernel). The reference
in the same run is flannel's design: the same measurement with host-gw (subnet lease -> the
other agents' route controllers). Goal: under 3 s at 20 nodes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from podnet.api import keys  # noqa: E402
from podnet.ipam.blocks import cidr_of_key  # noqa: E402
from podnet.lab import build, topology  # noqa: E402
from podnet.lab.state import LabError, NodeState  # noqa: E402
from podnet.store import open_store  # noqa: E402

TIMEOUT = 60.0


def owned_range(store, backend: str, node: str) -> str | None:
    """What the others must route to: the new node's block (bgp) or its subnet lease (host-gw)."""
    if backend == "bgp":
        blocks = [cidr_of_key(kv.key) for kv in store.list(f"{keys.IPAM_AFFINITIES}{node}/")[0]]
        return str(min(b for b in blocks if b)) if any(blocks) else None
    from podnet.agent import leases

    mine = [lease for lease in leases.all_leases(store)[0] if lease.node == node]
    return str(mine[0].subnet) if mine else None


def routes_to(netns: str, net: str) -> bool:
    out = subprocess.run(["ip", "-n", netns, "route", "show", net], capture_output=True, text=True).stdout
    return bool(out.strip()) and not out.startswith("blackhole")


def measure(backend: str, size: int, tag: str) -> tuple[float, float] | None:
    name = f"{tag}{backend[0]}{size}"
    directory = tempfile.mkdtemp(prefix="pn-bench-")
    try:
        state = topology.up(name, directory, size, backend, "sqlite")
        new = f"node{size + 1}"
        number = size + 1
        spec = state.topology.node(new, number)
        build.node(state.topology, spec)
        node = NodeState(new, spec.namespace, spec.ip, number=number)
        state.nodes.append(node)
        state.save()
        store = open_store(state.store_url)
        others = [n.netns for n in state.nodes if n.name != new]
        t0 = time.perf_counter()
        topology.start_agent(state, node)
        claimed = None
        net = None
        while time.perf_counter() - t0 < TIMEOUT:
            net = net or owned_range(store, backend, new)
            if net and claimed is None:
                claimed = time.perf_counter()
            if net and all(routes_to(ns, net) for ns in others):
                done = time.perf_counter()
                store.close()
                return (claimed - t0) * 1000, (done - claimed) * 1000
            time.sleep(0.01)
        store.close()
        missing = [ns for ns in others if not (net and routes_to(ns, net))]
        print(f"  {backend} {size} nodes: no convergence within {TIMEOUT:g} s (range {net}, {len(missing)} nodes "
              "without a route)", file=sys.stderr)
        return None
    except LabError as e:
        print(f"  {backend} {size} nodes: lab failed: {e}", file=sys.stderr)
        return None
    finally:
        topology.down(name, directory)
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="5,20", help="cluster sizes before the new node joins, comma-separated")
    ap.add_argument("--backends", default="bgp,host-gw")
    args = ap.parse_args()
    tag = "c" + uuid.uuid4().hex[:3]
    sizes = [int(s) for s in args.sizes.split(",") if s]
    results = {(b, n): measure(b, n, tag) for b in args.backends.split(",") for n in sizes}
    print("route convergence: a new node's agent starts -> every other node routes to its pod range (ms; lower is better)")
    print(f"{'backend':<10}{'nodes':>6}{'range taken':>13}{'all routed':>12}{'total':>9}")
    for (backend, size), r in results.items():
        if r is None:
            print(f"{backend:<10}{size:>6}{'n/a':>13}{'n/a':>12}{'n/a':>9}   (see above)")
        else:
            print(f"{backend:<10}{size:>6}{r[0]:>13.0f}{r[1]:>12.0f}{sum(r):>9.0f}")
    base = {size: results.get(("host-gw", size)) for size in sizes}
    for size in sizes:
        bgp, ref = results.get(("bgp", size)), base[size]
        if bgp and ref:
            print(f"bgp / host-gw at {size} nodes: {sum(bgp) / sum(ref):.2f}x")
    big = results.get(("bgp", max(sizes)))
    if big:
        print(f"bgp at {max(sizes)} nodes: {sum(big) / 1000:.2f} s ({'goal met' if sum(big) < 3000 else 'goal not met'}: < 3 s)")


if __name__ == "__main__":
    main()
