"""The plugin dispatcher: environment and version rules, error JSON, in the reference's order."""

import json

import pytest

from podnet.cni.errors import CNIError
from podnet.cni.skel import CmdArgs, Plugin, dispatch

CALLS = []


def _add(args: CmdArgs):
    CALLS.append(("ADD", args.container_id))
    return {"cniVersion": "1.1.0", "ips": [{"address": "10.0.0.2/24"}], "dns": {}}


def _fail(args: CmdArgs):
    raise RuntimeError("boom")


PLUGIN = Plugin(name="test", add=_add, delete=lambda a: CALLS.append(("DEL", a.container_id)), check=lambda a: None,
                gc=lambda a: CALLS.append(("GC", a.conf.get("cni.dev/valid-attachments"))), status=lambda a: None)
ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/x", "CNI_IFNAME": "eth0", "CNI_PATH": "/bin"}


def conf(version="1.0.0", **kw):
    return json.dumps({"cniVersion": version, "name": "n", "type": "test", **kw}).encode()


def run(env=None, stdin=None, plugin=PLUGIN, **overrides):
    e = dict(ENV if env is None else env)
    e.update(overrides)
    code, out = dispatch(plugin, e, conf() if stdin is None else stdin)
    return code, json.loads(out) if out else None


def test_add_prints_result_in_config_version():
    code, out = run(stdin=conf("0.3.1"))
    assert code == 0 and out["cniVersion"] == "0.3.1" and out["ips"][0]["version"] == "4"


def test_version_lists_supported_versions():
    code, out = run(CNI_COMMAND="VERSION", stdin=b"")
    assert code == 0 and "1.1.0" in out["supportedVersions"] and "0.1.0" in out["supportedVersions"]


@pytest.mark.parametrize("cid", ["../../etc", "-leading", "a/b", "x y", ""])
def test_bad_container_ids_are_code_4_and_never_reach_the_plugin(cid):
    CALLS.clear()
    code, out = run(CNI_CONTAINERID=cid)
    assert code == 1 and out["code"] == 4
    assert CALLS == []


@pytest.mark.parametrize("ifname", ["a" * 16, ".", "..", "eth/0", "eth:0", "eth 0", ""])
def test_bad_interface_names_are_code_4(ifname):
    code, out = run(CNI_IFNAME=ifname)
    assert (code, out["code"]) == (1, 4)


def test_missing_env_lists_all_missing_in_order():
    code, out = run(env={"CNI_COMMAND": "ADD", "CNI_IFNAME": "eth0"})
    assert out["msg"] == "required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_PATH] missing"


def test_del_does_not_need_netns():
    code, out = run(CNI_COMMAND="DEL", CNI_NETNS="")
    assert code == 0 and out is None


def test_unknown_command():
    assert run(CNI_COMMAND="FROB")[1]["code"] == 4


@pytest.mark.parametrize("stdin,code", [(b"{bad", 6), (b"[]", 6), (b'{"cniVersion":"1.0.0"}', 7),
                                        (b'{"cniVersion":"1.0.0","name":"../x"}', 7)])
def test_config_errors(stdin, code):
    assert run(stdin=stdin)[1]["code"] == code


@pytest.mark.parametrize("verb,version", [("CHECK", "0.3.1"), ("GC", "1.0.0"), ("STATUS", "0.4.0")])
def test_verbs_need_their_minimum_version(verb, version):
    code, out = run(CNI_COMMAND=verb, stdin=conf(version))
    assert out["code"] == 1 and verb in out["msg"]


def test_unsupported_version_is_code_1_with_details():
    out = run(stdin=conf("9.9.9"))[1]
    assert out["code"] == 1 and '"9.9.9"' in out["details"]


def test_gc_receives_valid_attachments():
    CALLS.clear()
    valid = [{"containerID": "c1", "ifname": "eth0"}]
    code, _ = run(CNI_COMMAND="GC", stdin=conf("1.1.0", **{"cni.dev/valid-attachments": valid}))
    assert code == 0 and CALLS == [("GC", valid)]


def test_unexpected_exception_becomes_code_999_json():
    p = Plugin(name="f", add=_fail, delete=_fail, check=_fail)
    code, out = run(plugin=p)
    assert code == 1 and out == {"cniVersion": "1.0.0", "code": 999, "msg": "boom"}


def test_cni_args_parsing():
    a = CmdArgs("ADD", "c", "/x", "eth0", "IgnoreUnknown=1;IP=10.0.0.9", "/bin", b"", {})
    assert a.args_dict() == {"IgnoreUnknown": "1", "IP": "10.0.0.9"}
    with pytest.raises(CNIError):
        CmdArgs("ADD", "c", "/x", "eth0", "novalue", "/bin", b"", {}).args_dict()


def test_the_k8s_pod_is_read_leniently_from_cni_args():
    from podnet.cni.skel import k8s_pod

    assert k8s_pod({"CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=x;K8S_POD_NAME=web;novalue"}) == ("x", "web")
    assert k8s_pod({"CNI_ARGS": "K8S_POD_NAME=web"}) == ("", "web")  # a namespace is not required
    assert k8s_pod({}) == ("", "")
