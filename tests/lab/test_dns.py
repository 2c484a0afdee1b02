"""Cluster DNS from inside pods: every record type of the spec, through the kube-dns ClusterIP,
over UDP and TCP; forwarding to the lab's upstream; resolv.conf and service env vars."""

from __future__ import annotations

import subprocess
import time

import pytest
from dnslib import RCODE, DNSRecord

from podnet.api.service import DNS_SERVICE_IP
from podnet.kernel import netns as kns
from podnet.lab import workloads
from tests.lab.conftest import wait_for
from tests.lab.test_services import Cluster, deployment, service

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture(scope="module")
def dns_cluster(tmp_path_factory):
    from tests.lab.conftest import module_lab

    with module_lab(tmp_path_factory, "d", 2, need=("nft", "dnsmasq")) as lab:
        with Cluster(lab) as c:
            c.web = c.svc(service("web", {"app": "web"}))
            workloads.apply_deployment(c.state, c.store, deployment("web", 2))
            headless = service("db", {"app": "db"}, clusterIP="None")
            headless["spec"]["ports"][0].update(name="pg", port=5432, targetPort=8080)
            c.svc(headless)
            c.db0 = c.pod("db-0", "node1", {"app": "db"})
            c.svc(service("nobody", {"app": "nobody"}, clusterIP="None"))
            c.svc({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext", "namespace": "default", "labels": {},
                                                                       "annotations": {}},
                   "spec": {"type": "ExternalName", "externalName": "example.test"}, "status": {"loadBalancer": {}}})
            c.client = c.pod("client", "node2", {"role": "client"})
            assert wait_for(lambda: len(c.endpoints("web")) == 2 and c.endpoints("db") == [c.db0["status"]["podIP"]], 5)
            time.sleep(1)
            yield c


def query(c, name, qtype, tcp=False):
    ns = c.client["metadata"]["annotations"]["podnet.io/netns"]
    q = DNSRecord.question(name, qtype)
    with kns.entered(f"/var/run/netns/{ns}"):  # the socket belongs to the client pod
        raw = q.send(DNS_SERVICE_IP, 53, tcp=tcp, timeout=3)
    reply = DNSRecord.parse(raw)
    return RCODE[reply.header.rcode], sorted(str(rr.rdata) for rr in reply.rr)


@pytest.mark.parametrize("tcp", [False, True])
def test_service_records(dns_cluster, tcp):
    c = dns_cluster
    cip = c.web["spec"]["clusterIP"]
    assert query(c, "web.default.svc.cluster.local", "A", tcp) == ("NOERROR", [cip])
    assert query(c, "_http._tcp.web.default.svc.cluster.local", "SRV", tcp) == (
        "NOERROR", ["0 100 80 web.default.svc.cluster.local."])
    rev = ".".join(reversed(cip.split("."))) + ".in-addr.arpa"
    assert query(c, rev, "PTR", tcp) == ("NOERROR", ["web.default.svc.cluster.local."])
    assert query(c, "Web.DEFAULT.svc.Cluster.Local", "A", tcp) == ("NOERROR", [cip])


def test_headless_external_name_pods_version(dns_cluster):
    c = dns_cluster
    db_ip = c.db0["status"]["podIP"]
    host = db_ip.replace(".", "-")
    assert query(c, "db.default.svc.cluster.local", "A") == ("NOERROR", [db_ip])
    assert query(c, f"{host}.db.default.svc.cluster.local", "A") == ("NOERROR", [db_ip])
    assert query(c, "_pg._tcp.db.default.svc.cluster.local", "SRV") == (
        "NOERROR", [f"0 100 8080 {host}.db.default.svc.cluster.local."])
    assert query(c, "nobody.default.svc.cluster.local", "A")[0] == "NXDOMAIN"
    rcode, answers = query(c, "ext.default.svc.cluster.local", "A")
    assert rcode == "NOERROR" and answers == ["192.0.2.10", "example.test."]  # CNAME, then the upstream's A
    assert query(c, "10-244-9-9.default.pod.cluster.local", "A") == ("NOERROR", ["10.244.9.9"])
    assert query(c, "dns-version.cluster.local", "TXT") == ("NOERROR", ['"1.0.1"'])
    assert query(c, "web.default.svc.cluster.local", "AAAA") == ("NOERROR", [])  # NODATA
    assert query(c, "missing.default.svc.cluster.local", "A")[0] == "NXDOMAIN"
    assert query(c, "upstream.test", "A") == ("NOERROR", ["192.0.2.11"])  # forwarded


def test_a_pod_resolves_short_names_with_its_tools(dns_cluster):
    c = dns_cluster
    ns = c.client["metadata"]["annotations"]["podnet.io/netns"]
    conf = subprocess.run(["ip", "netns", "exec", ns, "cat", "/etc/resolv.conf"], capture_output=True, text=True).stdout
    assert conf.splitlines() == [f"nameserver {DNS_SERVICE_IP}", "search default.svc.cluster.local svc.cluster.local cluster.local",
                                 "options ndots:5"]
    out = subprocess.run(["ip", "netns", "exec", ns, "busybox", "nslookup", "web"], capture_output=True, text=True).stdout
    assert "Name:\tweb.default.svc.cluster.local" in out and c.web["spec"]["clusterIP"] in out


def test_service_environment_variables(dns_cluster):
    c = dns_cluster
    from podnet.runtime.supervisor import read_state

    pid = read_state(c.client["metadata"]["annotations"]["podnet.io/state"])["pid"]  # the container's own process
    env = dict(e.split("=", 1) for e in open(f"/proc/{pid}/environ").read().split("\0") if "=" in e)
    assert env["WEB_SERVICE_HOST"] == c.web["spec"]["clusterIP"] and env["WEB_SERVICE_PORT"] == "80"
    assert env["WEB_SERVICE_PORT_HTTP"] == "80"
    assert "DB_SERVICE_HOST" not in env  # headless services have no address to give
