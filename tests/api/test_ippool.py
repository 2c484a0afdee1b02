"""IPPool and BGPConfiguration: both manifest forms, defaults, errors naming the field; the
Calico selector language."""

from __future__ import annotations

import pytest

from podnet.api import selector
from podnet.api.errors import ValidationError
from podnet.api.ippool import default_bgp_configuration, parse_bgp_configuration, parse_ippool, pool_problem_with


def pool(spec, api="podnet.io/v1", name="p"):
    return {"apiVersion": api, "kind": "IPPool", "metadata": {"name": name}, "spec": spec}


def test_calico_manifest_accepted_unchanged_with_calico_defaults():
    out = parse_ippool(pool({"cidr": "192.168.0.0/16", "ipipMode": "Always", "natOutgoing": True,
                             "nodeSelector": "all()"}, api="projectcalico.org/v3"))
    assert out["apiVersion"] == "podnet.io/v1"
    assert out["spec"] == {"cidr": "192.168.0.0/16", "blockSize": 26, "vxlanMode": "Never", "ipipMode": "Always",
                           "natOutgoing": True, "disabled": False, "disableBGPExport": False, "nodeSelector": "all()",
                           "allowedUses": ["Tunnel", "Workload"], "assignmentMode": "Automatic"}


@pytest.mark.parametrize("spec,field,words", [
    ({}, "spec.cidr", "is required"),
    ({"cidr": "10.0.0.1/16"}, "spec.cidr", "did you mean 10.0.0.0/16"),
    ({"cidr": "fd00::/64"}, "spec.cidr", "only IPv4"),
    ({"cidr": "nope"}, "spec.cidr", "not a network"),
    ({"cidr": "10.0.0.0/16", "blockSize": 19}, "spec.blockSize", "from 20 to 32"),
    ({"cidr": "10.0.0.0/27", "blockSize": 26}, "spec.blockSize", "at least one block"),
    ({"cidr": "10.0.0.0/16", "vxlanMode": "Sometimes"}, "spec.vxlanMode", "Always, CrossSubnet, Never"),
    ({"cidr": "10.0.0.0/16", "vxlanMode": "Always", "ipipMode": "CrossSubnet"}, "spec.ipipMode", "choose one"),
    ({"cidr": "10.0.0.0/16", "natOutgoing": "yes"}, "spec.natOutgoing", "true or false"),
    ({"cidr": "10.0.0.0/16", "nodeSelector": "zone =="}, "spec.nodeSelector", "not a selector"),
    ({"cidr": "10.0.0.0/16", "ipip": "Always"}, "spec.ipip", "unknown field"),
])
def test_invalid_pools_name_the_field(spec, field, words):
    with pytest.raises(ValidationError) as e:
        parse_ippool(pool(spec))
    assert e.value.field == field and words in str(e.value)


def test_wrong_api_version():
    with pytest.raises(ValidationError, match="apiVersion"):
        parse_ippool(pool({"cidr": "10.0.0.0/16"}, api="v1"))


def test_admission_immutable_overlap_and_inside_the_network():
    a = parse_ippool(pool({"cidr": "10.244.0.0/17"}, name="a"))
    b = parse_ippool(pool({"cidr": "10.244.64.0/18"}, name="b"))
    assert pool_problem_with(a, None, [a], "10.244.0.0/16") is None
    assert "overlaps IPPool a" in str(pool_problem_with(b, None, [a], "10.244.0.0/16"))
    assert "not inside the cluster network" in str(pool_problem_with(parse_ippool(pool({"cidr": "10.0.0.0/24"})), None,
                                                                     [], "10.244.0.0/16"))
    bigger = parse_ippool(pool({"cidr": "10.244.0.0/17", "blockSize": 28}, name="a"))
    problem = pool_problem_with(bigger, a, [a], "10.244.0.0/16")
    assert problem.field == "spec.blockSize" and "immutable" in str(problem)


def test_bgp_configuration():
    assert default_bgp_configuration()["spec"] == {"asNumber": 64512, "nodeToNodeMeshEnabled": True,
                                                   "routeReflectorSelector": 'podnet.io/route-reflector == "true"',
                                                   "listenPort": 179, "logSeverityScreen": "Info"}
    doc = {"apiVersion": "projectcalico.org/v3", "kind": "BGPConfiguration", "metadata": {"name": "default"},
           "spec": {"asNumber": 65000, "nodeToNodeMeshEnabled": False, "logSeverityScreen": "Info"}}
    assert parse_bgp_configuration(doc)["spec"]["asNumber"] == 65000
    with pytest.raises(ValidationError, match="spec.asNumber"):
        parse_bgp_configuration({**doc, "spec": {"asNumber": 0}})
    with pytest.raises(ValidationError, match="metadata.name: must be default"):
        parse_bgp_configuration({**doc, "metadata": {"name": "node.x"}})
    with pytest.raises(ValidationError, match="spec.serviceClusterIPs: unknown field"):
        parse_bgp_configuration({**doc, "spec": {"serviceClusterIPs": []}})


@pytest.mark.parametrize("expr,labels,want", [
    ("all()", {}, True),
    ("", {}, True),
    ('zone == "a"', {"zone": "a"}, True),
    ("zone == 'a'", {"zone": "b"}, False),
    ('zone != "a"', {}, True),
    ("has(gpu)", {"gpu": ""}, True),
    ("!has(gpu)", {"gpu": ""}, False),
    ('zone in {"a", "b"} && !has(gpu)', {"zone": "b"}, True),
    ('zone not in {"a"}', {"zone": "a"}, False),
    ('zone == "x" || rack == "1" && has(gpu)', {"rack": "1"}, False),
    ('(zone == "x" || rack == "1") && !has(gpu)', {"rack": "1"}, True),
    ('podnet.io/route-reflector == "true"', {"podnet.io/route-reflector": "true"}, True),
])
def test_selector(expr, labels, want):
    assert selector.matches(expr, labels) is want


@pytest.mark.parametrize("expr", ["zone ==", "has(", "a b", 'x == "1" &&', "(all()", "zone in {a}", "@"])
def test_bad_selectors(expr):
    with pytest.raises(selector.SelectorError):
        selector.parse(expr)
