#!/usr/bin/env python3
"""What anti-spoofing costs per packet: first-packet TCP connect latency between two pods on
one node's bridge, without the `bridge podnet_antispoof` table (the reference, measured in the
same run) and with it, holding the two pods plus 1,000 other attachments (the sets are hash
lookups: their size should not show).

Paired rounds: each round measures both cases back to back and the ratio of their medians is
taken per round; the figure is the median of those ratios, since single medians on a shared
machine wander by tens of percent.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from podnet.agent import antispoof  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from routed_pair import SERVER_IP, connect_latency, nft, remove, serve, sh, wait_listening  # noqa: E402

CLIENT_IP = "10.201.0.3"


def bridged(tag: str) -> tuple[str, str, str]:
    """client 10.201.0.3 -- [node: bridge cni0 10.201.0.1] -- server 10.201.0.2"""
    client, node, server = f"pn-{tag}-c", f"pn-{tag}-n", f"pn-{tag}-s"
    for ns in (client, node, server):
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("ip", "-n", node, "link", "add", "cni0", "type", "bridge")
    sh("ip", "-n", node, "addr", "add", "10.201.0.1/24", "dev", "cni0")
    sh("ip", "-n", node, "link", "set", "cni0", "up")
    for ns, host, addr in ((client, "vethc0000000", CLIENT_IP), (server, "veths0000000", SERVER_IP)):
        sh("ip", "-n", node, "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "-n", node, "link", "set", host, "master", "cni0", "up")
        sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
    return client, node, server


def mac(ns: str) -> str:
    out = subprocess.run(["ip", "-n", ns, "-j", "link", "show", "eth0"], capture_output=True, text=True, check=True).stdout
    return json.loads(out)[0]["address"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-r", "--rounds", type=int, default=30)
    ap.add_argument("-n", "--connects", type=int, default=200, help="connects per case per round")
    args = ap.parse_args()
    tag = "a" + uuid.uuid4().hex[:5]
    client = node = server = ""
    stop = threading.Event()
    try:
        client, node, server = bridged(tag)
        atts = [antispoof.Attachment("c", "eth0", "vethc0000000", mac(client), (CLIENT_IP,)),
                antispoof.Attachment("s", "eth0", "veths0000000", mac(server), (SERVER_IP,))]
        atts += [antispoof.Attachment(f"x{i}", "eth0", f"vethx{i:07d}", f"02:00:00:00:{i // 256:02x}:{i % 256:02x}",
                                      (f"10.202.{i // 250}.{i % 250 + 1}",)) for i in range(1000)]
        table = antispoof.table(atts)
        remove_table = [{"delete": {"table": {"family": "bridge", "name": antispoof.TABLE}}}]
        threading.Thread(target=serve, args=(server, 8080, stop), daemon=True).start()
        wait_listening(client, SERVER_IP, 8080)
        connect_latency(client, SERVER_IP, 8080, 200)  # warm up (ARP, caches)
        ratios, base_p50, with_p50 = [], [], []
        for r in range(args.rounds):
            if r % 2:  # alternate which case goes first: neither gets the warmer caches every time
                nft(node, table)
                guarded = statistics.median(connect_latency(client, SERVER_IP, 8080, args.connects))
                nft(node, remove_table)
                base = statistics.median(connect_latency(client, SERVER_IP, 8080, args.connects))
            else:
                base = statistics.median(connect_latency(client, SERVER_IP, 8080, args.connects))
                nft(node, table)
                guarded = statistics.median(connect_latency(client, SERVER_IP, 8080, args.connects))
                nft(node, remove_table)
            ratios.append(guarded / base)
            base_p50.append(base)
            with_p50.append(guarded)
        drops = subprocess.run(["ip", "netns", "exec", node, "nft", "list", "ruleset"], capture_output=True, text=True).stdout
        assert antispoof.TABLE not in drops  # removed after the last round
        print(f"anti-spoofing: TCP connect latency between two pods on one bridge, {args.rounds} paired rounds x "
              f"{args.connects} connects (µs; lower is better)")
        print(f"  {'no anti-spoofing table (reference)':<48}p50 {statistics.median(base_p50):>6.1f}   1.00x")
        print(f"  {'podnet_antispoof, 2 pods + 1,000 attachments':<48}p50 {statistics.median(with_p50):>6.1f}   "
              f"{statistics.median(ratios):.2f}x (median of per-round ratios; "
              f"quartiles {statistics.quantiles(ratios, n=4)[0]:.2f}-{statistics.quantiles(ratios, n=4)[2]:.2f})")
    finally:
        stop.set()
        remove(*(ns for ns in (client, node, server) if ns))


if __name__ == "__main__":
    main()
