"""Ingress and IngressClass: Kubernetes' validation (each error naming the field), the paths
nginx could not take, the stored shape, which class serves an Ingress, and the `get` columns."""

from __future__ import annotations

import contextlib
import copy
import json

import pytest
import yaml

from podnet.api import keys, kinds
from podnet.api.errors import ValidationError
from podnet.api.ingress import (class_of, default_class, host_problem, parse_ingress,
                                parse_ingress_class)
from tests.api.edits import edited


def backend(name: str = "web", number: int | None = 80, port_name: str | None = None) -> dict:
    port = {"number": number} if port_name is None else {"name": port_name}
    return {"service": {"name": name, "port": port}}


GOOD = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "web", "labels": {"app": "web"},
                     "annotations": {"nginx.ingress.kubernetes.io/ssl-redirect": "false"}},
        "spec": {"ingressClassName": "nginx",
                 "defaultBackend": backend("fallback", port_name="http"),
                 "tls": [{"hosts": ["foo.example", "*.bar.example"], "secretName": "foo-tls"}],
                 "rules": [{"host": "foo.example",
                            "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend("a")},
                                               {"path": "/api", "pathType": "Exact", "backend": backend("b", 8080)}]}},
                           {"host": "*.bar.example",
                            "http": {"paths": [{"pathType": "ImplementationSpecific", "backend": backend("c")}]}}]}}

def changed(*edits) -> dict:
    """GOOD with (path tuple, value) edits; value KeyError deletes the key."""
    return edited(GOOD, *edits)


PATH0 = ("spec", "rules", 0, "http", "paths", 0)
PATH1 = ("spec", "rules", 0, "http", "paths", 1)
F0 = "spec.rules[0].http.paths[0]"
F1 = "spec.rules[0].http.paths[1]"


def test_stored_shape():
    obj = parse_ingress(GOOD, "ing.yaml")
    spec = copy.deepcopy(GOOD["spec"])
    spec["rules"][1]["http"]["paths"][0]["path"] = "/"  # the one default: ImplementationSpecific gets "/"
    assert obj == {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                   "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
                                "annotations": {"nginx.ingress.kubernetes.io/ssl-redirect": "false"}},
                   "spec": spec, "status": {"loadBalancer": {}}}
    assert "path" not in GOOD["spec"]["rules"][1]["http"]["paths"][0]  # the manifest itself is left alone


def test_minimal_ingresses():
    only_default = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "d", "namespace": "shop"},
                    "spec": {"defaultBackend": backend()}}
    obj = parse_ingress(only_default, "d.yaml")
    assert obj["metadata"] == {"name": "d", "namespace": "shop", "labels": {}, "annotations": {}}
    assert obj["spec"] == {"defaultBackend": backend()}
    rule_only = changed((("spec",), {"rules": [{"http": {"paths": [{"path": "/x", "pathType": "Exact",
                                                                     "backend": backend()}]}}]}))
    assert parse_ingress(rule_only, "r.yaml", "team")["metadata"]["namespace"] == "team"


@pytest.mark.parametrize("edits,field,text", [
    # the spec as a whole
    (((("spec",), {}),), "spec", "must have rules or a defaultBackend"),
    (((("spec",), {"rules": []}),), "spec", "must have rules or a defaultBackend"),
    (((("spec",), KeyError),), "spec", "is required"),
    (((("spec", "rules"), {"host": "x"}),), "spec.rules", "must be a list"),
    (((("spec", "backend"), backend()),), "spec.backend", "is not a known field"),
    (((("spec", "ingressClassName"), "Nginx_1"),), "spec.ingressClassName", "lowercase DNS name"),
    (((("apiVersion",), "networking.k8s.io/v1beta1"),), "apiVersion", "needs apiVersion: networking.k8s.io/v1"),
    (((("metadata", "annotations"), {"nginx.ingress.kubernetes.io/ssl-redirect": False}),),
     "metadata.annotations.nginx.ingress.kubernetes.io/ssl-redirect", 'quote it ("false")'),
    # backends
    (((("spec", "defaultBackend"), {"resource": {"kind": "StorageBucket", "name": "b"}}),),
     "spec.defaultBackend.resource", "only service backends are supported here"),
    (((("spec", "defaultBackend"), {"resource": {"kind": "B", "name": "b"}, **backend()}),),
     "spec.defaultBackend", "cannot set both resource and service backends"),
    (((PATH0 + ("backend",), {}),), f"{F0}.backend", "needs a service backend"),
    (((PATH0 + ("backend",), KeyError),), f"{F0}.backend", "is required"),
    (((PATH0 + ("backend", "service", "port"), {"number": 80, "name": "http"}),), f"{F0}.backend.service.port",
     "a number or a name, not both"),
    (((PATH0 + ("backend", "service", "port"), {}),), f"{F0}.backend.service.port", "needs a number (1-65535) or a name"),
    (((PATH0 + ("backend", "service", "port"), KeyError),), f"{F0}.backend.service.port", "is required"),
    (((PATH0 + ("backend", "service", "port", "number"), 0),), f"{F0}.backend.service.port.number", "1-65535"),
    (((PATH0 + ("backend", "service", "port", "number"), 65536),), f"{F0}.backend.service.port.number", "1-65535"),
    (((PATH0 + ("backend", "service", "port", "number"), "80"),), f"{F0}.backend.service.port.number", "1-65535"),
    (((PATH0 + ("backend", "service", "port", "number"), True),), f"{F0}.backend.service.port.number", "1-65535"),
    (((PATH0 + ("backend", "service", "port"), {"name": "HTTP"}),), f"{F0}.backend.service.port.name", "port name"),
    (((PATH0 + ("backend", "service", "port"), {"name": "a--b"}),), f"{F0}.backend.service.port.name", "port name"),
    (((PATH0 + ("backend", "service", "port"), {"name": "8080"}),), f"{F0}.backend.service.port.name", "one letter"),
    (((PATH0 + ("backend", "service", "port"), {"name": "a" * 16}),), f"{F0}.backend.service.port.name", "15"),
    (((PATH0 + ("backend", "service", "name"), "1web"),), f"{F0}.backend.service.name", "starting with a letter"),
    (((PATH0 + ("backend", "service", "name"), KeyError),), f"{F0}.backend.service.name", "is required"),
    (((PATH0 + ("backend", "service", "namespace"), "x"),), f"{F0}.backend.service.namespace", "is not a known field"),
    # hosts
    (((("spec", "rules", 0, "host"), "10.0.0.1"),), "spec.rules[0].host", "must be a DNS name, not an IP address"),
    (((("spec", "rules", 0, "host"), "fd00::1"),), "spec.rules[0].host", "must be a DNS name, not an IP address"),
    (((("spec", "rules", 0, "host"), "foo.example:8080"),), "spec.rules[0].host", "must not include a port"),
    (((("spec", "rules", 0, "host"), "Foo.example"),), "spec.rules[0].host", "lowercase DNS name"),
    (((("spec", "rules", 0, "host"), "foo_bar.example"),), "spec.rules[0].host", "lowercase DNS name"),
    (((("spec", "rules", 0, "host"), "foo.*.example"),), "spec.rules[0].host", "whole first label"),
    (((("spec", "rules", 0, "host"), "*foo.example"),), "spec.rules[0].host", "whole first label"),
    (((("spec", "rules", 0, "host"), "*"),), "spec.rules[0].host", "whole first label"),
    (((("spec", "rules", 1, "host"), "*.*.example"),), "spec.rules[1].host", "whole first label"),
    (((("spec", "rules", 0, "host"), 42),), "spec.rules[0].host", "must be a DNS name"),
    (((("spec", "rules", 0, "hosts"), ["x"]),), "spec.rules[0].hosts", "is not a known field"),
    # paths
    (((("spec", "rules", 0, "http", "paths"), []),), "spec.rules[0].http.paths", "at least one path"),
    (((("spec", "rules", 0, "http"), {}),), "spec.rules[0].http.paths", "at least one path"),
    (((PATH0 + ("pathType",), KeyError),), f"{F0}.pathType", "is required"),
    (((PATH0 + ("pathType",), "Regex"),), f"{F0}.pathType", "must be one of Exact, Prefix, ImplementationSpecific"),
    (((PATH0 + ("pathtype",), "Prefix"),), f"{F0}.pathtype", "is not a known field"),
    (((PATH0 + ("path",), KeyError),), f"{F0}.path", "is required for pathType Prefix"),
    (((PATH1 + ("path",), "foo"),), f"{F1}.path", "must be an absolute path starting with '/' for pathType Exact, not 'foo'"),
    (((PATH0 + ("path",), ""),), f"{F0}.path", "must be an absolute path"),
    (((("spec", "rules", 1, "http", "paths", 0, "path"), "foo"),), "spec.rules[1].http.paths[0].path",
     "for pathType ImplementationSpecific, not 'foo'"),
    (((PATH0 + ("path",), "/a//b"),), f"{F0}.path", "must not contain '//'"),
    (((PATH0 + ("path",), "/a/../b"),), f"{F0}.path", "must not contain '/../'"),
    (((PATH0 + ("path",), "/a%2Fb"),), f"{F0}.path", "must not contain '%2F'"),
    (((PATH1 + ("path",), "/a/.."),), f"{F1}.path", "cannot end with '/..'"),
    # tls
    (((("spec", "tls", 0, "hosts", 1), "1.2.3.4"),), "spec.tls[0].hosts[1]", "not an IP address"),
    (((("spec", "tls", 0, "hosts", 1), "a.*.example"),), "spec.tls[0].hosts[1]", "whole first label"),
    (((("spec", "tls", 0, "secretName"), "Foo_TLS"),), "spec.tls[0].secretName", "lowercase DNS name"),
    (((("spec", "tls", 0, "secret"), "x"),), "spec.tls[0].secret", "is not a known field"),
    (((("spec", "tls"), {"hosts": []}),), "spec.tls", "must be a list"),
])
def test_bad_ingresses_name_the_field(edits, field, text):
    with pytest.raises(ValidationError) as e:
        parse_ingress(changed(*edits), "ing.yaml")
    assert e.value.field == field and text in e.value.problem, str(e.value)
    assert str(e.value).startswith(f"ing.yaml: {field}: ")


def test_the_example_message_of_a_relative_prefix_path():
    doc = changed((PATH1 + ("pathType",), "Prefix"), (PATH1 + ("path",), "foo"))
    with pytest.raises(ValidationError) as e:
        parse_ingress(doc, "ing.yaml")
    assert str(e.value) == ("ing.yaml: spec.rules[0].http.paths[1].path: must be an absolute path starting with '/' for "
                            "pathType Prefix, not 'foo'")


@pytest.mark.parametrize("path_type", ["Exact", "Prefix", "ImplementationSpecific"])
@pytest.mark.parametrize("bad", [" ", "\t", "\n", ";", "{", "}", '"', "'", "\\", "#", "\x01", "\x7f"])
def test_characters_that_would_break_nginx_are_refused_in_every_path_type(path_type, bad):
    doc = changed((PATH0 + ("pathType",), path_type), (PATH0 + ("path",), f"/a{bad}b"))
    with pytest.raises(ValidationError) as e:
        parse_ingress(doc, "ing.yaml")
    assert e.value.field == f"{F0}.path" and "would break the nginx configuration" in e.value.problem


@pytest.mark.parametrize("path", ["/", "/api/v1", "/a-b_c.d~e", "/%20", "/x/(.*)", "/a:b@c!$&()*+,="])
def test_ordinary_paths_pass(path):
    obj = parse_ingress(changed((PATH0 + ("path",), path)), "ing.yaml")
    assert obj["spec"]["rules"][0]["http"]["paths"][0]["path"] == path


def test_implementation_specific_keeps_what_kubernetes_refuses_only_for_exact_and_prefix():
    doc = changed((PATH0 + ("pathType",), "ImplementationSpecific"), (PATH0 + ("path",), "/a//b"))
    assert parse_ingress(doc, "ing.yaml")["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/a//b"


def test_optional_fields_may_be_left_out():
    doc = changed((("spec", "tls", 0, "secretName"), KeyError), (("spec", "ingressClassName"), KeyError),
                  (("spec", "rules", 0, "host"), KeyError), (("spec", "defaultBackend"), KeyError))
    obj = parse_ingress(doc, "ing.yaml")
    assert "ingressClassName" not in obj["spec"] and obj["spec"]["tls"] == [{"hosts": ["foo.example", "*.bar.example"]}]
    assert parse_ingress(changed((("spec", "rules", 0), {"host": "only.example"})), "i")  # a rule without http


@pytest.mark.parametrize("host", ["foo.example", "a", "*.example.com", "x-1.y-2.example", "a" * 63 + ".example"])
def test_good_hosts(host):
    assert host_problem(host) == ""


# -- IngressClass ---------------------------------------------------------------------------------
CLASS = {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
         "metadata": {"name": "nginx", "namespace": "ignored",
                      "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
         "spec": {"controller": "k8s.io/ingress-nginx",
                  "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external-lb"}}}


def test_ingress_class_stored_shape():
    assert parse_ingress_class(CLASS, "c.yaml") == {
        "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": "nginx", "labels": {}, "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
        "spec": {"controller": "k8s.io/ingress-nginx",
                 "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external-lb"}}}


@pytest.mark.parametrize("spec,field,text", [
    ({}, "spec.controller", "is required"),
    ({"controller": "ingress-nginx"}, "spec.controller", "domain-prefixed path such as k8s.io/ingress-nginx"),
    ({"controller": "k8s.io/"}, "spec.controller", "domain-prefixed path"),
    ({"controller": "K8s.io/nginx"}, "spec.controller", "the domain before '/'"),
    ({"controller": "k8s.io/a b"}, "spec.controller", "after the domain"),
    ({"controller": "k8s.io/" + "a" * 250}, "spec.controller", "at most 250 characters"),
    ({"controller": "k8s.io/x", "parameters": {"name": "p"}}, "spec.parameters.kind", "is required"),
    ({"controller": "k8s.io/x", "parameters": {"kind": "K"}}, "spec.parameters.name", "is required"),
    ({"controller": "k8s.io/x", "parameters": {"kind": "K", "name": "p", "scope": "Namespace"}},
     "spec.parameters.namespace", "is required"),
    ({"controller": "k8s.io/x", "parameters": {"kind": "K", "name": "p", "namespace": "a"}},
     "spec.parameters.namespace", "only allowed with scope: Namespace"),
    ({"controller": "k8s.io/x", "parameters": {"kind": "K", "name": "p", "scope": "Global"}}, "spec.parameters.scope",
     "Cluster or Namespace"),
    ({"controller": "k8s.io/x", "default": True}, "spec.default", "is not a known field"),
])
def test_bad_ingress_classes_name_the_field(spec, field, text):
    with pytest.raises(ValidationError) as e:
        parse_ingress_class({**CLASS, "spec": spec}, "c.yaml")
    assert e.value.field == field and text in e.value.problem, str(e.value)


def _class(name: str, default: str | None = None, created: str | None = None, controller: str = "k8s.io/ingress-nginx"):
    meta: dict = {"name": name, "annotations": {}}
    if default is not None:
        meta["annotations"]["ingressclass.kubernetes.io/is-default-class"] = default
    if created:
        meta["creationTimestamp"] = created
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": meta, "spec": {"controller": controller}}


def test_default_class_selection():
    assert default_class([]) is None
    assert default_class([_class("a"), _class("b", "false"), _class("c", "True")]) is None  # only "true" counts
    assert default_class([_class("a"), _class("b", "true")])["metadata"]["name"] == "b"
    newest = [_class("old", "true", "2024-01-01T00:00:00Z"), _class("new", "true", "2024-06-01T00:00:00Z"),
              _class("plain", None, "2025-01-01T00:00:00Z")]
    assert default_class(newest)["metadata"]["name"] == "new"
    same_time = [_class("zeta", "true", "2024-06-01T00:00:00Z"), _class("alpha", "true", "2024-06-01T00:00:00Z")]
    assert default_class(same_time)["metadata"]["name"] == "alpha"
    assert default_class([_class("b", "true"), _class("a", "true")])["metadata"]["name"] == "a"  # no timestamps: by name
    assert default_class([_class("b", "true", "2024-01-01T00:00:00Z"), _class("a", "true")])["metadata"]["name"] == "b"


def test_class_of():
    nginx, other = _class("nginx", "true"), _class("other", controller="example.com/other")
    classes = [nginx, other]

    def ing(class_name=None, annotation=None):
        doc = parse_ingress({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i"},
                             "spec": {"defaultBackend": backend()}}, "i")
        if class_name:
            doc["spec"]["ingressClassName"] = class_name
        if annotation:
            doc["metadata"]["annotations"]["kubernetes.io/ingress.class"] = annotation
        return doc

    assert class_of(ing("other"), classes) is other
    assert class_of(ing("other", annotation="nginx"), classes) is other  # the field wins over the annotation
    assert class_of(ing(annotation="other"), classes) is other
    assert class_of(ing(), classes) is nginx                                # no class named: the default
    assert class_of(ing(), [other]) is None                                 # ... and none without a default
    assert class_of(ing("traefik"), classes) is None                        # a missing class is nobody's
    assert class_of(ing(annotation="traefik"), classes) is None


# -- the kinds and their columns ------------------------------------------------------------------
def test_registry_entries():
    ing, cls, sec = kinds.BY_KIND["Ingress"], kinds.BY_KIND["IngressClass"], kinds.BY_KIND["Secret"]
    for word in ("ing", "ingress", "ingresses", "ingress.networking.k8s.io"):
        assert kinds.lookup(word) is ing
    assert kinds.lookup("ingressclass") is kinds.lookup("ingressclasses") is cls
    assert (ing.qualified, cls.qualified, sec.qualified) == ("ingress.networking.k8s.io",
                                                             "ingressclass.networking.k8s.io", "secret")
    assert (ing.key("shop", "web"), cls.key("", "nginx")) == (keys.INGRESSES + "shop/web", keys.INGRESS_CLASSES + "nginx")
    assert ing.namespaced and not cls.namespaced and all(k.writable for k in (ing, cls, sec))
    assert kinds.BY_KIND["Namespace"].rank < sec.rank == cls.rank < ing.rank
    assert not any(a != b and a.startswith(b) for a in (keys.INGRESSES, keys.INGRESS_CLASSES, keys.SECRETS)
                   for b in (keys.INGRESSES, keys.INGRESS_CLASSES, keys.SECRETS))


def _row(kind: kinds.Kind, obj: dict, wide: bool = False) -> dict[str, str]:
    columns = list(kind.columns) + (list(kind.wide) if wide else [])
    return {c.header: c.value(obj) for c in columns}


def test_ingress_columns():
    kind = kinds.BY_KIND["Ingress"]
    obj = parse_ingress(GOOD, "i")
    obj["metadata"]["creationTimestamp"] = "2020-01-01T00:00:00Z"
    row = _row(kind, obj, wide=True)
    assert list(row) == ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE", "PROBLEMS"]
    assert {k: v for k, v in row.items() if k != "AGE"} == {
        "NAME": "web", "CLASS": "nginx", "HOSTS": "foo.example,*.bar.example", "ADDRESS": "", "PORTS": "80, 443",
        "PROBLEMS": "<none>"}
    assert row["AGE"].endswith("d")

    plain = parse_ingress({**GOOD, "spec": {"defaultBackend": backend()}}, "i")
    assert (_row(kind, plain)["CLASS"], _row(kind, plain)["HOSTS"], _row(kind, plain)["PORTS"]) == ("<none>", "*", "80")

    plain["status"] = {"loadBalancer": {"ingress": [{"ip": "172.31.100.1"}, {"hostname": "lb.example"}]},
                       "podnet": {"problems": ["service default/a not found", "no endpoints"]}}
    assert _row(kind, plain, True)["ADDRESS"] == "172.31.100.1,lb.example"
    assert _row(kind, plain, True)["PROBLEMS"] == "service default/a not found; no endpoints"

    rules = [{"host": f"h{i}.example"} for i in range(5)]
    assert _row(kind, {**plain, "spec": {"rules": rules}})["HOSTS"] == "h0.example,h1.example,h2.example + 2 more..."
    assert _row(kind, {**plain, "spec": {"rules": rules[:3]}})["HOSTS"] == "h0.example,h1.example,h2.example"


def test_ingress_class_columns():
    kind = kinds.BY_KIND["IngressClass"]
    obj = kind.parse(CLASS, "c", "default")
    assert {k: v for k, v in _row(kind, obj).items() if k != "AGE"} == {
        "NAME": "nginx", "CONTROLLER": "k8s.io/ingress-nginx", "PARAMETERS": "IngressParameters.k8s.example.com/external-lb"}
    bare = kind.parse({**CLASS, "spec": {"controller": "k8s.io/ingress-nginx"}}, "c", "default")
    assert _row(kind, bare)["PARAMETERS"] == "<none>"


# -- through the generic CLI (`podnet apply` / `podnet get`, on a throwaway SQLite store) ---------
@pytest.fixture
def cli(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from podnet.cli import resources
    from podnet.store import open_store

    url = f"sqlite://{tmp_path}/store.db"

    @contextlib.contextmanager
    def lab_store():
        store = open_store(url)
        try:
            yield None, store
        finally:
            store.close()

    monkeypatch.setattr(resources, "lab_store", lab_store)
    runner = CliRunner()

    def run(command, *args: str) -> str:
        result = runner.invoke(command, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    run.resources = resources
    return run


def test_apply_and_get_through_the_cli(cli, tmp_path):
    r = cli.resources
    docs = [GOOD, CLASS,
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "foo-tls"}, "stringData": {"a": "b", "c": "d"}}]
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    out = cli(r.apply, "-f", str(path))
    # by rank: the class and the Secret (in the manifest's order) before the Ingress that uses them
    assert out.splitlines() == ["ingressclass.networking.k8s.io/nginx created", "secret/foo-tls created",
                                "ingress.networking.k8s.io/web created"]
    table = cli(r.get, "ing").splitlines()
    assert table[0].split() == ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
    assert table[1].split()[:5] == ["web", "nginx", "foo.example,*.bar.example", "80,", "443"]
    assert cli(r.get, "ingress", "-o", "wide").splitlines()[0].split()[-1] == "PROBLEMS"
    assert json.loads(cli(r.get, "ingress", "web", "-o", "json"))["spec"]["ingressClassName"] == "nginx"
    listed = yaml.safe_load(cli(r.get, "ingresses", "-o", "yaml"))
    assert listed["items"][0]["metadata"]["annotations"] == {"nginx.ingress.kubernetes.io/ssl-redirect": "false"}
    assert cli(r.get, "secrets").splitlines()[1].split()[:3] == ["foo-tls", "Opaque", "2"]
    assert yaml.safe_load(cli(r.get, "secret", "foo-tls", "-o", "yaml"))["data"] == {"a": "Yg==", "c": "ZA=="}
    assert cli(r.get, "ingressclass").splitlines()[1].split()[:3] == ["nginx", "k8s.io/ingress-nginx",
                                                                      "IngressParameters.k8s.example.com/external-lb"]
    assert "unchanged" in cli(r.apply, "-f", str(path))
