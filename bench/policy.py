#!/usr/bin/env python3
"""NetworkPolicy at scale: 1,000 policies over 300 pods in 30 namespaces on 3 nodes.

1. Apply: what a node's agent does when policies change, timed step by step: read the world
   from the store (SQLite), render the node's table, apply it with nft (into an empty kernel),
   and then a one-policy update (re-render + replace in one transaction).
2. First-packet TCP connect latency to an isolated pod (a new connection each time, so every
   SYN walks the ruleset): 0 policies (the reference: the table an agent installs when there
   are none, so conntrack is on as on any node), no table at all, podnet's table with 1,000
   policies (pod-IP verdict maps: the packet only meets the rules of the policies selecting its
   destination), and the same rules in one linear chain, iptables-style, with the destination's
   rules last. All three in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from podnet.api.networkpolicy import parse_network_policy  # noqa: E402
from podnet.lab import probe  # noqa: E402
from podnet.policy import render  # noqa: E402
from podnet.policy.evaluate import World, allowed  # noqa: E402
from podnet.policy.world import load_world, namespace_key, network_policy_key  # noqa: E402
from podnet.store import open_store  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from routed_pair import CLIENT_IP, SERVER_IP, connect_latency, nft, remove, serve, topology  # noqa: E402

NODE = "node0"


def pod(name: str, ns: str, node: str, ip: str, labels: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"nodeName": node, "containers": [{"name": "c", "command": ["sleep", "1"],
                                                       "ports": [{"name": "http", "containerPort": 8080},
                                                                 {"name": "dns", "containerPort": 53, "protocol": "UDP"}]}]},
            "status": {"phase": "Running", "podIP": ip}}


def policy(i: int, rng: random.Random) -> dict:
    ns = f"ns-{i % 30:02d}"
    peer = {"namespaceSelector": {"matchLabels": {"team": f"t{rng.randrange(5)}"}},
            "podSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": rng.sample(["web", "api", "db"], 2)}]}}
    ingress = [{"from": [peer], "ports": [{"port": 8080}, {"port": 9000, "endPort": 9100}]}]
    if i % 7 == 0:
        ingress.append({"from": [{"ipBlock": {"cidr": "10.244.0.0/16", "except": [f"10.244.{i % 3}.0/24"]}}]})
    if i % 11 == 0:
        ingress.append({"from": [{"podSelector": {}}], "ports": [{"port": "http"}]})
    spec = {"podSelector": {"matchLabels": {"app": f"app-{(i // 30) % 10}"}}, "ingress": ingress}
    if i % 5 == 0:
        spec["policyTypes"] = ["Ingress", "Egress"]
        spec["egress"] = [{"to": [{"namespaceSelector": {"matchLabels": {"team": f"t{rng.randrange(5)}"}}}],
                           "ports": [{"port": 53, "protocol": "UDP"}, {"port": "http"}]}]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": f"p-{i:04d}", "namespace": ns}, "spec": spec}


def fill_store(store, n_policies: int, n_pods: int) -> None:
    rng = random.Random(1)
    for i in range(30):
        store.put(namespace_key(f"ns-{i:02d}"), json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": f"ns-{i:02d}", "labels": {"team": f"t{i % 5}", "kubernetes.io/metadata.name": f"ns-{i:02d}"}}}))
    for k in range(n_pods - 2):
        node = k % 3
        p = pod(f"pod-{k}", f"ns-{k % 30:02d}", f"node{node}", f"10.244.{node}.{k // 3 + 2}",
                {"app": f"app-{k % 10}", "tier": ["web", "api", "db"][k % 3]})
        store.put(f"/podnet/pods/{p['metadata']['namespace']}/{p['metadata']['name']}", json.dumps(p))
    # the two pods the latency test uses: the server is isolated by every policy that selects app-0 in ns-00
    store.put("/podnet/pods/ns-00/server", json.dumps(pod("server", "ns-00", NODE, SERVER_IP, {"app": "app-0", "tier": "web"})))
    store.put("/podnet/pods/ns-00/client", json.dumps(pod("client", "ns-00", "node1", CLIENT_IP, {"app": "client"})))
    for i in range(n_policies - 1):
        p = parse_network_policy(policy(i, rng), "bench")
        store.put(network_policy_key(p["metadata"]["namespace"], p["metadata"]["name"]), json.dumps(p))
    if n_policies:  # the one that lets the client in, sorted last: the server's chain checks it after all the others
        p = parse_network_policy({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                                  "metadata": {"name": "zz-allow-client", "namespace": "ns-00"},
                                  "spec": {"podSelector": {"matchLabels": {"app": "app-0"}},
                                           "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}],
                                                        "ports": [{"port": 80}]}]}}, "bench")
        store.put(network_policy_key("ns-00", "zz-allow-client"), json.dumps(p))


def linearize(cmds: list[dict], last_ip: str) -> list[dict]:
    """The same table, but ingress decided by one linear chain (daddr == pod ip + its rules),
    iptables-style, instead of the verdict map; `last_ip`'s rules come last."""
    rules: dict[str, list] = {}
    ingress: dict[str, str] = {}
    out = []
    for c in cmds:
        add = c.get("add", {})
        if "rule" in add:
            if add["rule"]["chain"] != "forward":
                rules.setdefault(add["rule"]["chain"], []).append(add["rule"]["expr"])
            continue
        if "element" in add and add["element"]["name"] == "ingress-isolated":
            ingress.update({ip: v["jump"]["target"] for ip, v in add["element"]["elem"]})
            continue
        out.append(c)
    forward = [[{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": None}],
               [{"vmap": {"key": {"payload": {"protocol": "ip", "field": "saddr"}}, "data": "@egress-isolated"}}]]
    for ip in sorted(ingress, key=lambda a: a == last_ip):
        dst = {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": ip}}
        forward += [[dst, *r[:-1], {"accept": None}] for r in rules[ingress[ip]][:-1]]
        forward.append([dst, {"drop": None}])
    for name, rs in rules.items():
        out += [{"add": {"rule": {**render.T, "chain": name, "expr": r}}} for r in rs]
    out += [{"add": {"rule": {**render.T, "chain": "forward", "expr": r}}} for r in forward]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policies", type=int, default=1000)
    ap.add_argument("--pods", type=int, default=300)
    ap.add_argument("--connects", type=int, default=3000)
    args = ap.parse_args()
    tag = "q" + uuid.uuid4().hex[:4]
    tmp = tempfile.mkdtemp(prefix="pn-bench-")
    store = open_store(f"sqlite://{tmp}/store.db")
    client, node, server = topology(tag)
    stop = threading.Event()
    threading.Thread(target=serve, args=(server, 80, stop), daemon=True).start()
    try:
        t0 = time.perf_counter()
        fill_store(store, args.policies, args.pods)
        t_fill = time.perf_counter() - t0
        t0 = time.perf_counter()
        world, _ = load_world(store)
        t_load = time.perf_counter() - t0
        t0 = time.perf_counter()
        cmds = render.render(world, NODE)
        t_render = time.perf_counter() - t0
        t_apply = nft(node, cmds)
        local = [p for p in world.pods if p.node == NODE]
        srv_pod, cli_pod = world.pod_by_ip(SERVER_IP), world.pod_by_ip(CLIENT_IP)
        assert allowed(world, cli_pod, srv_pod, 80), "the bench world must let the client in"
        selecting = [p for p in world.policies if p["metadata"]["namespace"] == "ns-00"
                     and p["spec"]["podSelector"]["matchLabels"].get("app") == "app-0"]
        n_rules = sum(1 for c in cmds if "rule" in c.get("add", {}))
        n_sets = sum(1 for c in cmds if "set" in c.get("add", {}))
        print(f"NetworkPolicy apply on one node ({len(world.policies)} policies, {len(world.pods)} pods, "
              f"{len(local)} on this node; seconds)")
        print(f"  store write (setup, not the agent's work) {t_fill:.2f}")
        print(f"  read world from the store  {t_load:8.3f}")
        print(f"  render the node's table    {t_render:8.3f}   ({n_rules} rules, {n_sets} sets, {len(cmds)} nft commands)")
        print(f"  nft apply (empty kernel)   {t_apply:8.3f}")
        print(f"  total                      {t_load + t_render + t_apply:8.3f}")
        # one policy changes: the agent re-renders and replaces the table in one transaction
        first = next(p for p in world.policies if p["metadata"]["name"] == "p-0000")
        first["spec"]["ingress"][0]["ports"][0]["port"] = 8443
        t0 = time.perf_counter()
        cmds2 = render.render(world, NODE)
        t_render2 = time.perf_counter() - t0
        t_apply2 = nft(node, cmds2)
        print(f"  one policy changed: render {t_render2:.3f} + replace {t_apply2:.3f} = {t_render2 + t_apply2:.3f}")
        # a port no policy admits the client on must time out: proof the table enforces
        assert probe.tcp_exchange(client, SERVER_IP, 8081, 0.5)[1] == "TimeoutError", "the table does not block"

        print(f"first-packet TCP connect latency to an isolated pod ({args.connects} connects; microseconds)")
        print(f"  the destination is selected by {len(selecting)} policies; the client is admitted by the last one")
        print(f"  {'ruleset':<34}{'p50':>8}{'p95':>8}{'ratio':>11}   (ratio: median over rounds of the round's p50 / reference p50)")
        no_policies = render.render(World(world.pods, world.namespaces, [], world.node_ips), NODE)
        variants = [("0 policies (reference)", no_policies), ("no table at all (kernel only)", []),
                    (f"podnet, {len(world.policies)} policies", cmds),
                    (f"linear chain, {len(world.policies)} policies", linearize(cmds, SERVER_IP))]
        samples: dict[str, list[float]] = {label: [] for label, _ in variants}
        ratios: dict[str, list[float]] = {label: [] for label, _ in variants}
        rounds = 60  # variants take turns; each round's medians are compared with the same round's reference
        for _ in range(rounds):
            medians = {}
            for label, table in variants:
                subprocess.run(["ip", "netns", "exec", node, "nft", "delete", "table", "ip", render.TABLE], capture_output=True)
                if table:
                    nft(node, table)
                connect_latency(client, SERVER_IP, 80, 10)
                lat = connect_latency(client, SERVER_IP, 80, args.connects // rounds)
                samples[label] += lat
                medians[label] = statistics.median(lat)
            for label, _ in variants:
                ratios[label].append(medians[label] / medians[variants[0][0]])
        for label, _ in variants:
            lat = sorted(samples[label])
            p50, p95 = statistics.median(lat), lat[int(0.95 * len(lat))]
            print(f"  {label:<34}{p50:>8.0f}{p95:>8.0f}{statistics.median(ratios[label]):>10.2f}x")
    finally:
        stop.set()
        store.close()
        remove(client, node, server)
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
