"""NetworkPolicy with real packets: the e2e truth-table model in a 3-node lab.

Namespaces x, y, z; pods a (node1), b (node2), c (node3) in each, serving TCP and UDP on 80 and
81. For every case of tests/policy/cases.py the policies go into the store, the test waits until
every agent reports it enforces that store revision, and then all 81 ordered pairs are probed on
each port the case names. The blocked pairs must be exactly the ones the case states by hand, and
exactly what the policy model (podnet.policy.evaluate) derives from the store.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time

import pytest

from podnet.api import keys
from podnet.api.keys import NETWORK_POLICIES
from podnet.api.networkpolicy import parse_namespace, parse_network_policy
from podnet.api.pod import parse_pod
from podnet.api.service import DNS_SERVICE_IP
from podnet.kernel import netns as kns
from podnet.lab import pods as pods_mod
from podnet.lab import policies, probe
from podnet.ipam.blocks import cidr_of_key
from podnet.policy.evaluate import truth_table
from podnet.policy.world import load_world
from tests.lab.conftest import module_lab, wait_for
from tests.policy.cases import CASES, NODE_OF, NS, PODS, PORTS, Case, pairs

pytestmark = pytest.mark.root
SERVE = [sys.executable, "-m", "podnet.lab.echo", "--port", "80", "--port", "81", "--udp"]


class PolicyLab:
    def __init__(self, lab) -> None:
        self.lab = lab
        self.state = lab.state
        self.store = lab.store()

    def pods(self) -> list[dict]:
        return sorted((p for ns in NS for p in pods_mod.list_pods(self.state, self.store, ns)), key=probe.pod_label)

    def ip_of(self) -> dict[str, str]:
        """Pods' IPs, and each node's pod range: its pod CIDR, or in routed mode its first block."""
        out = {probe.pod_label(p): p["status"]["podIP"] for p in self.pods()}
        for n in self.state.nodes:
            node = json.loads(self.store.get(f"{keys.NODES}{n.name}").value)
            blocks = sorted(str(c) for c in (cidr_of_key(kv.key) for kv in
                                             self.store.list(f"{keys.IPAM_AFFINITIES}{n.name}/")[0]) if c)
            out[n.name] = node["spec"].get("podCIDR") or blocks[0]
        return out

    def netns_of(self, pod: str) -> str:
        ns, name = pod.split("/")
        return pods_mod.get_pod(self.store, ns, name)["metadata"]["annotations"]["podnet.io/netns"]

    def set_policies(self, specs: list[tuple[str, dict]], ns_labels: dict[str, dict] | None = None) -> None:
        """Make the store hold exactly these policies and namespace labels; wait until enforced."""
        wrote = False
        for n in NS:
            doc = {"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": n, "labels": {"ns": n, **(ns_labels or {}).get(n, {})}}}
            wrote |= policies.apply_namespace(self.store, parse_namespace(doc, "test")) != "unchanged"
        wanted = {}
        for i, (ns, spec) in enumerate(specs):
            doc = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                   "metadata": {"name": f"case-{i}", "namespace": ns}, "spec": spec}
            pol = parse_network_policy(doc, "test")
            wanted[(ns, pol["metadata"]["name"])] = pol
        for kv in self.store.list(NETWORK_POLICIES)[0]:
            ns, name = kv.key[len(NETWORK_POLICIES):].split("/", 1)
            if (ns, name) not in wanted:
                wrote |= self.store.delete(kv.key)
        for pol in wanted.values():
            wrote |= policies.apply_network_policy(self.store, pol) != "unchanged"
        if wrote:
            self.wait_enforced()

    def wait_enforced(self) -> None:
        behind = policies.wait_enforced(self.state, self.store.revision(), timeout=10)
        assert not behind, f"agents on {behind} did not enforce the latest revision within 10 s"

    def blocked(self, port: int, proto: str) -> set[tuple[str, str]]:
        return {pair for pair, ok in probe.probe_pods(self.pods(), port, proto).items() if not ok}


@pytest.fixture(scope="module", params=["vxlan", "bgp"])
def plab(tmp_path_factory, request):
    """The truth tables hold whatever wires the pods: a bridge per node (vxlan) or routed /32s (bgp)."""
    with module_lab(tmp_path_factory, "np", 3, backend=request.param) as lab:
        pl = PolicyLab(lab)
        pl.set_policies([])
        ports = [{"name": name, "containerPort": number, "protocol": proto} for name, number, proto in PORTS]
        for n in NS:
            for p in PODS:
                doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": p, "namespace": n, "labels": {"pod": p}},
                       "spec": {"nodeName": NODE_OF[p], "containers": [{"name": "serve", "command": SERVE, "ports": ports}]}}
                pods_mod.create_pod(pl.state, pl.store, parse_pod(doc, "test"))
        pl.wait_enforced()
        deadline = time.monotonic() + 15  # until every server listens
        while pl.blocked(80, "TCP") | pl.blocked(81, "UDP") and time.monotonic() < deadline:
            time.sleep(0.2)
        try:
            yield pl
        finally:
            pl.store.close()


def _report(pl: PolicyLab, port: int, proto: str, got: set, want: set) -> str:
    names = [probe.pod_label(p) for p in pl.pods()]
    observed = {(s, d): (s, d) not in got for s in names for d in names}
    expected = {(s, d): (s, d) not in want for s in names for d in names}
    return (f"\n{proto}/{port} observed:\n{probe.grid(names, observed)}\nexpected:\n{probe.grid(names, expected)}\n"
            + "\n".join(probe.differences(expected, observed)))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_truth_table(plab, case: Case):
    plab.set_policies(case.specs(plab.ip_of()), case.ns_labels)
    world = load_world(plab.store)[0]
    for (port, proto), want in case.blocked.items():
        model = {pair for pair, ok in truth_table(world, port, proto).items()
                 if not ok and pair[0].split("/")[0] in NS and pair[1].split("/")[0] in NS}
        assert model == want, f"the policy model disagrees with the case on {proto}/{port}"
        got = plab.blocked(port, proto)
        assert got == want, _report(plab, port, proto, got, want)


def _dns_query(netns: str, name: str, timeout: float = 1.0) -> bool:
    """An A query for `name` to the cluster DNS service from inside `netns`: answered or not."""
    from dnslib import DNSRecord

    with kns.entered(f"/var/run/netns/{netns}"):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with s:
        s.settimeout(timeout)
        try:
            s.sendto(DNSRecord.question(name).pack(), (DNS_SERVICE_IP, 53))
            reply = DNSRecord.parse(s.recv(4096))
        except OSError:
            return False
    return bool(reply.rr)


def test_egress_to_dns_through_the_service(plab):
    """Default-deny egress in x blocks DNS too; allowing UDP/53 to kube-system brings names back,
    through the kube-dns ClusterIP (policy sees the DNS pod after the service DNAT)."""
    name = "kube-dns.kube-system.svc.cluster.local"
    src = plab.netns_of("x/a")
    plab.set_policies([("x", {"podSelector": {}, "policyTypes": ["Egress"]})])
    assert not _dns_query(src, name)
    assert _dns_query(plab.netns_of("y/a"), name)
    plab.set_policies([("x", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{
        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
        "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}]})])
    assert _dns_query(src, name)
    assert plab.blocked(80, "TCP") == pairs(["x/a", "x/b", "x/c"], [f"{n}/{p}" for n in NS for p in PODS])


def _stream(netns: str, ip: str, port: int, stop: threading.Event, log: list) -> None:
    """One long-lived TCP connection sending a line every 50 ms; log the times of echoed lines."""
    with kns.entered(f"/var/run/netns/{netns}"):
        s = socket.socket()
    with s:
        s.settimeout(2)
        s.connect((ip, port))
        f = s.makefile("rb")
        f.readline()  # the greeting
        while not stop.is_set():
            s.sendall(b"ping\n")
            if f.readline() != b"ping\n":
                log.append(("broken", time.monotonic()))
                return
            log.append(("ok", time.monotonic()))
            time.sleep(0.05)


def _first_time(check, want: bool, timeout: float) -> float:
    """Seconds until check() first gives `want`; infinity if it never does within `timeout`."""
    start = time.monotonic()
    return time.monotonic() - start if wait_for(lambda: check() == want, timeout, 0.02) else float("inf")


def test_updates_while_traffic_flows(plab):
    """A policy added under a live connection: the established connection keeps flowing (replies of
    allowed connections pass), new connections are blocked within 2 s, and allowed again within 2 s
    of the policy going away."""
    plab.set_policies([])
    ip_xa = plab.ip_of()["x/a"]
    src = plab.netns_of("y/b")
    stop, log = threading.Event(), []
    t = threading.Thread(target=_stream, args=(src, ip_xa, 80, stop, log), daemon=True)
    t.start()
    try:
        time.sleep(0.3)
        before = len(log)
        plab.store.put("/podnet/networkpolicies/x/deny", json.dumps(parse_network_policy(
            {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "deny", "namespace": "x"},
             "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}, "test")))
        blocked_after = _first_time(lambda: probe.reach(src, ip_xa, 81, "TCP", 0.3), False, 5)
        time.sleep(0.5)
        assert log and log[-1][0] == "ok" and len(log) > before + 10, "the established connection stopped"
        plab.store.delete("/podnet/networkpolicies/x/deny")
        allowed_after = _first_time(lambda: probe.reach(src, ip_xa, 81, "TCP", 0.3), True, 5)
    finally:
        stop.set()
        t.join(3)
    print(f"policy to enforced: added {blocked_after:.3f} s, removed {allowed_after:.3f} s; "
          f"{len(log)} echoes on the established connection")
    assert blocked_after <= 2 and allowed_after <= 2, (blocked_after, allowed_after)
    assert all(kind == "ok" for kind, _ in log)


def test_label_changes_re_render_within_2s(plab):
    """x/a admits only pods labelled role=client and namespaces labelled trusted=yes: relabelling a
    pod or a namespace changes who gets through, within 2 s."""
    plab.set_policies([("x", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {"role": "client"}}},
        {"namespaceSelector": {"matchLabels": {"trusted": "yes"}}}]}]})])
    ip_xa = plab.ip_of()["x/a"]
    from_zc, from_yb = plab.netns_of("z/c"), plab.netns_of("y/b")
    assert not probe.reach(from_zc, ip_xa, 80) and not probe.reach(from_yb, ip_xa, 80)

    pod = pods_mod.get_pod(plab.store, "z", "c")
    pod["metadata"]["labels"]["role"] = "client"
    plab.store.put("/podnet/pods/z/c", json.dumps(pod))
    took_pod = _first_time(lambda: probe.reach(from_zc, ip_xa, 80, "TCP", 0.3), True, 5)

    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "y", "labels": {"ns": "y", "trusted": "yes"}}}
    policies.apply_namespace(plab.store, parse_namespace(ns, "test"))
    took_ns = _first_time(lambda: probe.reach(from_yb, ip_xa, 80, "TCP", 0.3), True, 5)

    del pod["metadata"]["labels"]["role"]
    plab.store.put("/podnet/pods/z/c", json.dumps(pod))
    took_back = _first_time(lambda: probe.reach(from_zc, ip_xa, 80, "TCP", 0.3), False, 5)
    print(f"label change to enforced: pod {took_pod:.3f} s, namespace {took_ns:.3f} s, pod back {took_back:.3f} s")
    assert max(took_pod, took_ns, took_back) <= 2, (took_pod, took_ns, took_back)
    plab.set_policies([])  # and the namespace labels back as they were


def test_the_pods_own_node_gets_through(plab):
    """Kubelet probes come from the pod's node: default-deny ingress does not stop them. Another
    node is just another address for the policy, so it is blocked like any other source."""
    plab.set_policies([("x", {"podSelector": {}, "policyTypes": ["Ingress"]})])
    ips = plab.ip_of()
    node1 = plab.state.node("node1").netns
    assert probe.reach(node1, ips["x/a"], 80)        # x/a lives on node1
    assert not probe.reach(node1, ips["x/b"], 80)    # x/b lives on node2
    assert probe.reach(node1, ips["y/b"], 80)        # y is not isolated


def test_egress_isolation_covers_the_nodes_addresses(plab):
    """A pod's packets to a node address end in the node's input hook, not forward: default-deny
    egress must stop them there too, and an ipBlock for the underlay lets them through again.
    Port 9 has no listener: reachable shows as a refusal, blocked as a timeout."""
    node1_ip = plab.state.node("node1").ip
    src = plab.netns_of("x/a")  # on node1
    assert probe.tcp_exchange(src, node1_ip, 9, timeout=1)[1] == "ConnectionRefusedError"
    plab.set_policies([("x", {"podSelector": {}, "policyTypes": ["Egress"]})])
    assert probe.tcp_exchange(src, node1_ip, 9, timeout=1)[1] == "TimeoutError"
    assert probe.tcp_exchange(plab.netns_of("x/b"), node1_ip, 9, timeout=1)[1] == "TimeoutError"  # from node2
    plab.set_policies([("x", {"podSelector": {}, "policyTypes": ["Egress"],
                              "egress": [{"to": [{"ipBlock": {"cidr": "172.31.0.0/24"}}]}]})])
    assert probe.tcp_exchange(src, node1_ip, 9, timeout=1)[1] == "ConnectionRefusedError"
