"""Fuzz one CNI plugin in-process, run by tests/fuzz/test_cni.py inside a private node
namespace (`ip netns exec`), so whatever a mutated config makes the plugin do stays there.

Properties, for every mutated config and environment:
- the plugin answers: exit code 0, or 1 with the spec's error JSON (a known code, a message
  that is not a Python internal such as a TypeError's text or an object's repr);
- a failed command leaves nothing behind: no link, no address, no reserved IP, no nft rule;
- a successful ADD is undone by its DEL (a bridge may stay, as with the reference).

usage: python cni_worker.py PLUGIN POD_NETNS DATA_DIR EXAMPLES
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from podnet.cni.skel import dispatch  # noqa: E402
from tests.fuzz.strategies import json_values, mutated  # noqa: E402

SPEC_CODES = {1, 2, 3, 4, 5, 6, 7, 11, 50, 51, 999}
# what a Python exception's text looks like when it leaks out as an error message
INTERNALS = ("Traceback", "object at 0x", "NoneType", "object has no attribute", "object is not", "unhashable type",
             "not subscriptable", "index out of range", "unsupported operand", "takes ", "positional argument",
             "KeyError", "TypeError", "AttributeError", "IndexError", "invalid literal for int", "can't concat",
             "must be str, not", "argument of type", "RecursionError", "not iterable", "expected str, bytes",
             "returned NULL")


def templates(pod_ns: str, data_dir: str) -> dict[str, tuple[dict, tuple]]:
    """A valid config per plugin, and the paths fuzzing must not touch."""
    ipam = lambda subnet: {"type": "host-local", "subnet": subnet, "dataDir": data_dir}  # noqa: E731
    keep = (("ipam", "dataDir"), ("ipam", "type"))
    return {
        "bridge": ({"cniVersion": "1.0.0", "name": "fz", "type": "bridge", "bridge": "fz0", "isGateway": True, "ipMasq": True,
                    "mtu": 1400, "hairpinMode": False, "ipam": ipam("10.77.0.0/24")}, keep),
        "ptp": ({"cniVersion": "1.0.0", "name": "fz", "type": "ptp", "ipMasq": True, "mtu": 1400,
                 "ipam": ipam("10.78.0.0/24")}, keep),
        "loopback": ({"cniVersion": "1.0.0", "name": "fz", "type": "loopback"}, ()),
        "host-local": ({"cniVersion": "1.0.0", "name": "fz", "type": "host-local",
                        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.79.0.0/24", "rangeStart": "10.79.0.10"}]],
                                 "routes": [{"dst": "0.0.0.0/0"}], "dataDir": data_dir}}, keep),
        "portmap": ({"cniVersion": "1.0.0", "name": "fz", "type": "portmap", "capabilities": {"portMappings": True},
                     "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                                                        {"hostPort": 5353, "containerPort": 53, "protocol": "udp",
                                                         "hostIP": "127.0.0.1"}]},
                     "prevResult": {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": pod_ns}],
                                    "ips": [{"address": "10.77.0.5/24", "interface": 0}]}}, ()),
        "podnet": ({"cniVersion": "1.0.0", "name": "fz", "type": "podnet", "socket": f"{data_dir}/no-agent.sock"},
                   (("socket",),)),
    }


def module_for(plugin: str):
    import importlib

    return importlib.import_module({"host-local": "podnet.plugins.host_local"}.get(plugin, f"podnet.plugins.{plugin}"))


def snapshot(pod_ns: str, data_dir: str) -> dict:
    def ip(*args: str, ns: str | None = None) -> list:
        argv = ["ip", "-j", *(["-n", os.path.basename(ns)] if ns else []), *args]
        return json.loads(subprocess.run(argv, capture_output=True, text=True).stdout or "[]")

    links = sorted(l["ifname"] for l in ip("-d", "link") if l.get("linkinfo", {}).get("info_kind") != "bridge")
    pod_links = sorted(l["ifname"] for l in ip("link", ns=pod_ns))
    # (lo's addresses are the loopback plugin's business: its DEL takes lo down, and ::1 with it)
    pod_addrs = sorted(a["local"] for l in ip("addr", ns=pod_ns) if l["ifname"] != "lo" for a in l.get("addr_info", []))
    reserved = sorted(os.path.join(d, f) for d, _, files in os.walk(data_dir) for f in files
                      if f[0].isdigit() or ":" in f)
    ruleset = json.loads(subprocess.run(["nft", "-j", "list", "ruleset"], capture_output=True, text=True).stdout or "{}")
    # rules of one attachment carry its tag as comment (the shared skeleton stays, as the reference's chains do)
    rules = sorted(json.dumps(i["rule"].get("expr")) for i in ruleset.get("nftables", [])
                   if "rule" in i and str(i["rule"].get("comment", "")).startswith("podnet ")
                   and i["rule"]["comment"] != "podnet hostports")
    return {"links": links, "pod_links": pod_links, "pod_addrs": pod_addrs, "reserved": reserved, "rules": rules}


def check_answer(code: int, out: str) -> dict | None:
    assert code in (0, 1), code
    if code == 0:
        return json.loads(out) if out.strip() else None
    err = json.loads(out)
    assert isinstance(err, dict) and err.get("code") in SPEC_CODES, err
    msg = f"{err.get('msg', '')} {err.get('details', '')}"
    assert err.get("msg"), err
    leaked = [m for m in INTERNALS if m in msg]
    assert not leaked, f"a Python internal in the error: {err}"
    return None


def main() -> None:
    plugin, pod_ns, data_dir, examples = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    os.chdir(data_dir)  # a relative path in a mutated config lands here
    template, frozen = templates(pod_ns, data_dir)[plugin]
    if plugin == "podnet":
        from podnet.plugins.podnet import run as podnet_run

        call = lambda env, stdin: podnet_run(env, stdin)  # noqa: E731
    else:
        mod = module_for(plugin)
        call = lambda env, stdin: dispatch(mod.PLUGIN, env, stdin)  # noqa: E731
    base_env = {"CNI_CONTAINERID": "fuzz1", "CNI_NETNS": pod_ns, "CNI_IFNAME": "eth0", "CNI_ARGS": "",
                "CNI_PATH": os.environ["FUZZ_CNI_PATH"]}
    env_values = st.one_of(st.text(max_size=40), st.sampled_from(["", pod_ns, "/nonexistent", "/etc/hostname", "/",
                                                                  "a" * 300, "eth0", "IgnoreUnknown=1;K8S_POD_NAME",
                                                                  "x=y;;z"]))
    before = snapshot(pod_ns, data_dir)

    @settings(max_examples=examples)
    @given(conf=mutated(template, frozen), command=st.sampled_from(["ADD", "ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION",
                                                                     "", "add", "BOGUS"]),
           env=st.dictionaries(st.sampled_from(sorted(base_env)), env_values, max_size=2),
           raw=st.one_of(st.none(), st.binary(max_size=60), json_values.map(lambda v: json.dumps(v).encode())))
    def prop(conf, command, env, raw):
        environ = {**base_env, **env, "CNI_COMMAND": command}
        stdin = raw if raw is not None else json.dumps(conf).encode()
        code, out = call(environ, stdin)
        result = check_answer(code, out)
        if command == "ADD" and code == 0:
            del_code, del_out = call({**environ, "CNI_COMMAND": "DEL"}, stdin)
            check_answer(del_code, del_out)
            assert del_code == 0, f"ADD succeeded but DEL failed: {del_out} (result {result})"
        after = snapshot(pod_ns, data_dir)
        assert after == before, f"{command} left something behind: {before} -> {after}"

    prop()


if __name__ == "__main__":
    main()
