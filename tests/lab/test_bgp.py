"""The routed mode (backend bgp) in a lab: real BIRD sessions, /32 routes, blocks, VXLAN across
segments only, borrowing, route reflectors, self-healing, node removal."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pytest
from click.testing import CliRunner

from podnet.api import keys
from podnet.cli.main import cli
from podnet.lab import probe
from podnet.lab import topology
from podnet.lab.topology import store_context
from tests.lab.conftest import wait_for

pytestmark = pytest.mark.root


def netns_of(pod: dict) -> str:
    return pod["metadata"]["annotations"]["podnet.io/netns"]


def ip_of(pod: dict) -> str:
    return pod["status"]["podIP"]


def run_cli(lab, *args: str):
    env = {"PODNET_LAB_DIR": lab.state.directory}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def established(lab, node: str) -> dict[str, str]:
    """Peer address -> (peer type, info) from `podnet node status NODE -o json`."""
    r = run_cli(lab, "node", "status", node, "-o", "json")
    if r.exit_code != 0:
        return {}
    return {p["peerAddress"]: (p["peerType"], p["info"]) for p in json.loads(r.output)["peers"]}


def routes(ns: str) -> str:
    return subprocess.run(["ip", "-n", ns, "route"], capture_output=True, text=True).stdout


def vtep_tx(ns: str) -> int:
    link = json.loads(subprocess.run(["ip", "-n", ns, "-s", "-j", "link", "show", "vxlan.podnet"], capture_output=True,
                                     text=True).stdout)[0]
    return link["stats64"]["tx"]["packets"]


def bird_pids(ns: str) -> list[int]:
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
    out = []
    for p in pids:
        try:
            if open(f"/proc/{p}/comm").read().strip() == "bird":
                out.append(int(p))
        except OSError:
            pass
    return out


def all_pairs_reach(pods: list[dict], settle: float = 10.0) -> dict:
    """Ping and TCP (the echo server says which source address it saw) for every pair; the bad
    ones. A pod counts as started once its process runs, so its echo server may still be binding
    its port: pairs that fail are asked again for up to `settle` seconds."""
    def check(a, b):
        return probe.ping(netns_of(a), ip_of(b)), probe.tcp_source(netns_of(a), ip_of(b), 8080)

    source = {p["metadata"]["name"]: ip_of(p) for p in pods}
    deadline = time.monotonic() + settle
    while True:
        results = probe.matrix(pods, check)
        bad = {pair: r for pair, r in results.items() if not r[0] or r[1] != source[pair[0]]}
        if not bad or time.monotonic() > deadline:
            return bad
        time.sleep(0.5)


def test_four_nodes_two_segments(make_lab):
    lab = make_lab(4, "bgp", subnets=2)
    nodes = {n.name: n for n in lab.state.nodes}
    # every node has a session with each of the 3 others, Established
    for name in nodes:
        peers = wait_for(lambda: (lambda e: e if sum(i == "Established" for _, i in e.values()) == 3 else None)(
            established(lab, name)), 20)
        assert peers, f"{name}: {established(lab, name)}"
        assert {t for t, _ in peers.values()} == {"node-to-node mesh"}
    pods = [lab.apply_pod(f"p{i}", f"node{i}") for i in range(1, 5)]
    time.sleep(0.5)  # the echo servers bind
    # the Calico wiring
    pod_routes = subprocess.run(["ip", "-n", netns_of(pods[0]), "route"], capture_output=True, text=True).stdout
    assert "default via 169.254.1.1 dev eth0" in pod_routes and "169.254.1.1 dev eth0 scope link" in pod_routes
    for name, n in nodes.items():
        r = routes(n.netns)
        assert re.search(r"^blackhole 10\.244\.\S+/26 proto bird", r, re.M), r
        assert not json.loads(subprocess.run(["ip", "-n", n.netns, "-j", "link", "show", "type", "bridge"],
                                             capture_output=True, text=True).stdout or "[]")
    p1 = ip_of(pods[0])
    assert re.search(rf"^{re.escape(p1)} dev pnw[0-9a-f]{{11}} scope link", routes(nodes["node1"].netns), re.M)
    # node1 (segment 0) learns node3's block from BIRD (same segment), node2's and node4's go through VXLAN
    r1 = routes(nodes["node1"].netns)
    assert re.search(r"/26 via 172\.31\.0\.13 dev eth0 proto bird", r1), r1
    assert len(re.findall(r"/26 via \S+ dev vxlan\.podnet proto 158 onlink", r1)) == 2, r1
    # every pod reaches every pod, with its own source address
    bad = all_pairs_reach(pods)
    assert not bad, bad
    # same segment: not encapsulated; across segments: encapsulated
    before = vtep_tx(nodes["node1"].netns)
    assert probe.ping(netns_of(pods[0]), ip_of(pods[2]))  # p1 -> p3: node1 -> node3, both on segment 0
    assert vtep_tx(nodes["node1"].netns) == before
    assert probe.ping(netns_of(pods[0]), ip_of(pods[1]))  # p1 -> p2: node1 -> node2 on segment 1
    assert vtep_tx(nodes["node1"].netns) > before

    # the agent of node2 dies: BIRD keeps running (and routing); the next agent adopts it
    n2 = lab.state.node("node2")
    bird2 = bird_pids(n2.netns)
    topology.stop_agent(n2, hard=True)
    assert bird_pids(n2.netns) == bird2 and probe.ping(netns_of(pods[0]), ip_of(pods[1]))
    topology.start_agent(lab.state, n2)
    assert wait_for(lambda: "adopting the running BIRD" in open(os.path.join(lab.state.node_dir("node2"), "agent.log")).read(),
                    15)
    assert bird_pids(n2.netns) == bird2 and probe.ping(netns_of(pods[2]), ip_of(pods[1]))

    # kill -9 BIRD on node4: restarted by its agent, sessions and routes come back by themselves
    ns4 = nodes["node4"].netns
    old = bird_pids(ns4)
    assert len(old) == 1
    os.kill(old[0], signal.SIGKILL)
    assert wait_for(lambda: bird_pids(ns4) and bird_pids(ns4) != old, 10), "BIRD was not started again"
    assert wait_for(lambda: sum(i == "Established" for _, i in established(lab, "node1").values()) == 3, 40)
    assert wait_for(lambda: probe.ping(netns_of(pods[0]), ip_of(pods[3])) and probe.ping(netns_of(pods[2]), ip_of(pods[3])),
                    30)
    log = open(os.path.join(lab.state.node_dir("node4"), "agent.log")).read()
    assert "BIRD" in log and "exited" in log

    # remove node3: its block's routes leave node1 (BIRD route) and node2 (VXLAN route)
    with store_context(lab.state):
        store = lab.store()
        block3 = [kv.key.rsplit("/", 1)[1].replace("-", "/") for kv in store.list(f"{keys.IPAM_AFFINITIES}node3/")[0]]
        store.close()
    assert block3
    topology.remove_node(lab.state, "node3")
    for other in ("node1", "node2"):
        ns = nodes[other].netns
        assert wait_for(lambda: not any(f"{b} " in routes(ns) for b in block3), 15), routes(ns)
    assert "172.31.0.13" not in established(lab, "node1")


def test_small_blocks_claim_and_borrow(make_lab):
    """A /28 pool in /30 blocks across 3 nodes on 2 segments: node1 fills its block, claims the
    last free one, then borrows from node2's (another segment); borrowed addresses are reached
    from both segments, and `ipam show --show-borrowed` lists them."""
    lab = make_lab(3, "bgp", subnets=2, pool_cidr="10.244.0.0/28", block_size=30)
    a = [lab.apply_pod(f"a{i}", "node1") for i in range(1, 8)]
    b = lab.apply_pod("b1", "node2")
    c = lab.apply_pod("c1", "node3")
    time.sleep(0.5)
    out = run_cli(lab, "ipam", "show", "--show-blocks", "--show-borrowed").output
    assert "BORROWING-NODE" in out, out
    borrowed = re.findall(r"\|\s*(10\.244\.0\.\d+)\s*\|\s*(node\d)\s*\|", out)
    assert borrowed and ("node1" in {n for _, n in borrowed}), out
    owned = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in out.splitlines()
             if re.match(r"\|\s*10\.244\.0\.\d+/30", line)}
    assert sorted(owned.values()).count("node1") == 2, owned  # its first block and the last free one
    # a borrowed address is exported as a /32 by its holder
    held = [ip for ip, n in borrowed if n == "node1"]
    n3 = lab.state.node("node3").netns
    assert wait_for(lambda: all(re.search(rf"^{re.escape(ip)} via 172\.31\.0\.11 dev eth0 proto bird", routes(n3), re.M)
                                for ip in held), 10), routes(n3)
    pods = a + [b, c]
    bad = all_pairs_reach([p for p in pods if ip_of(p) in held] + [b, c, a[0]])
    assert not bad, bad


def test_pod_asks_for_a_pool_by_annotation(make_lab):
    """Calico's `cni.projectcalico.org/ipv4pools` annotation: the pod's address comes from the
    named pool (its block routed like any other, here across segments through VXLAN); a pool
    that does not exist keeps the pod Pending with the reason, and no address is taken for it.
    Disabling the default pool moves the nodes' VXLAN tunnel addresses out of it, as Calico does,
    and its pods stay reachable."""
    lab = make_lab(2, "bgp", subnets=2, pool_cidr="10.244.0.0/17")
    path = os.path.join(lab.state.directory, "pools.yaml")

    def apply(text):
        with open(path, "w") as f:
            f.write(text)
        r = run_cli(lab, "apply", "-f", path)
        assert r.exit_code == 0, r.output

    apply("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: blue-pool}\n"
          "spec: {cidr: 10.244.128.0/24, blockSize: 28, vxlanMode: CrossSubnet}\n")
    pools = {"cni.projectcalico.org/ipv4pools": '["blue-pool"]'}
    blue = lab.apply_pod("blue", "node1", annotations=pools)
    plain = lab.apply_pod("plain", "node2")
    assert ip_of(blue).startswith("10.244.128.") and not ip_of(plain).startswith("10.244.128."), (ip_of(blue), ip_of(plain))
    n2 = lab.state.node("node2").netns
    assert wait_for(lambda: re.search(r"^10\.244\.128\.0/28 via \S+ dev vxlan\.podnet", routes(n2), re.M), 10), routes(n2)
    bad = all_pairs_reach([blue, plain])
    assert not bad, bad
    # a pool that does not exist: the pod waits with the reason, and nothing is allocated for it
    lab.apply_pod("lost", "node2", annotations={"cni.projectcalico.org/ipv4pools": '["nope"]'}, wait=False)

    def waiting() -> str:
        pod = json.loads(run_cli(lab, "get", "pod", "lost", "-o", "json").output)
        return json.dumps(pod.get("status", {}).get("containerStatuses", []))

    assert wait_for(lambda: "the requested IP pool 'nope' does not exist" in waiting(), 15), waiting()
    out = run_cli(lab, "ipam", "show").output
    assert re.search(r"\|\s*IP Pool\s*\|\s*10\.244\.128\.0/24\s*\|\s*256\s*\|\s*1 \(0%\)", out), out
    # retiring the default pool: the tunnel addresses move to blue-pool, traffic keeps flowing
    apply("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: default-ipv4-ippool}\n"
          "spec: {cidr: 10.244.0.0/17, blockSize: 26, vxlanMode: CrossSubnet, natOutgoing: true, disabled: true}\n")

    def vteps() -> list[str]:
        nodes = json.loads(run_cli(lab, "get", "nodes", "-o", "json").output)["items"]
        return [n["status"]["podnet"]["bgp"]["vtepIP"] for n in nodes]

    assert wait_for(lambda: all(ip.startswith("10.244.128.") for ip in vteps()), 20), vteps()
    bad = all_pairs_reach([blue, plain])
    assert not bad, bad


def test_route_reflector(make_lab):
    lab = make_lab(4, "bgp", route_reflectors=1)
    assert wait_for(lambda: [i for _, i in established(lab, "node1").values()].count("Established") == 3, 20)
    assert {t for t, _ in established(lab, "node1").values()} == {"route reflector client"}
    for other in ("node2", "node3", "node4"):
        peers = wait_for(lambda: (lambda e: e if list(e.values()) == [("route reflector", "Established")] else None)(
            established(lab, other)), 20)
        assert peers and list(peers) == ["172.31.0.11"], established(lab, other)
    pods = [lab.apply_pod(f"p{i}", f"node{i}") for i in range(1, 5)]
    time.sleep(0.5)
    # node2 learns node3's and node4's blocks through the reflector, next hop unchanged
    r2 = routes(lab.state.node("node2").netns)
    assert re.search(r"/26 via 172\.31\.0\.13 dev eth0 proto bird", r2) and re.search(r"/26 via 172\.31\.0\.14 dev eth0", r2)
    bad = all_pairs_reach(pods)
    assert not bad, bad


def test_ippool_cli_and_admission(make_lab):
    lab = make_lab(1, "bgp")
    r = run_cli(lab, "get", "ippools", "-o", "json")
    pools = json.loads(r.output)["items"]
    assert [(p["metadata"]["name"], p["spec"]["cidr"], p["spec"]["blockSize"], p["spec"]["vxlanMode"]) for p in pools] == \
        [("default-ipv4-ippool", "10.244.0.0/16", 26, "CrossSubnet")]
    path = os.path.join(lab.state.directory, "pool.yaml")

    def apply(text):
        with open(path, "w") as f:
            f.write(text)
        return run_cli(lab, "apply", "-f", path)

    r = apply("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: default-ipv4-ippool}\n"
              "spec: {cidr: 10.244.0.0/16, blockSize: 28}\n")
    assert r.exit_code != 0 and "spec.blockSize: is immutable" in r.output
    r = apply("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: other}\nspec: {cidr: 10.244.8.0/24}\n")
    assert r.exit_code != 0 and "overlaps IPPool default-ipv4-ippool" in r.output
    r = apply("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: tun}\n"
              "spec: {cidr: 10.244.0.0/16, ipipMode: Always}\n")
    from podnet.kernel.features import link_kind_problem

    if link_kind_problem("ipip"):
        assert r.exit_code != 0 and "spec.ipipMode: Always needs IP-in-IP tunnels" in r.output, r.output
    r = run_cli(lab, "node", "status", "node1")
    assert r.exit_code == 0 and "BIRD is running on node1" in r.output and "No IPv4 peers found." in r.output, r.output
    r = run_cli(lab, "delete", "ippool", "default-ipv4-ippool")
    assert r.exit_code != 0 and "addresses in use" in r.output and "spec.disabled: true" in r.output
    # a node's labels are the operator's: the agent's heartbeat keeps them
    assert run_cli(lab, "label", "node", "node1", "rack=r1").exit_code == 0

    def node1():
        return json.loads(run_cli(lab, "get", "node", "node1", "-o", "json").output)

    beat = node1()["status"]["conditions"][0]["lastHeartbeatTime"]
    assert wait_for(lambda: node1()["status"]["conditions"][0]["lastHeartbeatTime"] != beat, 12)
    assert node1()["metadata"]["labels"]["rack"] == "r1"


def test_200_concurrent_adds_across_4_nodes(make_lab):
    """200 CNI ADDs at once through the `podnet` plugin, 50 per node, with /28 blocks so that the
    nodes race each other for blocks: 200 distinct addresses in the pool, every block owned by
    one node; then 200 DELs give every address back."""
    import concurrent.futures

    lab = make_lab(4, "bgp", block_size=28)
    prefix = f"pn-{lab.state.name}-x"
    jobs = [(n, f"{prefix}{n.name[-1]}{i:02d}") for n in lab.state.nodes for i in range(50)]
    for _, ns in jobs:
        subprocess.run(["ip", "netns", "add", ns], check=True)

    def cni(command, node, ns, ok=True):
        d = lab.state.node_dir(node.name)
        conf = json.load(open(os.path.join(d, "net.d", "10-podnet.conflist")))["plugins"][0]
        env = {**os.environ, "CNI_COMMAND": command, "CNI_CONTAINERID": ns, "CNI_NETNS": f"/var/run/netns/{ns}",
               "CNI_IFNAME": "eth0", "CNI_PATH": os.path.join(d, "bin")}
        r = subprocess.run(["nsenter", f"--net=/var/run/netns/{node.netns}", os.path.join(d, "bin", "podnet")],
                           input=json.dumps({**conf, "cniVersion": "1.0.0", "name": "podnet"}), env=env,
                           capture_output=True, text=True, timeout=120)
        if not ok:
            return r
        assert r.returncode == 0, r.stdout + r.stderr
        return json.loads(r.stdout)["ips"][0]["address"].split("/")[0] if command == "ADD" else ""

    with concurrent.futures.ThreadPoolExecutor(64) as pool:
        ips = list(pool.map(lambda job: cni("ADD", *job), jobs))
    assert len(set(ips)) == 200 and all(ip.startswith("10.244.") for ip in ips)
    # the same ADD again fails (eth0 exists) and must not free the running pod's address
    again = cni("ADD", *jobs[0], ok=False)
    assert again.returncode != 0 and "already exists" in again.stdout, again.stdout
    with store_context(lab.state):
        store = lab.store()
        from podnet.agent.routed_cni import handle_for
        from podnet.ipam.blocks import BlockAllocator

        assert BlockAllocator(store, "node1").ips_of(handle_for(jobs[0][1], "eth0")) == [ips[0]]
        store.close()
    with store_context(lab.state):
        store = lab.store()
        from podnet.ipam.blocks import load_blocks

        blocks = load_blocks(store)
        assert sum(len(b.allocations) for b in blocks) >= 200
        assert {b.affinity for b in blocks} == {"node1", "node2", "node3", "node4"}
        with concurrent.futures.ThreadPoolExecutor(64) as pool:
            list(pool.map(lambda job: cni("DEL", *job), jobs))
        left = {b.ip(o): a["handle"] for b in load_blocks(store) for o, a in b.allocations.items()}
        store.close()
    # what is left: the 4 nodes' VXLAN tunnel addresses and the cluster DNS pod's
    assert len(left) == 5 and sum(h.startswith("vxlan-tunnel-addr-") for h in left.values()) == 4, left
