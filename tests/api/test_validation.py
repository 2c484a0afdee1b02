"""Manifests and cluster config: clear errors that name the field."""

import pytest

from podnet.api import cluster
from podnet.api.errors import ValidationError
from podnet.api.manifest import load_documents
from podnet.api.pod import parse_pod

GOOD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "command": ["sleep", "60"], "ports": [{"containerPort": 80, "name": "http"}]}]}}


def bad(path, value):
    import copy

    doc = copy.deepcopy(GOOD)
    target = doc
    keys = path.split(".")
    for k in keys[:-1]:
        target = target[int(k)] if k.isdigit() else target[k]
    last = keys[-1]
    if value is KeyError:
        del target[last]
    else:
        target[int(last) if last.isdigit() else last] = value
    return doc


def test_good_pod():
    pod = parse_pod(GOOD, "x")
    assert (pod.name, pod.namespace, pod.containers[0].command, pod.labels) == ("web", "default", ["sleep", "60"], {"app": "web"})


@pytest.mark.parametrize("path,value,field", [
    ("apiVersion", "v2", "apiVersion"),
    ("metadata.name", "Web_1", "metadata.name"),
    ("metadata.name", KeyError, "metadata.name"),
    ("metadata.namespace", "UPPER", "metadata.namespace"),
    ("metadata.labels", {"app": "has space"}, "metadata.labels.app"),
    ("spec.containers", [], "spec.containers"),
    ("spec.containers.0.command", "sleep 60", "spec.containers[0].command"),
    ("spec.containers.0.command", KeyError, "spec.containers[0].command"),
    ("spec.containers.0.ports", [{"containerPort": 70000}], "spec.containers[0].ports[0].containerPort"),
    ("spec.containers.0.ports", [{"containerPort": 80, "protocol": "ICMP"}], "spec.containers[0].ports[0].protocol"),
    ("spec.nodeName", "Node_1", "spec.nodeName"),
])
def test_bad_pods_name_the_field(path, value, field):
    with pytest.raises(ValidationError) as e:
        parse_pod(bad(path, value), "pods.yaml")
    assert e.value.field == field and str(e.value).startswith("pods.yaml: " + field)


def test_multi_document_yaml_json_and_lists():
    y = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\n---\nkind: List\nitems:\n- {kind: Pod, metadata: {name: b}}\n"
    assert [d["metadata"]["name"] for d in load_documents(y, "f")] == ["a", "b"]
    assert [d["kind"] for d in load_documents('[{"kind": "Pod"}, {"kind": "Pod"}]', "f")] == ["Pod", "Pod"]
    with pytest.raises(ValidationError, match="cannot parse"):
        load_documents("a: [unclosed", "f")
    with pytest.raises(ValidationError, match="mapping"):
        load_documents("- just\n- a list\n", "f")


def test_cluster_config_defaults():
    from podnet.agent import backends

    c = cluster.parse({"Network": "10.244.0.0/16"}, backends=backends.parsers())
    assert (c.subnet_len, str(c.subnet_min), str(c.subnet_max), c.backend, c.backend_conf["VNI"], c.backend_conf["Port"]) == \
        (24, "10.244.1.0", "10.244.255.0", "vxlan", 1, 8472)
    assert len(list(c.subnets())) == 255
    assert cluster.parse(c.to_json(), backends=backends.parsers()) == c


@pytest.mark.parametrize("doc,field", [
    ({}, "Network"),
    ({"Network": "10.244.1.0/16"}, "Network"),
    ({"Network": "fd00::/48"}, "Network"),
    ({"Network": "10.244.0.0/16", "SubnetLen": 8}, "SubnetLen"),
    ({"Network": "10.244.0.0/16", "SubnetMin": "10.244.1.7"}, "SubnetMin"),
    ({"Network": "10.244.0.0/16", "SubnetMax": "10.9.0.0"}, "SubnetMax"),
    ({"Network": "10.244.0.0/16", "SubnetMin": "10.244.9.0", "SubnetMax": "10.244.2.0"}, "SubnetMin"),
    ({"Network": "10.244.0.0/16", "Backend": {"Type": "ipip"}}, "Backend.Type"),
    ({"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan", "VNI": 0}}, "Backend.VNI"),
    ({"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan", "Port": 99999}}, "Backend.Port"),
    ({"Network": "10.244.0.0/16", "Typo": 1}, "Typo"),
])
def test_bad_cluster_config_names_the_field(doc, field):
    from podnet.agent import backends

    with pytest.raises(ValidationError) as e:
        cluster.parse(doc, backends=backends.parsers())
    assert e.value.field == field


# -- Services, labels, ipBlocks: Kubernetes' own rules ---------------------------------------
SVC = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
       "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}


@pytest.mark.parametrize("name", ["1abc", "-web", "web-", "Web", "a" * 64])
def test_service_names_are_dns_1035_labels(name):
    from podnet.api.service import parse_service

    with pytest.raises(ValidationError, match="starting with a letter") as e:
        parse_service({**SVC, "metadata": {"name": name}}, "svc.yaml")
    assert e.value.field == "metadata.name"


@pytest.mark.parametrize("key", ["a b/c", "a b", "/c", "example.com/", "Example.com/x", "x/" + "a" * 64, "-a", "a-",
                                 "a/b/c"])
def test_bad_label_keys_are_refused(key):
    with pytest.raises(ValidationError, match="label key") as e:
        parse_pod(bad("metadata.labels", {key: "v"}), "pods.yaml")
    assert e.value.field == f"metadata.labels.{key}"


@pytest.mark.parametrize("key", ["app", "app.kubernetes.io/name", "a_b.c-d", "x" * 63, "example.com/X_y"])
def test_good_label_keys_pass(key):
    assert parse_pod(bad("metadata.labels", {key: "v"}), "pods.yaml").labels == {key: "v"}


def _policy_with_block(block):
    from podnet.api.networkpolicy import parse_network_policy

    return parse_network_policy({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "p"},
                                 "spec": {"podSelector": {}, "ingress": [{"from": [{"ipBlock": block}]}]}}, "np.yaml")


@pytest.mark.parametrize("block,field,text", [
    ({"cidr": "10.0.0.0/8", "except": ["10.0.0.0/8"]}, "spec.ingress[0].from[0].ipBlock.except[0]", "strictly inside"),
    ({"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}, "spec.ingress[0].from[0].ipBlock.except[0]", "strictly inside"),
    ({"cidr": "10.0.0.0/8", "except": ["fd00::/64"]}, "spec.ingress[0].from[0].ipBlock.except[0]", "strictly inside"),
    ({"cidr": "bogus"}, "spec.ingress[0].from[0].ipBlock.cidr", 'not "bogus"'),
    ({"cidr": 10}, "spec.ingress[0].from[0].ipBlock.cidr", "not 10"),
    ({}, "spec.ingress[0].from[0].ipBlock.cidr", "is required"),
    ({"cidr": "10.0.0.0/8", "except": "10.1.0.0/16"}, "spec.ingress[0].from[0].ipBlock.except", "list"),
    ({"cidr": "10.0.0.0/8", "except": ["10.1.0.0/99"]}, "spec.ingress[0].from[0].ipBlock.except[0]", 'not "10.1.0.0/99"'),
])
def test_ip_block_errors_name_the_field_and_show_the_value(block, field, text):
    with pytest.raises(ValidationError) as e:
        _policy_with_block(block)
    assert e.value.field == field and text in str(e.value)
    assert "{" not in e.value.problem, "a Python dict in the message"


def test_an_except_strictly_inside_passes():
    p = _policy_with_block({"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]})
    assert p["spec"]["ingress"][0]["from"][0]["ipBlock"] == {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}


@pytest.mark.parametrize("stype,extra", [("ClusterIP", {}), ("NodePort", {}), ("LoadBalancer", {}),
                                         ("ClusterIP", {"clusterIP": "None"}), ("NodePort", {"externalTrafficPolicy": "Local"}),
                                         ("ExternalName", {"externalName": "example.test"})])
def test_a_parsed_service_parses_again_to_itself(stype, extra):
    """What `podnet get svc -o yaml` prints (the stored object) is a valid manifest."""
    from podnet.api.service import parse_service

    doc = {**SVC, "spec": {**SVC["spec"], "type": stype, **extra}}
    once = parse_service(doc, "svc.yaml")
    assert parse_service(once, "stored") == once
    if stype == "ClusterIP":
        assert "externalTrafficPolicy" not in once["spec"]


def test_a_clusterip_service_saved_with_external_policy_cluster_is_accepted():
    from podnet.api.service import parse_service

    doc = {**SVC, "spec": {**SVC["spec"], "externalTrafficPolicy": "Cluster"}}
    assert "externalTrafficPolicy" not in parse_service(doc, "svc.yaml")["spec"]
    with pytest.raises(ValidationError) as e:
        parse_service({**SVC, "spec": {**SVC["spec"], "externalTrafficPolicy": "Local"}}, "svc.yaml")
    assert e.value.field == "spec.externalTrafficPolicy"


def test_a_stored_network_policy_parses_again_to_itself():
    """The stored form is Kubernetes' own (from/to, ports with only their fields): what
    `podnet get netpol -o yaml` prints applies back unchanged, with the same meaning."""
    from podnet.api.networkpolicy import parse_network_policy, rules

    doc = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "p"},
           "spec": {"podSelector": {"matchLabels": {"app": "db"}},
                    "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
                                          {"podSelector": {"matchLabels": {"app": "web"}}}],
                                 "ports": [{"port": 5432}, {"port": 8000, "endPort": 8010, "protocol": "UDP"}]},
                                {"ports": [{"protocol": "SCTP"}]}, {}],
                    "egress": [{"to": []}]}}
    once = parse_network_policy(doc, "np.yaml")
    assert parse_network_policy(once, "stored") == once
    assert "peers" not in json_text(once) and "null" not in json_text(once)
    ingress = rules(once, "Ingress")
    assert [len(peers) if peers else peers for peers, _ in ingress] == [2, None, None]
    assert ingress[0][1] == [{"protocol": "TCP", "port": 5432, "endPort": None},
                             {"protocol": "UDP", "port": 8000, "endPort": 8010}]
    assert rules(once, "Egress") == [(None, [])]


def json_text(obj) -> str:
    import json

    return json.dumps(obj)


def test_several_json_documents_separated_by_dashes():
    text = '{"kind": "Pod", "metadata": {"name": "a"}}\n---\n{"kind": "Pod", "metadata": {"name": "b"}}\n'
    assert [d["metadata"]["name"] for d in load_documents(text, "f")] == ["a", "b"]
    with pytest.raises(ValidationError, match="cannot parse"):
        load_documents('{"kind": "Pod", "metadata": {"name": "a"', "f")


def test_publish_not_ready_addresses_is_kept_and_must_be_a_boolean():
    from podnet.api.service import parse_service

    spec = SVC["spec"]
    assert parse_service({**SVC, "spec": {**spec, "publishNotReadyAddresses": True}}, "s")["spec"]["publishNotReadyAddresses"]
    assert "publishNotReadyAddresses" not in parse_service(SVC, "s")["spec"]
    with pytest.raises(ValidationError) as e:
        parse_service({**SVC, "spec": {**spec, "publishNotReadyAddresses": "yes"}}, "s")
    assert e.value.field == "spec.publishNotReadyAddresses"
