#!/usr/bin/env python3
"""Service proxy and DNS at scale, each against a reference measured in the same run.

1. Sync: a full ruleset, then a one-service update (one endpoint gone), at 1,000 and 10,000
   services x 10 endpoints, in a private namespace: podnet's map table (podnet.proxy.maps,
   applied in-process through libnftables as the agent does) beside a kube-proxy-style
   ruleset with a chain per service and per endpoint (podnet.proxy.render, applied with
   `nft -f`, filled in chunks as its first sync was).
2. First-packet connect latency (TCP connect through a ClusterIP, DNATed by the node) with 10
   and 10,000 services installed: podnet's map table beside an iptables-style ruleset where
   the same services are matched by a linear chain (the target service last).
3. DNS: queries per second (dnsperf) against `podnet dns` and dnsmasq answering the same names.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from podnet.kernel import netns as kns  # noqa: E402
from podnet.kernel import nft as nftlib  # noqa: E402
from podnet.proxy import maps, render  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from routed_pair import SERVER_IP, connect_latency, nft, remove, serve, sh, topology  # noqa: E402

TARGET_IP = "10.96.255.254"


def synthetic(n: int, target_endpoint: str | None = None):
    services, slices = [], {}
    for i in range(n):
        name = f"s{i}"
        ip = TARGET_IP if i == n - 1 else f"10.96.{i // 250}.{i % 250 + 1}"
        services.append({"metadata": {"name": name, "namespace": "bench"},
                         "spec": {"type": "ClusterIP", "clusterIP": ip,
                                  "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}]}})
        if i == n - 1 and target_endpoint:
            eps = [{"addresses": [target_endpoint], "conditions": {"ready": True}, "nodeName": "n"}]
        else:
            eps = [{"addresses": [f"10.250.{(i * 10 + k) // 250 % 250}.{(i * 10 + k) % 250 + 1}"], "conditions": {"ready": True},
                    "nodeName": "n"} for k in range(10)]
        slices[("bench", name)] = {"items": [{"ports": [{"name": "http", "port": 8080, "protocol": "TCP"}], "endpoints": eps}]}
    return services, slices


def linearize(model: render.Model) -> render.Model:
    """The same services, dispatched iptables-style: one rule per service port, tried in order."""
    m = render.Model(chains=dict(model.chains), maps={k: {} for k in model.maps}, sets=dict(model.sets))
    m.maps["no-endpoint-services"] = dict(model.maps["no-endpoint-services"])
    rules = []
    for (ip, proto, port), target in model.maps["service-ips"].items():
        rules.append([{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": ip}},
                      {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": proto}},
                      {"match": {"op": "==", "left": {"payload": {"protocol": "th", "field": "dport"}}, "right": port}},
                      {"goto": {"target": target}}])
    rules.sort(key=lambda r: r[0]["match"]["right"] == TARGET_IP)  # the service we connect to comes last
    m.chains["services-linear"] = rules
    m.chains["services"] = [[{"jump": {"target": "services-linear"}}]]
    return m


def in_process(ns: str, lines: list[str]) -> float:
    """Apply nft commands through libnftables inside `ns`, as the agent does; the seconds it took."""
    with kns.entered(f"/var/run/netns/{ns}"):
        lib = nftlib._Library()  # its netlink socket belongs to the namespace it is made in
        t0 = time.perf_counter()
        rc, _, err = lib.run(("\n".join(lines) + "\n").encode())
        took = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(f"nft failed: {err.decode()[:500]}")
    return took


def sync_figures(node: str, sizes: list[int]) -> None:
    print("service proxy sync (services x 10 endpoints; seconds; full = compute + apply into an empty table)")
    print(f"  {'services':>9}  {'ruleset':<26}{'chains':>8}{'rules':>9}{'full sync':>11}{'1-svc update':>14}"
          f"{'(compute':>10}{'+ kernel)':>11}")
    goals = []
    for n in sizes:
        services, slices = synthetic(n)
        # the map table: what the agent's proxy controller does
        subprocess.run(["ip", "netns", "exec", node, "nft", "delete", "table", "ip", maps.TABLE], capture_output=True)
        t0 = time.perf_counter()
        table = maps.Table("10.244.0.0/16")
        contributions = {f"bench/{svc['metadata']['name']}": maps.contribution(svc, slices[("bench", svc["metadata"]["name"])], "n")
                         for svc in services}
        cmds = table.rebuild(contributions)
        t_compute = time.perf_counter() - t0
        t_full = t_compute + in_process(node, cmds)
        chains, rules = _counts(node)
        slices[("bench", "s0")]["items"][0]["endpoints"].pop()
        t0 = time.perf_counter()
        update = table.set_service("bench/s0", maps.contribution(services[0], slices[("bench", "s0")], "n"))
        t_one = time.perf_counter() - t0
        t_kernel = in_process(node, update)
        print(f"  {n:>9}  {'podnet maps':<26}{chains:>8}{rules:>9}{t_full:>11.2f}{t_one + t_kernel:>14.4f}"
              f"{t_one:>10.4f}{t_kernel:>11.4f}")
        goals.append((n, t_full, t_kernel))
        subprocess.run(["ip", "netns", "exec", node, "nft", "delete", "table", "ip", maps.TABLE], capture_output=True)
        # the reference: a chain per service and per endpoint, whole model rendered per change
        slices[("bench", "s0")] = synthetic(1)[1][("bench", "s0")]
        t0 = time.perf_counter()
        model = render.render(services, slices, "n", "10.244.0.0/16")
        t_render = time.perf_counter() - t0
        t_full = t_render + sum(nft(node, batch) for batch in render.full_chunked(model))
        slices[("bench", "s0")]["items"][0]["endpoints"].pop()
        t0 = time.perf_counter()
        cmds = render.diff(model, render.render(services, slices, "n", "10.244.0.0/16"))
        t_render2 = time.perf_counter() - t0
        t_update = nft(node, cmds)
        print(f"  {n:>9}  {'per-service chains (ref)':<26}{len(model.chains):>8}{model.rule_count():>9}{t_full:>11.2f}"
              f"{t_render2 + t_update:>14.4f}{t_render2:>10.4f}{t_update:>11.4f}")
        subprocess.run(["ip", "netns", "exec", node, "nft", "delete", "table", "ip", render.TABLE], capture_output=True)
    for n, full, kernel in goals:
        print(f"  podnet at {n}: full sync {full:.2f} s ({'goal met' if full < 2 else 'goal missed'}: < 2 s), one-service "
              f"update in the kernel {kernel * 1000:.1f} ms ({'goal met' if kernel < 0.05 else 'goal missed'}: < 50 ms)")


def _counts(ns: str) -> tuple[int, int]:
    out = subprocess.run(["ip", "netns", "exec", ns, "nft", "-j", "list", "table", "ip", maps.TABLE], capture_output=True,
                         text=True).stdout
    items = json.loads(out or "{}").get("nftables", [])
    return sum("chain" in i for i in items), sum("rule" in i for i in items)


def dns_qps(tag: str, names: int, seconds: int) -> tuple[float, float] | None:
    if not shutil.which("dnsperf") or not shutil.which("dnsmasq"):
        print("  (dnsperf or dnsmasq missing: DNS comparison skipped)")
        return None
    from podnet.store import open_store

    ns = f"pn-{tag}-dns"
    work = tempfile.mkdtemp(prefix="pn-bench-dns-")
    sh("ip", "netns", "add", ns)
    sh("ip", "-n", ns, "link", "set", "lo", "up")
    procs = []
    try:
        store = open_store(f"sqlite://{work}/store.db")
        hosts, queries = [], []
        for i in range(names):
            ip = f"10.96.{i // 250}.{i % 250 + 1}"
            store.put(f"/podnet/services/default/svc{i}", json.dumps(
                {"metadata": {"name": f"svc{i}", "namespace": "default"},
                 "spec": {"type": "ClusterIP", "clusterIP": ip, "ports": [{"name": "http", "protocol": "TCP", "port": 80}]}}))
            hosts.append(f"{ip} svc{i}.default.svc.cluster.local")
            queries.append(f"svc{i}.default.svc.cluster.local A")
        open(f"{work}/hosts", "w").write("\n".join(hosts) + "\n")
        open(f"{work}/queries", "w").write("\n".join(queries) + "\n")
        procs.append(subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "podnet.cli.main", "dns", "--store",
                                       f"sqlite://{work}/store.db", "--listen", "127.0.0.1:5300"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen(["ip", "netns", "exec", ns, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
                                       "--no-resolv", "--no-hosts", f"--addn-hosts={work}/hosts", "--port=5301",
                                       "--listen-address=127.0.0.1", "--bind-interfaces", "--user=root",
                                       f"--pid-file={work}/dnsmasq.pid", "--cache-size=10000"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(2)
        result = []
        for port in (5300, 5301):
            qps = 0.0
            for attempt in range(3):  # dnsperf sometimes prints no summary (a server still starting): again
                r = subprocess.run(["ip", "netns", "exec", ns, "dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d",
                                    f"{work}/queries", "-l", str(seconds), "-c", "4", "-q", "200"], capture_output=True, text=True)
                line = next((l for l in r.stdout.splitlines() if "Queries per second" in l), "")
                try:
                    qps = float(line.split()[-1])
                except (IndexError, ValueError):
                    qps = 0.0
                if qps > 0:
                    break
                print(f"  (dnsperf on port {port}, attempt {attempt + 1}: no rate in its output "
                      f"{(r.stdout + r.stderr).strip()[-200:]!r})", file=sys.stderr)
                time.sleep(1)
            result.append(qps)
        return result[0], result[1]
    finally:
        for p in procs:
            p.kill()
            p.wait()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connects", type=int, default=300)
    ap.add_argument("--sizes", default="1000,10000", help="services for the sync figures")
    ap.add_argument("--latency-sizes", default="10,10000", help="services for the connect-latency figures")
    ap.add_argument("--dns-seconds", type=int, default=5, help="dnsperf duration per server")
    args = ap.parse_args()
    tag = "b" + uuid.uuid4().hex[:4]
    client, node, server = topology(tag)
    stop = threading.Event()
    srv = threading.Thread(target=serve, args=(server, 8080, stop), daemon=True)
    srv.start()
    try:
        sync_figures(node, [int(x) for x in args.sizes.split(",")])
        print(f"first-packet TCP connect latency through a ClusterIP ({args.connects} connects; microseconds)")
        print(f"  {'services':>9}{'podnet maps p50':>17}{'p95':>8}{'linear chain p50':>18}{'p95':>8}{'ratio p50':>11}")
        for n in (int(x) for x in args.latency_sizes.split(",")):
            services, slices = synthetic(n, target_endpoint=SERVER_IP)
            model = render.render(services, slices, "n", "10.244.0.0/16")
            contributions = {f"bench/{svc['metadata']['name']}": maps.contribution(svc, slices[("bench", svc["metadata"]["name"])], "n")
                             for svc in services}
            row = []
            for variant in ("maps", linearize(model)):
                subprocess.run(["ip", "netns", "exec", node, "nft", "delete", "table", "ip", render.TABLE], capture_output=True)
                if variant == "maps":
                    in_process(node, maps.Table("10.244.0.0/16").rebuild(contributions))
                else:
                    for batch in render.full_chunked(variant):
                        nft(node, batch)
                connect_latency(client, TARGET_IP, 80, 20)  # warm up
                lat = connect_latency(client, TARGET_IP, 80, args.connects)
                row.append((statistics.median(lat), sorted(lat)[int(0.95 * len(lat))]))
            print(f"  {n:>9}{row[0][0]:>17.0f}{row[0][1]:>8.0f}{row[1][0]:>18.0f}{row[1][1]:>8.0f}{row[0][0] / row[1][0]:>10.2f}x")
    finally:
        stop.set()
        remove(client, node, server)
    qps = dns_qps(tag, 1000, args.dns_seconds)
    if qps:
        print(f"DNS queries per second, 1,000 service names, dnsperf {args.dns_seconds} s (higher is better)")
        ratio = f"{qps[0] / qps[1]:.2f}x" if qps[1] else "n/a (no dnsmasq rate)"
        print(f"  podnet dns {qps[0]:.0f}   dnsmasq {qps[1]:.0f}   ratio {ratio}")


if __name__ == "__main__":
    main()
