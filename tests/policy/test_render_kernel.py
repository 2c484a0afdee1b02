"""The rendered policy table, applied to a real node namespace, must give exactly the oracle's
answers for every pair of pods (TCP 80 and 81)."""

from __future__ import annotations

import json
import socket
import subprocess
import threading

import pytest

from podnet.kernel import netns as kns
from podnet.policy import render
from podnet.policy.evaluate import truth_table
from tests.policy.test_evaluate import world

pytestmark = pytest.mark.root
LOCAL = [("x", "a"), ("x", "b"), ("y", "a"), ("z", "c")]


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    import os
    import uuid

    if os.geteuid() != 0:
        pytest.skip("needs root")
    tag = uuid.uuid4().hex[:5]
    node_ns = f"pn-pol{tag}-n"
    made = [node_ns]
    subprocess.run(["ip", "netns", "add", node_ns], check=True)
    subprocess.run(["ip", "-n", node_ns, "link", "add", "br0", "type", "bridge"], check=True)
    subprocess.run(["ip", "-n", node_ns, "link", "set", "br0", "up"], check=True)
    w = world()
    pods = {}
    stop = threading.Event()
    try:
        for i, (ns, name) in enumerate(LOCAL):
            pod = next(p for p in w.pods if (p.namespace, p.name) == (ns, name))
            pns = f"pn-pol{tag}-{ns}{name}"
            subprocess.run(["ip", "netns", "add", pns], check=True)
            made.append(pns)
            subprocess.run(["ip", "-n", node_ns, "link", "add", f"v{i}", "type", "veth", "peer", "name", "eth0", "netns", pns], check=True)
            subprocess.run(["ip", "-n", node_ns, "link", "set", f"v{i}", "master", "br0", "up"], check=True)
            subprocess.run(["ip", "-n", pns, "addr", "add", f"{pod.ip}/8", "dev", "eth0"], check=True)
            subprocess.run(["ip", "-n", pns, "link", "set", "eth0", "up"], check=True)
            subprocess.run(["ip", "-n", pns, "link", "set", "lo", "up"], check=True)  # a pod reaching its own IP
            pods[pod.ip] = (pns, pod)
            for port in (80, 81):
                with kns.entered(f"/var/run/netns/{pns}"):
                    srv = socket.socket()
                srv.bind((pod.ip, port))
                srv.listen(64)
                srv.settimeout(0.2)
                threading.Thread(target=_serve, args=(srv, stop), daemon=True).start()
        yield node_ns, pods
    finally:
        stop.set()
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _serve(srv, stop):
    while not stop.is_set():
        try:
            c, _ = srv.accept()
            c.close()
        except OSError:
            pass


def _connects(src_ns: str, ip: str, port: int) -> bool:
    with kns.entered(f"/var/run/netns/{src_ns}"):
        s = socket.socket()
    with s:
        s.settimeout(0.3)
        try:
            s.connect((ip, port))
            return True
        except OSError:
            return False


CASES = {
    "no policy": [],
    "deny ingress x": [("x", {"podSelector": {}, "policyTypes": ["Ingress"]})],
    "x/a from pod b": [("x", {"podSelector": {"matchLabels": {"pod": "a"}},
                              "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]})],
    "x from ns y": [("x", {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]})],
    "x ipBlock except y": [("x", {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.244.0.0/16",
                                                                                        "except": ["10.244.2.0/24"]}}]}]})],
    "x named port 81": [("x", {"podSelector": {}, "ingress": [{"ports": [{"port": "serve-81-tcp"}]}]})],
    "deny egress y": [("y", {"podSelector": {}, "policyTypes": ["Egress"]})],
    "x admits only SCTP 80": [("x", {"podSelector": {}, "ingress": [{"ports": [{"port": 80, "protocol": "SCTP"}]}]})],
    "x egress ipBlock with named port": [("x", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
        {"to": [{"ipBlock": {"cidr": "10.244.0.0/16", "except": ["10.244.3.0/24"]}}], "ports": [{"port": "serve-81-tcp"}]}]})],
    "z egress named port to x": [("z", {"podSelector": {}, "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"ns": "x"}}}],
                                                                        "ports": [{"port": "serve-80-tcp"}]}]})],
}


@pytest.mark.parametrize("case", list(CASES))
def test_kernel_matches_the_oracle(node, case):
    node_ns, pods = node
    w = world(*CASES[case])
    for p in w.pods:  # every pod of the world that exists here lives on this node
        if p.ip in pods:
            object.__setattr__(p, "node", "n1")
    cmds = render.render(w, "n1")
    r = subprocess.run(["ip", "netns", "exec", node_ns, "nft", "-j", "-f", "-"], input=json.dumps({"nftables": cmds}),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    mismatches = []
    for port in (80, 81):
        expected = truth_table(w, port)
        for src_ip, (src_ns, src) in pods.items():
            for dst_ip, (_, dst) in pods.items():
                want = expected[(f"{src.namespace}/{src.name}", f"{dst.namespace}/{dst.name}")]
                got = _connects(src_ns, dst_ip, port)
                if got != want:
                    mismatches.append((f"{src.namespace}/{src.name}", f"{dst.namespace}/{dst.name}", port, want, got))
    assert not mismatches, mismatches
