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
    c = cluster.parse({"Network": "10.244.0.0/16"})
    assert (c.subnet_len, str(c.subnet_min), str(c.subnet_max), c.backend, c.vni, c.port) == \
        (24, "10.244.1.0", "10.244.255.0", "vxlan", 1, 8472)
    assert len(list(c.subnets())) == 255
    assert cluster.parse(c.to_json()) == c


@pytest.mark.parametrize("doc,field", [
    ({}, "Network"),
    ({"Network": "10.244.1.0/16"}, "Network"),
    ({"Network": "fd00::/48"}, "Network"),
    ({"Network": "10.244.0.0/16", "SubnetLen": 8}, "SubnetLen"),
    ({"Network": "10.244.0.0/16", "SubnetMin": "10.244.1.7"}, "SubnetMin"),
    ({"Network": "10.244.0.0/16", "SubnetMax": "10.9.0.0"}, "SubnetMax"),
    ({"Network": "10.244.0.0/16", "SubnetMin": "10.244.9.0", "SubnetMax": "10.244.2.0"}, "SubnetMin"),
    ({"Network": "10.244.0.0/16", "Backend": {"Type": "udp"}}, "Backend.Type"),
    ({"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan", "VNI": 0}}, "Backend.VNI"),
    ({"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan", "Port": 99999}}, "Backend.Port"),
    ({"Network": "10.244.0.0/16", "Typo": 1}, "Typo"),
])
def test_bad_cluster_config_names_the_field(doc, field):
    with pytest.raises(ValidationError) as e:
        cluster.parse(doc)
    assert e.value.field == field
