"""The proxy renderer (pure) and its transactions (checked against a real nft in a namespace)."""

from __future__ import annotations

import copy
import json
import subprocess

import pytest

from podnet.api.service import parse_service
from podnet.proxy import endpoints, render


def svc(name, **spec):
    doc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
           "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": "web"}], **spec}}
    s = parse_service(doc, "t")
    s["spec"]["clusterIP"] = s["spec"]["clusterIP"] or "10.96.0.20"
    return s


def pod(name, ip, node, app, port=8080):
    return {"metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "ports": [{"name": "web", "containerPort": port}]}]},
            "status": {"phase": "Running", "podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]}}


def test_endpoints_resolve_named_ports_and_skip_unready():
    s = svc("web")
    pods = [pod("a", "10.244.1.2", "node1", "web"), pod("b", "10.244.2.2", "node2", "web", port=9090),
            pod("c", "10.244.3.2", "node3", "other"), {**pod("d", "10.244.1.9", "node1", "web"), "status": {"phase": "Pending", "podIP": "10.244.1.9",
                                                                      "conditions": [{"type": "Ready", "status": "False"}]}}]
    out = endpoints.compute(s, pods)
    got = sorted((sl["ports"][0]["port"], ep["addresses"][0]) for sl in out["items"] for ep in sl["endpoints"])
    assert got == [(8080, "10.244.1.2"), (9090, "10.244.2.2")]
    assert endpoints.compute(s, pods) == out  # deterministic
    assert endpoints.compute(svc("lonely"), pods) == {"apiVersion": "v1", "kind": "List", "items": []}


def model_for(services, pods, node="node1"):
    slices = {(s["metadata"]["namespace"], s["metadata"]["name"]): endpoints.compute(s, pods) for s in services}
    return render.render(services, slices, node, "10.244.0.0/16")


def test_one_chain_per_service_port_and_endpoint_with_numgen():
    m = model_for([svc("web")], [pod("a", "10.244.1.2", "node1", "web"), pod("b", "10.244.2.2", "node2", "web")])
    assert m.maps["service-ips"] == {("10.96.0.20", "tcp", 80): next(c for c in m.chains if c.startswith("svc-"))}
    eps = [c for c in m.chains if c.startswith("ep-")]
    assert len(eps) == 2
    svc_rules = m.chains[m.maps["service-ips"][("10.96.0.20", "tcp", 80)]]
    numgen = svc_rules[-1][0]["vmap"]
    assert numgen["key"]["numgen"]["mod"] == 2 and {t[1]["goto"]["target"] for t in numgen["data"]["set"]} == set(eps)


def test_no_endpoints_means_reject_not_timeout():
    s = svc("web", type="NodePort")
    s["spec"]["ports"][0]["nodePort"] = 30081
    m = model_for([s], [])
    assert m.maps["no-endpoint-services"] == {("10.96.0.20", "tcp", 80): "reject-chain"}
    assert m.maps["no-endpoint-nodeports"] == {("tcp", 30081): "reject-chain"}
    assert m.maps["service-ips"] == {} and m.maps["service-nodeports"] == {}


def test_traffic_policies_and_affinity():
    pods = [pod("a", "10.244.1.2", "node1", "web"), pod("b", "10.244.2.2", "node2", "web")]
    s = svc("web", type="NodePort", externalTrafficPolicy="Local", internalTrafficPolicy="Local",
            sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})
    s["spec"]["ports"][0]["nodePort"] = 30080
    on2 = model_for([s], pods, node="node3")  # no local endpoint on node3
    assert ("10.96.0.20", "tcp", 80) in on2.maps["no-endpoint-services"]
    ext = on2.chains[on2.maps["service-nodeports"][("tcp", 30080)]]
    assert ext == [[{"drop": None}]]
    on1 = model_for([s], pods, node="node1")
    assert set(on1.sets.values()) == {60} and len(on1.sets) == 2
    local = [c for c in on1.chains if c.startswith("local-")]
    assert len(local) == 1 and on1.chains[local[0]][-1][0]["vmap"]["key"]["numgen"]["mod"] == 1


def test_a_local_terminating_endpoint_gets_its_chain_when_ready_ones_are_elsewhere():
    a = pod("a", "10.244.1.2", "node1", "web")
    a["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"  # still Ready: serving, terminating
    pods = [a, pod("b", "10.244.2.2", "node2", "web")]
    s = svc("web", type="NodePort", externalTrafficPolicy="Local")
    s["spec"]["ports"][0]["nodePort"] = 30080
    m = model_for([s], pods, node="node1")
    inside = m.chains[m.maps["service-ips"][("10.96.0.20", "tcp", 80)]]
    assert inside[-1][0]["vmap"]["key"]["numgen"]["mod"] == 1  # new connections: the ready pod b only
    (target,) = [t[1]["goto"]["target"] for t in inside[-1][0]["vmap"]["data"]["set"]]
    assert m.chains[target][-1][-1]["dnat"]["addr"] == "10.244.2.2"
    local = next(c for c in m.chains if c.startswith("local-"))
    (target,) = [t[1]["goto"]["target"] for t in m.chains[local][-1][0]["vmap"]["data"]["set"]]
    assert m.chains[target][-1][-1]["dnat"]["addr"] == "10.244.1.2"  # this node's NodePort: its draining pod


def test_diff_is_empty_when_nothing_changed_and_small_when_one_service_changes():
    pods = [pod(f"p{i}", f"10.244.1.{i + 2}", "node1", f"s{i % 50}") for i in range(200)]
    services = [svc(f"s{i}") for i in range(50)]
    for i, s in enumerate(services):
        s["spec"]["clusterIP"] = f"10.96.1.{i + 1}"
    a = model_for(services, pods)
    assert render.diff(a, model_for(services, pods)) == []
    b = model_for(services, pods[:-1])  # one endpoint of one service went away
    cmds = render.diff(a, b)
    assert 0 < len(cmds) <= 6, cmds


@pytest.mark.root
def test_transactions_are_accepted_by_nft(netns):
    ns = netns.new("nft")
    pods = [pod("a", "10.244.1.2", "node1", "web"), pod("b", "10.244.2.2", "node2", "web")]
    s1 = svc("web", type="LoadBalancer", sessionAffinity="ClientIP")
    s1["spec"]["ports"][0]["nodePort"] = 30080
    s1["status"] = {"loadBalancer": {"ingress": [{"ip": "172.31.100.1"}]}}
    s2 = svc("empty")
    s2["spec"]["clusterIP"] = "10.96.0.21"
    first = model_for([s1, s2], pods)
    second = model_for([s1], pods[:1])

    def nft(cmds):
        r = subprocess.run(["ip", "netns", "exec", ns, "nft", "-j", "-f", "-"], input=json.dumps({"nftables": cmds}),
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr

    nft(render.full(first))
    nft(render.diff(first, second))
    listing = json.loads(subprocess.run(["ip", "netns", "exec", ns, "nft", "-j", "list", "table", "ip", "podnet_proxy"],
                                        capture_output=True, text=True).stdout)["nftables"]
    chains = {x["chain"]["name"] for x in listing if "chain" in x}
    assert chains == set(second.chains)
    nft(render.diff(second, first))  # and back
    nft(render.full(copy.deepcopy(first)))  # a full replace is idempotent


@pytest.mark.root
def test_chunked_fill_equals_a_full_replace(netns):
    ns = netns.new("nft")
    pods = [pod(f"p{i}", f"10.244.1.{i + 2}", "node1", f"s{i % 5}") for i in range(20)]
    services = [svc(f"s{i}") for i in range(5)]
    for i, s in enumerate(services):
        s["spec"]["clusterIP"] = f"10.96.1.{i + 1}"
    model = model_for(services, pods)

    def listing():
        out = subprocess.run(["ip", "netns", "exec", ns, "nft", "-j", "list", "table", "ip", "podnet_proxy"],
                             capture_output=True, text=True).stdout
        items = json.loads(out)["nftables"]
        chains = sorted(x["chain"]["name"] for x in items if "chain" in x)
        rules = sorted(json.dumps([x["rule"]["chain"], x["rule"]["expr"]]) for x in items if "rule" in x)
        maps = sorted(json.dumps([x["map"]["name"], x["map"].get("elem", [])]) for x in items if "map" in x)
        return chains, rules, maps

    for batch in render.full_chunked(model, chains_per_batch=7):
        r = subprocess.run(["ip", "netns", "exec", ns, "nft", "-j", "-f", "-"], input=json.dumps({"nftables": batch}),
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    chunked = listing()
    subprocess.run(["ip", "netns", "exec", ns, "nft", "-j", "-f", "-"], input=json.dumps({"nftables": render.full(model)}),
                   capture_output=True, text=True, check=True)
    assert listing() == chunked
