"""Fuzzing what podnet reads from users and the network, without root: manifests of every
kind, DNS packets, the agent's CNI socket protocol, libcni conflists and cache files, and
corrupt values in the datastore. Properties: only the specified error (never a Python
internal), and the servers keep serving the good objects around a bad one."""

from __future__ import annotations

import copy
import json
import os
import stat
import struct
import sys

import pytest
from dnslib import DNSRecord
from hypothesis import given
from hypothesis import strategies as st

from podnet.agent import survive
from podnet.proxy import endpoints as ep_mod
from podnet.proxy import maps
from podnet.agent.cniserver import answer as cni_answer
from podnet.api import stored
from podnet.api.deployment import parse_deployment
from podnet.api.errors import ValidationError
from podnet.api.manifest import load_documents
from podnet.api.networkpolicy import parse_namespace, parse_network_policy
from podnet.api.pod import parse_pod
from podnet.api.service import parse_service
from podnet.cni.errors import CNIError
from podnet.cni.runner import ConfList, Runner, RuntimeConf
from podnet.dns import records
from podnet.dns.server import ClusterResolver, answer as dns_answer
from podnet.policy import world as policy_world
from tests.fuzz.cni_worker import check_answer
from tests.fuzz.strategies import json_values, mutated


pytestmark = pytest.mark.fuzz

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
       "spec": {"nodeName": "node1", "restartPolicy": "Always",
                "containers": [{"name": "c", "command": ["sleep", "60"], "args": ["x"], "env": [{"name": "A", "value": "b"}],
                                "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}]}]},
       "status": {"phase": "Running", "podIP": "10.244.1.5", "conditions": [{"type": "Ready", "status": "True"}]}}
SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
           "spec": {"type": "NodePort", "selector": {"app": "web"}, "clusterIP": "10.96.0.50", "sessionAffinity": "ClientIP",
                    "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}, "externalTrafficPolicy": "Local",
                    "ports": [{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30080, "protocol": "TCP"},
                              {"name": "dns", "port": 53, "targetPort": 53, "protocol": "UDP"}]}}
POLICY = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "p", "namespace": "default"},
          "spec": {"podSelector": {"matchLabels": {"app": "web"},
                                   "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a"]}]},
                   "policyTypes": ["Ingress", "Egress"],
                   "ingress": [{"from": [{"podSelector": {}}, {"namespaceSelector": {"matchLabels": {"x": "y"}}},
                                         {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
                                "ports": [{"port": "http"}, {"port": 8000, "endPort": 8080, "protocol": "UDP"}]}],
                   "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]}}
NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x", "labels": {"team": "a"}}}
DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "default"},
              "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "d"}},
                       "template": {"metadata": {"labels": {"app": "d"}}, "spec": POD["spec"]}}}
PARSERS = {"Pod": parse_pod, "Service": parse_service, "NetworkPolicy": parse_network_policy,
           "Namespace": lambda d, s, _ns="default": parse_namespace(d, s), "Deployment": parse_deployment}


@given(doc=st.one_of(*(mutated(d, rounds=4) for d in (POD, SERVICE, POLICY, NAMESPACE, DEPLOYMENT))))
def test_manifests_of_every_kind_fail_only_with_a_field_named(doc):
    kind = doc.get("kind") if isinstance(doc.get("kind"), str) else "Pod"
    parser = PARSERS.get(kind, parse_pod)
    try:
        out = parser(doc, "fuzz.yaml", "default")
    except ValidationError as e:
        assert e.field and e.problem
        return
    if isinstance(out, dict):  # what is stored parses again to itself (get -o yaml | apply)
        assert parser(copy.deepcopy(out), "stored", "default") == out


@given(text=st.one_of(st.text(max_size=200), json_values.map(json.dumps),
                      st.lists(json_values, max_size=3).map(lambda docs: "\n---\n".join(json.dumps(d) for d in docs))))
def test_manifest_files_fail_only_with_a_validation_error(text):
    try:
        docs = load_documents(text, "fuzz.yaml")
    except ValidationError:
        return
    assert all(isinstance(d, dict) for d in docs)


GOOD_QUERY = DNSRecord.question("web.default.svc.cluster.local", "SRV").pack()


def _resolver() -> ClusterResolver:
    r = ClusterResolver("cluster.local", None)
    r.set_index(records.build([parse_service(SERVICE, "x")], {}))
    return r


@given(data=st.one_of(st.binary(max_size=300), st.lists(st.tuples(st.integers(0, len(GOOD_QUERY) - 1), st.integers(0, 255)),
                                                        max_size=8).map(lambda edits: _edit(GOOD_QUERY, edits))),
       udp=st.booleans())
def test_dns_answers_every_packet_or_drops_it_never_crashes(data, udp):
    raw = dns_answer(_resolver(), data, max_size=512 if udp else None, cache=udp)
    if len(data) < 12 or data[2] & 0x80:
        assert raw is None
        return
    assert raw is not None and raw[:2] == data[:2] and raw[2] & 0x80
    if udp:
        assert len(raw) <= 512 or struct.unpack("!H", raw[2:4])[0] & 0x0200  # small, or truncated


def _edit(packet: bytes, edits) -> bytes:
    out = bytearray(packet)
    for i, v in edits:
        out[i] = v
    return bytes(out)


class _Server:
    """What cniserver.answer needs of the server: a delegate and the plugin to run."""

    class delegate:
        cni_path = "/nonexistent"

        @staticmethod
        def rewrite(conf: dict) -> dict:
            return conf

    @staticmethod
    def run_plugin(env: dict, stdin: bytes) -> tuple[int, str]:
        return 0, json.dumps({"cniVersion": "1.0.0", "echo": json.loads(stdin)})


GOOD_REQUEST = {"env": {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c", "CNI_NETNS": "/x", "CNI_IFNAME": "eth0"},
                "stdin": json.dumps({"cniVersion": "1.0.0", "name": "n", "type": "podnet"})}


@given(raw=st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()),
                     mutated(GOOD_REQUEST, rounds=3).map(lambda d: json.dumps(d).encode()),
                     st.integers(1, 50_000).map(lambda n: b"[" * n)))
def test_the_cni_socket_answers_every_request(raw):
    code, out = cni_answer(_Server, raw)
    assert isinstance(out, str)
    check_answer(code, out)


CONFLIST = {"cniVersion": "1.1.0", "name": "net", "plugins": [{"type": "record", "capabilities": {"portMappings": True}},
                                                               {"type": "record", "x": 1}]}
CACHE = {"kind": "cniCacheV1", "containerId": "c1", "ifName": "eth0", "networkName": "net", "config": "e30=",
         "result": {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": "/x"}],
                    "ips": [{"address": "10.0.0.2/24", "interface": 0}], "routes": [{"dst": "0.0.0.0/0"}]}}
RECORDER = """#!/bin/sh
cat > "$(dirname "$0")/last-stdin"
exit 0
"""


@given(doc=st.one_of(mutated(CONFLIST, rounds=4), json_values))
def test_conflists_fail_only_with_a_cni_error(doc):
    try:
        net = ConfList.parse(json.dumps(doc).encode())
    except CNIError as e:
        assert e.code in (1, 2, 4, 5, 6, 7)
        return
    assert net.plugins and all(isinstance(p.get("type"), str) for p in net.plugins)


@pytest.fixture(scope="module")
def recorder(tmp_path_factory):
    d = tmp_path_factory.mktemp("recorder")
    path = d / "record"
    path.write_text(RECORDER)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return d


@given(cache=st.one_of(mutated(CACHE, rounds=4), json_values, st.binary(max_size=60)))
def test_a_corrupt_result_cache_never_stops_del_or_gc(recorder, cache):
    cache_dir = recorder / "cache"
    results = cache_dir / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "net-c1-eth0").write_bytes(cache if isinstance(cache, bytes) else json.dumps(cache).encode())
    runner = Runner([str(recorder)], cache_dir=str(cache_dir))
    net = ConfList.parse(json.dumps(CONFLIST).encode())
    runner.gc(net, valid=[])
    (results / "net-c1-eth0").write_bytes(cache if isinstance(cache, bytes) else json.dumps(cache).encode())
    runner.delete(net, RuntimeConf(container_id="c1", netns="", ifname="eth0"))
    handed = json.loads((recorder / "last-stdin").read_text())
    prev = handed.get("prevResult")
    assert prev is None or isinstance(prev, dict) and isinstance(prev.get("interfaces", []), list)
    assert not os.path.exists(results / "net-c1-eth0")


# -- corrupt datastore values -------------------------------------------------------------------
GOOD_POD = copy.deepcopy(POD)
GOOD_SVC = parse_service({**SERVICE, "spec": {**SERVICE["spec"], "type": "ClusterIP", "externalTrafficPolicy": None,
                                              "ports": [{**p, "nodePort": 0} for p in SERVICE["spec"]["ports"]]}}, "x")
GOOD_POLICY = parse_network_policy(POLICY, "x")


def _kvs(objs: list) -> list:
    class KV:
        def __init__(self, i, value):
            self.key, self.value = f"/podnet/x/default/o{i}", value

    return [KV(i, o if isinstance(o, str) else json.dumps(o)) for i, o in enumerate(objs)]


bad_values = st.one_of(st.text(max_size=30), json_values.map(json.dumps), mutated(POD, rounds=3).map(json.dumps),
                       mutated(GOOD_SVC, rounds=3).map(json.dumps), mutated(GOOD_POLICY, rounds=3).map(json.dumps))


@given(bad=st.lists(bad_values, min_size=1, max_size=4))
def test_the_agent_serves_the_good_objects_around_corrupt_ones(bad):
    services, _ = stored.decode_all(_kvs([GOOD_SVC, *bad]))
    pods, _ = stored.decode_all(_kvs([GOOD_POD, *bad]))
    slices, _ = ep_mod.compute_all(services, pods)
    table = maps.Table("10.244.0.0/16")
    cmds = []
    for svc in services:  # as the agent's proxy: each service on its own, the bad ones skipped
        c, _ = maps.checked_contribution(svc, slices.get((svc["metadata"]["namespace"], svc["metadata"]["name"])), "node1")
        cmds += table.set_service(stored.ident(svc), c)
    assert any(" { 10.96.0.50 . tcp . " in c and ("service-ips" in c or "no-endpoint-services" in c) for c in cmds), cmds
    policies, _ = stored.decode_all(_kvs([GOOD_POLICY, *bad]))
    world = policy_world.build_world(pods, [], policies, [])
    cmds, skipped = survive.policy_commands(world, "node1")
    assert any("ingress" in json.dumps(c) for c in cmds)  # the good policy is still enforced


@given(bad=st.lists(bad_values, min_size=1, max_size=4))
def test_dns_indexes_the_good_services_around_corrupt_ones(bad):
    from podnet.dns.server import _object

    services = [o for o in (_object(v) for v in [json.dumps(GOOD_SVC), *bad]) if o is not None]
    index = records.build(services, {})
    assert index.lookup("web.default.svc.cluster.local")[1][0].data == ("10.96.0.50",)


@given(value=st.one_of(st.text(max_size=40), json_values.map(json.dumps)),
       key=st.sampled_from(["/podnet/subnets/10.244.1.0-24", "/podnet/subnets/x", "/podnet/subnets/10.244.1.0-99"]))
def test_a_corrupt_lease_is_never_a_crash(value, key):
    from podnet.agent import leases
    from podnet.store import KV

    lease = leases.parse(KV(key, value, 1, 1))
    assert lease is None or lease.node


_ = sys  # (kept for readers running a property by hand: python -c "import sys; ...")
