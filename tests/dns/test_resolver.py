"""Every record type of the Kubernetes DNS spec 1.0.1, answered by the resolver (no sockets)."""

import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from podnet.dns import records
from podnet.dns.server import ClusterResolver


def svc(name, ns="default", **spec):
    base = {"type": "ClusterIP", "clusterIP": "10.96.0.50", "ports": [{"name": "http", "protocol": "TCP", "port": 80}]}
    return {"metadata": {"name": name, "namespace": ns}, "spec": {**base, **spec}}


SERVICES = [
    svc("web"),
    svc("db", clusterIP="None", ports=[{"name": "pg", "protocol": "TCP", "port": 5432}]),
    svc("nobody", clusterIP="None"),
    svc("ext", type="ExternalName", externalName="www.example.test", ports=[]),
]
SLICES = {("default", "db"): {"items": [{"ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}], "endpoints": [
    {"addresses": ["10.244.1.5"], "conditions": {"ready": True}, "hostname": "db-0"},
    {"addresses": ["10.244.2.6"], "conditions": {"ready": True}}]}]},
    ("default", "nobody"): {"items": []}}


@pytest.fixture
def resolver():
    r = ClusterResolver("cluster.local", None)
    r.set_index(records.build(SERVICES, SLICES))
    return r


def ask(r, name, qtype):
    reply = r.resolve(DNSRecord.question(name, qtype), None)
    return RCODE[reply.header.rcode], sorted(str(rr.rdata) for rr in reply.rr), reply


def test_service_a_srv_ptr(resolver):
    assert ask(resolver, "web.default.svc.cluster.local", "A")[:2] == ("NOERROR", ["10.96.0.50"])
    rcode, answers, reply = ask(resolver, "_http._tcp.web.default.svc.cluster.local", "SRV")
    assert answers == ["0 100 80 web.default.svc.cluster.local."]
    assert [str(rr.rdata) for rr in reply.ar] == ["10.96.0.50"]
    assert ask(resolver, "50.0.96.10.in-addr.arpa", "PTR")[1] == ["web.default.svc.cluster.local."]


def test_case_insensitive_and_question_case_kept(resolver):
    rcode, answers, reply = ask(resolver, "WEB.Default.SVC.cluster.LOCAL", "A")
    assert answers == ["10.96.0.50"] and str(reply.rr[0].rname) == "WEB.Default.SVC.cluster.LOCAL."


def test_headless(resolver):
    assert ask(resolver, "db.default.svc.cluster.local", "A")[1] == ["10.244.1.5", "10.244.2.6"]
    assert ask(resolver, "db-0.db.default.svc.cluster.local", "A")[1] == ["10.244.1.5"]
    assert ask(resolver, "10-244-2-6.db.default.svc.cluster.local", "A")[1] == ["10.244.2.6"]  # system-assigned hostname
    assert ask(resolver, "_pg._tcp.db.default.svc.cluster.local", "SRV")[1] == [
        "0 100 5432 10-244-2-6.db.default.svc.cluster.local.", "0 100 5432 db-0.db.default.svc.cluster.local."]
    assert ask(resolver, "5.1.244.10.in-addr.arpa", "PTR")[1] == ["db-0.db.default.svc.cluster.local."]
    assert ask(resolver, "nobody.default.svc.cluster.local", "A")[0] == "NXDOMAIN"  # no ready endpoints


def test_external_name_is_a_cname(resolver):
    assert ask(resolver, "ext.default.svc.cluster.local", "A")[1] == ["www.example.test."]
    assert ask(resolver, "ext.default.svc.cluster.local", "CNAME")[1] == ["www.example.test."]


def test_pod_records_and_schema_version(resolver):
    assert ask(resolver, "10-244-3-7.default.pod.cluster.local", "A")[1] == ["10.244.3.7"]
    assert ask(resolver, "10-244-3-999.default.pod.cluster.local", "A")[0] == "NXDOMAIN"
    assert ask(resolver, "dns-version.cluster.local", "TXT")[1] == ['"1.0.1"']


def test_nxdomain_versus_nodata(resolver):
    rcode, answers, reply = ask(resolver, "web.default.svc.cluster.local", "AAAA")
    assert (rcode, answers) == ("NOERROR", []) and reply.auth and reply.auth[0].rtype == QTYPE.SOA
    assert ask(resolver, "default.svc.cluster.local", "A")[:2] == ("NOERROR", [])  # empty non-terminal
    rcode, _, reply = ask(resolver, "nope.default.svc.cluster.local", "A")
    assert rcode == "NXDOMAIN" and reply.auth[0].rtype == QTYPE.SOA


def test_outside_the_zone_without_upstream_is_refused(resolver):
    assert ask(resolver, "example.org", "A")[0] == "REFUSED"


def test_udp_server_cache_follows_index_changes():
    from podnet.dns.server import UDPServer

    r = ClusterResolver("cluster.local", None)
    r.set_index(records.build(SERVICES, SLICES))
    server = UDPServer(r, "127.0.0.1", 0)
    server.start()
    port = server.sock.getsockname()[1]

    def a(name):
        reply = DNSRecord.parse(DNSRecord.question(name, "A").send("127.0.0.1", port, timeout=2))
        return RCODE[reply.header.rcode], [str(x.rdata) for x in reply.rr]

    try:
        assert a("web.default.svc.cluster.local") == ("NOERROR", ["10.96.0.50"])
        assert a("web.default.svc.cluster.local") == ("NOERROR", ["10.96.0.50"])  # from the cache now
        assert len(r.cache) >= 1
        moved = [svc("web", clusterIP="10.96.0.77")] + SERVICES[1:]
        r.set_index(records.build(moved, SLICES))
        assert a("web.default.svc.cluster.local") == ("NOERROR", ["10.96.0.77"])  # never a stale answer
        assert a("elsewhere.example")[0] == "REFUSED"  # not cached, answered from the pool
    finally:
        server.sock.close()


def test_headless_publishes_only_ready_endpoints_terminating_ones_are_gone():
    slices = {("default", "db"): {"items": [{"ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}], "endpoints": [
        {"addresses": ["10.244.1.5"], "conditions": {"ready": True, "serving": True, "terminating": False}, "hostname": "db-0"},
        {"addresses": ["10.244.1.6"], "conditions": {"ready": False, "serving": True, "terminating": True}, "hostname": "db-1"},
        {"addresses": ["10.244.1.7"], "conditions": {"ready": False, "serving": False, "terminating": True}},
        {"addresses": ["10.244.2.6"]},                                # stored before conditions existed: ready
        {"addresses": ["10.244.2.7"], "conditions": {"ready": None}},  # unknown: ready, as CoreDNS reads it
        {"addresses": ["10.244.2.8"], "conditions": None}]}]}}
    r = ClusterResolver("cluster.local", None)
    r.set_index(records.build(SERVICES, slices))
    assert ask(r, "db.default.svc.cluster.local", "A")[1] == ["10.244.1.5", "10.244.2.6", "10.244.2.7", "10.244.2.8"]
    assert ask(r, "db-1.db.default.svc.cluster.local", "A")[0] == "NXDOMAIN"
    assert ask(r, "6.1.244.10.in-addr.arpa", "PTR")[1] == []  # no PTR for the draining pod either
    assert ask(r, "5.1.244.10.in-addr.arpa", "PTR")[1] == ["db-0.db.default.svc.cluster.local."]
    only_draining = {("default", "db"): {"items": [{"ports": [], "endpoints": [
        {"addresses": ["10.244.1.6"], "conditions": {"ready": False, "serving": True, "terminating": True}}]}]}}
    r.set_index(records.build(SERVICES, only_draining))
    assert ask(r, "db.default.svc.cluster.local", "A")[0] == "NXDOMAIN"  # a headless service with no ready endpoint
