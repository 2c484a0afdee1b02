"""Trust in what exists, checked as an attacker with pod-level access and as an operator would:
forged sources and injected VXLAN never pass NetworkPolicy, a stalled store or a dead agent does
not cut pods off, processes podnet starts are restarted, DNS survives whatever it is sent."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

from podnet.api.networkpolicy import parse_network_policy
from podnet.api.pod import parse_pod
from podnet.api.service import DNS_SERVICE_IP
from podnet.kernel import netns as kns
from podnet.lab import pods as pods_mod
from podnet.lab import policies, topology
from podnet.runtime.supervisor import read_state
from tests.lab.conftest import wait_for
from tests.raw_packets import SEND_UDP

pytestmark = [pytest.mark.root, pytest.mark.slow]

HERE = os.path.dirname(os.path.abspath(__file__))

LISTEN = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 9999))
while True:
    data, addr = s.recvfrom(2000)
    print(addr[0], data.decode(errors="replace"), flush=True)
"""


VXLAN = """
import socket, struct, sys
node_ip, port, vtep_mac, src, dst, payload = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
payload = payload.encode()
udp = struct.pack("!HHHH", 40000, 9999, 8 + len(payload), 0) + payload
hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, socket.inet_aton(src), socket.inet_aton(dst))
words = sum(struct.unpack("!10H", hdr))
words = (words & 0xFFFF) + (words >> 16)
hdr = hdr[:10] + struct.pack("!H", ~words & 0xFFFF) + hdr[12:]
inner = bytes.fromhex(vtep_mac.replace(":", "")) + bytes.fromhex("020000000001") + b"\\x08\\x00" + hdr + udp
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(struct.pack("!II", 0x08000000, 1 << 8) + inner, (node_ip, port))
"""


class Cluster:
    def __init__(self, lab) -> None:
        self.lab = lab
        self.state = lab.state

    def pod(self, name: str, node: str, labels: dict, command: list[str]) -> dict:
        doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
               "spec": {"nodeName": node, "containers": [{"name": "c", "command": command}]}}
        with topology.store_context(self.state):
            store = self.lab.store()
            try:
                return pods_mod.create_pod(self.state, store, parse_pod(doc, "test"))
            finally:
                store.close()

    def policy(self, name: str, spec: dict) -> None:
        pol = parse_network_policy({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name},
                                    "spec": spec}, "test")
        with topology.store_context(self.state):
            store = self.lab.store()
            try:
                policies.apply_network_policy(store, pol)
                revision = store.revision()
            finally:
                store.close()
        assert not policies.wait_enforced(self.state, revision, 10)

    def run(self, pod: dict, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", pod["metadata"]["annotations"]["podnet.io/netns"], *argv],
                              capture_output=True, text=True, timeout=30)

    def received(self, pod: dict) -> list[str]:
        with open(pod["metadata"]["annotations"]["podnet.io/log"]) as f:
            return [line.split(" ", 1)[1].strip() for line in f if " " in line]

    def node_status(self, node: str) -> dict:
        with topology.store_context(self.state):
            store = self.lab.store()
            try:
                return json.loads(store.get(f"/podnet/nodes/{node}").value)["status"]["podnet"]
            finally:
                store.close()


def ip_of(pod: dict) -> str:
    return pod["status"]["podIP"]


@pytest.mark.parametrize("backend", ["host-gw", "vxlan"])
def test_forged_sources_never_pass_a_policy(make_lab, backend):
    c = Cluster(make_lab(2, backend))
    listen = [sys.executable, "-c", LISTEN]
    a = c.pod("a", "node1", {"role": "a"}, ["sleep", "3600"])
    m = c.pod("m", "node1", {"role": "m"}, ["sleep", "3600"])
    targets = {"same-node": c.pod("t-local", "node1", {"role": "t"}, listen),
               "cross-node": c.pod("t-remote", "node2", {"role": "t"}, listen)}
    open_target = c.pod("u", "node2", {"role": "u"}, listen)
    # t admits only a; m may send nothing at all
    c.policy("only-a", {"podSelector": {"matchLabels": {"role": "t"}},
                        "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "a"}}}]}]})
    c.policy("m-deny-egress", {"podSelector": {"matchLabels": {"role": "m"}}, "policyTypes": ["Egress"]})
    time.sleep(0.5)  # the listeners bind
    for where, t in targets.items():
        c.run(a, sys.executable, "-c", SEND_UDP, ip_of(a), ip_of(t), f"from-a-{where}")
        c.run(m, sys.executable, "-c", SEND_UDP, ip_of(m), ip_of(t), f"m-own-{where}")
        c.run(m, sys.executable, "-c", SEND_UDP, ip_of(a), ip_of(t), f"m-as-a-{where}")   # ingress bypass attempt
    c.run(m, sys.executable, "-c", SEND_UDP, ip_of(a), ip_of(open_target), "m-as-a-egress")  # egress bypass attempt
    c.run(a, sys.executable, "-c", SEND_UDP, ip_of(a), ip_of(open_target), "from-a-open")
    for where, t in targets.items():
        assert wait_for(lambda t=t, where=where: f"from-a-{where}" in c.received(t), 5), (where, c.received(t))
    assert wait_for(lambda: "from-a-open" in c.received(open_target), 5)
    time.sleep(0.5)
    for where, t in targets.items():
        assert c.received(t) == [f"from-a-{where}"], f"{where}: {c.received(t)}"
    assert c.received(open_target) == ["from-a-open"]
    # counted, and visible in the Node's status once the agent's next sync has read the counters
    assert wait_for(lambda: c.node_status("node1").get("spoofedPackets", {}).get("default/m", 0) >= 3, 25), \
        c.node_status("node1")


def test_vxlan_from_a_pod_is_never_decapsulated(make_lab):
    c = Cluster(make_lab(2, "vxlan"))
    a = c.pod("a", "node1", {"role": "a"}, ["sleep", "3600"])
    m = c.pod("m", "node1", {"role": "m"}, ["sleep", "3600"])
    t = c.pod("t", "node2", {"role": "t"}, [sys.executable, "-c", LISTEN])
    c.policy("only-a", {"podSelector": {"matchLabels": {"role": "t"}},
                        "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "a"}}}]}]})
    time.sleep(0.5)
    vtep = {}
    for node in c.state.nodes:
        out = subprocess.run(["ip", "-n", node.netns, "-j", "link", "show", "podnet.1"], capture_output=True, text=True).stdout
        vtep[node.name] = json.loads(out)[0]["address"]
    node1, node2 = c.state.node("node1"), c.state.node("node2")
    # to the target's node across the underlay (masqueraded by node1), and from t itself to its own node
    c.run(m, sys.executable, "-c", VXLAN, node2.ip, "8472", vtep["node2"], ip_of(a), ip_of(t), "injected-remote")
    c.run(t, sys.executable, "-c", VXLAN, node2.ip, "8472", vtep["node2"], ip_of(a), ip_of(t), "injected-local")
    c.run(m, sys.executable, "-c", VXLAN, node1.ip, "8472", vtep["node1"], ip_of(a), ip_of(t), "injected-via-node1")
    c.run(a, sys.executable, "-c", SEND_UDP, ip_of(a), ip_of(t), "from-a")
    assert wait_for(lambda: "from-a" in c.received(t), 5)
    time.sleep(0.5)
    assert c.received(t) == ["from-a"]
    dropped = 0
    for node in (node1, node2):
        out = subprocess.run(["ip", "netns", "exec", node.netns, "nft", "-j", "list", "counter", "ip", "podnet_overlay",
                              "foreign-vxlan"], capture_output=True, text=True, check=True).stdout
        dropped += next(i["counter"]["packets"] for i in json.loads(out)["nftables"] if "counter" in i)
    assert dropped == 3
    # and the pods still reach each other through the real overlay
    c.run(a, sys.executable, "-c", SEND_UDP, ip_of(a), ip_of(t), "from-a-again")
    assert wait_for(lambda: "from-a-again" in c.received(t), 5)


def _connection(src: dict, dst: dict, port: int = 8080):
    with kns.entered(f"/var/run/netns/{src['metadata']['annotations']['podnet.io/netns']}"):
        conn = socket.create_connection((ip_of(dst), port), timeout=5)
    f = conn.makefile("rwb")
    assert f.readline().decode().split()[0] == ip_of(src)
    return conn, f


def _echo(f, text: str) -> bool:
    try:
        f.write(text.encode() + b"\n")
        f.flush()
        return f.readline() == text.encode() + b"\n"
    except OSError:
        return False


def test_agents_dead_for_60s_do_not_cut_a_cross_node_connection(make_lab):
    lab = make_lab(3, "vxlan")
    server = lab.apply_pod("server", "node1")
    client = lab.apply_pod("client", "node2")
    time.sleep(0.5)
    conn, f = _connection(client, server)
    try:
        st = lab.state
        routes_before = subprocess.run(["ip", "-n", st.node("node1").netns, "route"], capture_output=True, text=True).stdout
        topology.stop_agent(st.node("node2"), hard=True)  # the agent and its supervisor: nobody restarts it
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < 60:
            assert _echo(f, f"down-{n}"), f"the connection broke {time.monotonic() - t0:.0f} s after the agent died"
            n += 1
            time.sleep(5)
        routes_after = subprocess.run(["ip", "-n", st.node("node1").netns, "route"], capture_output=True, text=True).stdout
        assert routes_after == routes_before  # node2's lease outlives its agent: node1 keeps the route
        topology.start_agent(st, st.node("node2"))
        topology.wait_ready(st, ["node2"])
        assert _echo(f, "after")
    finally:
        conn.close()


def test_a_35s_etcd_stall_leaves_agents_up_and_the_datapath_unchanged(make_lab, tmp_path):
    lab = make_lab(2, "vxlan", "etcd")
    st = lab.state
    server = lab.apply_pod("server", "node1")
    client = lab.apply_pod("client", "node2")
    time.sleep(0.5)
    conn, f = _connection(client, server)
    etcd_state = os.path.join(st.directory, "etcd", "etcd.state.json")
    etcd = read_state(etcd_state)["pid"]
    agents = {n.name: read_state(topology.agent_state_path(st, n.name)) for n in st.nodes}
    kernel_before = {n.name: subprocess.run(["ip", "-n", n.netns, "route"], capture_output=True, text=True).stdout
                     for n in st.nodes}
    env = dict(os.environ, PODNET_LAB_DIR=st.directory)
    manifest = tmp_path / "late.yaml"
    manifest.write_text(json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "late"},
                                    "spec": {"nodeName": "node1", "containers": [{"name": "c", "command": [
                                        sys.executable, "-m", "podnet.lab.echo", "--port", "8080"]}]}}))
    pod_netns = lambda: {n for n in subprocess.run(["ip", "netns", "list"], capture_output=True,  # noqa: E731
                                                   text=True).stdout.split() if n.startswith(f"pn-{st.name}-p-")}
    netns_before = pod_netns()
    os.kill(etcd, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        # a pod asked for meanwhile: it either waits or fails with a clear error, leaving nothing
        late = subprocess.run([sys.executable, "-m", "podnet.cli.main", "apply", "-f", str(manifest)],
                              capture_output=True, text=True, env=env, timeout=120)
        assert "Traceback" not in late.stderr, late.stderr
        if late.returncode != 0:
            assert "datastore is unavailable" in late.stderr and "no answer within" in late.stderr, late.stderr
            assert pod_netns() == netns_before
        while time.monotonic() - t0 < 35:
            assert _echo(f, "stalled"), "the datapath changed while etcd was stopped"
            time.sleep(3)
        for n in st.nodes:  # every agent is still the same process: none exited
            now = read_state(topology.agent_state_path(st, n.name))
            assert now["restartCount"] == agents[n.name]["restartCount"] and now["pid"] == agents[n.name]["pid"], now
            assert subprocess.run(["ip", "-n", n.netns, "route"], capture_output=True, text=True).stdout == kernel_before[n.name]
    finally:
        os.kill(etcd, signal.SIGCONT)
    # after: everything converges, and a pod can be created and reached
    r = subprocess.run([sys.executable, "-m", "podnet.cli.main", "apply", "-f", str(manifest)], capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    nodes = lambda: json.loads(subprocess.run([sys.executable, "-m", "podnet.cli.main", "get", "nodes", "-o", "json"],  # noqa: E731
                                              capture_output=True, text=True, env=env).stdout)
    assert wait_for(lambda: all(c["status"] == "True" for n in nodes()["items"] for c in n["status"]["conditions"]), 30)
    late_pod = next(p for p in lab.pods() if p["metadata"]["name"] == "late")
    conn2, f2 = _connection(client, late_pod)
    conn2.close()
    assert _echo(f, "after")
    conn.close()
    for n in st.nodes:
        log = open(os.path.join(st.node_dir(n.name), "agent.log")).read()
        assert "recovered" in log or "failed" not in log


def _dns_query(netns: str, payload: bytes, tcp: bool = False, timeout: float = 1.0) -> bytes | None:
    with kns.entered(f"/var/run/netns/{netns}"):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        if tcp:
            s.connect((DNS_SERVICE_IP, 53))
            s.sendall(struct.pack("!H", len(payload)) + payload)
            head = s.recv(2)
            return s.recv(65535) if len(head) == 2 else None
        s.sendto(payload, (DNS_SERVICE_IP, 53))
        return s.recv(65535)
    except OSError:
        return None
    finally:
        s.close()


def test_dns_keeps_answering_through_the_fuzz_set_and_processes_are_restarted(make_lab):
    from dnslib import DNSRecord

    from tests.dns.test_server import LONG, query_bytes

    lab = make_lab(2, "vxlan")
    st = lab.state
    client = lab.apply_pod("client", "node2")
    ns = client["metadata"]["annotations"]["podnet.io/netns"]

    def answers() -> bool:
        raw = _dns_query(ns, DNSRecord.question("kube-dns.kube-system.svc.cluster.local", "A").pack(), timeout=2)
        return raw is not None and [str(r.rdata) for r in DNSRecord.parse(raw).rr] == [DNS_SERVICE_IP]

    assert wait_for(answers, 15)
    rng = random.Random(16)
    fuzz = [query_bytes(LONG), b"\x00" * 11, b"\x12\x34\x81\x80" + b"\x00" * 8]  # the overlong name, runt, a response
    good = DNSRecord.question("web.default.svc.cluster.local", "A").pack()
    for _ in range(300):
        mutated = bytearray(good)
        for _ in range(rng.randint(1, 6)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        fuzz.append(bytes(mutated))
        fuzz.append(bytes(rng.randrange(256) for _ in range(rng.randint(0, 80))))
    for payload in fuzz:
        _dns_query(ns, payload, timeout=0.05)
    for payload in fuzz[:40]:
        _dns_query(ns, payload, tcp=True, timeout=0.2)
    assert answers()
    with topology.store_context(st):
        store = lab.store()
        dns_pod = pods_mod.list_pods(st, store, "kube-system")[0]
        store.close()
    status = dns_pod["status"]["containerStatuses"][0]
    assert status["restartCount"] == 0 and "running" in status["state"], status

    # the DNS container killed: its supervisor restarts it at once, and it answers again
    os.kill(read_state(dns_pod["metadata"]["annotations"]["podnet.io/state"])["pid"], signal.SIGKILL)
    assert wait_for(lambda: (read_state(dns_pod["metadata"]["annotations"]["podnet.io/state"]) or {}).get("restartCount") == 1, 10)
    assert wait_for(answers, 15)

    # the agent killed: restarted by its supervisor, the node stays Ready, get nodes says so
    agent_state = topology.agent_state_path(st, "node1")
    os.kill(read_state(agent_state)["pid"], signal.SIGKILL)
    assert wait_for(lambda: (read_state(agent_state) or {}).get("restartCount") == 1 and "running" in read_state(agent_state)["state"],
                    15)
    topology.wait_ready(st, ["node1"])
    env = dict(os.environ, PODNET_LAB_DIR=st.directory)
    wide = subprocess.run([sys.executable, "-m", "podnet.cli.main", "get", "nodes", "-o", "wide"], capture_output=True,
                          text=True, env=env).stdout
    assert "Running, 1 restart" in wide.splitlines()[1], wide
