"""The lab through the command line, as a user drives it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
import yaml

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture
def cli(tmp_path):
    name = "c" + uuid.uuid4().hex[:5]
    env = dict(os.environ, PODNET_LAB_DIR=str(tmp_path / "lab"))

    def run(*args, check=True, input=None):
        r = subprocess.run([sys.executable, "-m", "podnet.cli.main", *args], capture_output=True, text=True, env=env,
                           input=input, timeout=180)
        if check:
            assert r.returncode == 0, f"podnet {' '.join(args)}: {r.stdout}{r.stderr}"
        return r

    run.name = name
    yield run
    run("lab", "down", "--name", name, check=False)
    leftovers = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"pn-{name}-" not in leftovers


def manifest(tmp_path, docs, name="pods.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(docs))
    return str(path)


def pod(name, node=None, command=None):
    spec = {"containers": [{"name": "main", "command": command or [sys.executable, "-m", "podnet.lab.echo"]}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "t"}}, "spec": spec}


def test_lab_from_the_command_line(cli, tmp_path):
    r = cli("lab", "up", "--nodes", "2", "--name", cli.name)
    assert "node2: ready, pod CIDR 10.244.2.0/24" in r.stdout
    again = cli("lab", "up", "--nodes", "2", "--name", cli.name, check=False)
    assert again.returncode == 1 and "already up" in again.stderr

    nodes = json.loads(cli("get", "nodes", "-o", "json").stdout)
    assert nodes["kind"] == "List" and [n["metadata"]["name"] for n in nodes["items"]] == ["node1", "node2"]
    assert "INTERNAL-IP" in cli("get", "nodes", "-o", "wide").stdout

    # one bad document: nothing at all is applied, and the error names the field
    bad = manifest(tmp_path, [pod("good-one"), {**pod("bad-one"), "spec": {"containers": [{"name": "m", "command": "sleep"}]}}])
    r = cli("apply", "-f", bad, check=False)
    assert r.returncode == 1 and "spec.containers[0].command" in r.stderr and "document 2" in r.stderr
    assert "No resources found" in cli("get", "pods").stdout
    r = cli("apply", "-f", manifest(tmp_path, [pod("x", node="node9")], "n.yaml"), check=False)
    assert r.returncode == 1 and "spec.nodeName" in r.stderr

    good = manifest(tmp_path, [pod("web", "node1"), pod("cli", "node2", ["sh", "-c", "echo hello from $POD_NAME; sleep 300"])])
    assert cli("apply", "-f", good).stdout.splitlines() == ["pod/web created", "pod/cli created"]
    assert cli("apply", "-f", good).stdout.splitlines() == ["pod/web unchanged", "pod/cli unchanged"]
    pods = yaml.safe_load(cli("get", "pods", "-o", "yaml").stdout)
    ips = {p["metadata"]["name"]: p["status"]["podIP"] for p in pods["items"]}
    assert ips["web"].startswith("10.244.1.") and ips["cli"].startswith("10.244.2.")
    wide = cli("get", "pods", "-o", "wide").stdout
    assert "web" in wide and ips["web"] in wide and "node1" in wide
    assert cli("get", "pods", "-A").stdout.startswith("NAMESPACE")
    assert json.loads(cli("get", "pods", "web", "-o", "json").stdout)["kind"] == "Pod"

    r = cli("exec", "cli", "--", "busybox", "ping", "-c", "1", "-W", "2", ips["web"])
    assert "1 packets received" in r.stdout
    assert cli("exec", "cli", "--", "sh", "-c", "exit 3", check=False).returncode == 3
    assert "hello from cli" in cli("logs", "cli").stdout
    assert cli("logs", "nope", check=False).returncode == 1

    assert cli("delete", "-f", good).stdout.splitlines() == ['pod "web" deleted', 'pod "cli" deleted']
    r = cli("delete", "pod", "web", check=False)
    assert r.returncode == 1 and "not found" in r.stderr


def test_lab_down_cleans_up_after_a_crash(cli, tmp_path):
    cli("lab", "up", "--nodes", "1", "--name", cli.name)
    cli("apply", "-f", manifest(tmp_path, [pod("p")]))
    # the lab's state file is lost (a crash): down still finds everything by name
    os.unlink(tmp_path / "lab" / "lab.json")
    r = cli("lab", "down", "--name", cli.name)
    assert "namespaces removed" in r.stdout
    assert f"pn-{cli.name}-" not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def test_the_cli_refuses_what_kubernetes_refuses_and_round_trips_what_it_prints(cli, tmp_path):
    cli("lab", "up", "--nodes", "1", "--name", cli.name)
    empty = tmp_path / "empty.yaml"
    empty.write_text("---\n# nothing here\n")
    r = cli("apply", "-f", str(empty), check=False)
    assert r.returncode == 1 and "no objects passed to apply" in r.stderr

    # a namespace that does not exist is an error (nothing is made); in the same file, it is created first
    ghost = {**pod("ghost"), "metadata": {"name": "ghost", "namespace": "nope"}}
    r = cli("apply", "-f", manifest(tmp_path, [ghost], "ghost.yaml"), check=False)
    assert r.returncode == 1 and 'namespaces "nope" not found' in r.stderr
    assert "No resources found" in cli("get", "pods", "-n", "nope").stdout
    assert "nope" not in cli("get", "ns").stdout
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "nope"}}
    assert cli("apply", "-f", manifest(tmp_path, [ghost, ns], "ghost2.yaml")).stdout.splitlines() == \
        ["namespace/nope created", "pod/ghost created"]

    # a command that does not exist: a start error, then back-off, never "Completed"
    cli("apply", "-f", manifest(tmp_path, [pod("broken", command=["no-such-command-anywhere"])], "broken.yaml"))
    started = lambda: "ContainerCreating" not in cli("get", "pods", "broken", "-o", "json").stdout  # noqa: E731
    assert wait_for_text(lambda: str(started()), "True")
    row = cli("get", "pods", "broken").stdout.splitlines()[1].split()
    assert row[1] == "0/1" and row[2] in ("StartError", "CrashLoopBackOff"), row
    status = json.loads(cli("get", "pods", "broken", "-o", "json").stdout)["status"]["containerStatuses"][0]
    last = status["state"].get("terminated") or status["lastState"]["terminated"]
    assert last["reason"] == "StartError" and "executable file not found" in last["message"]

    # what get -o yaml prints applies back unchanged, for every kind
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
           "spec": {"selector": {"app": "t"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    nodeport = {**svc, "metadata": {"name": "web-np"}, "spec": {**svc["spec"], "type": "NodePort"}}
    policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "deny"},
              "spec": {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}]}]}}
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "d"}},
                    "template": {"metadata": {"labels": {"app": "d"}}, "spec": pod("x")["spec"]}}}
    cli("apply", "-f", manifest(tmp_path, [svc, nodeport, policy, dep, pod("web", "node1")], "all.yaml"))
    for kind, name, extra in (("svc", "web", []), ("svc", "web-np", []), ("netpol", "deny", []), ("deploy", "d", []),
                              ("pod", "web", []), ("ns", "nope", []), ("pod", "ghost", ["-n", "nope"])):
        printed = cli("get", kind, name, "-o", "yaml", *extra).stdout
        again = cli("apply", "-f", "-", *extra, input=printed, check=False)
        assert again.returncode == 0 and again.stdout.strip().endswith("unchanged"), (kind, name, again.stdout, again.stderr)

    # bad input names the field, and shows values as the user wrote them
    r = cli("apply", "-f", manifest(tmp_path, [{**svc, "metadata": {"name": "1abc"}}], "bad-svc.yaml"), check=False)
    assert r.returncode == 1 and "metadata.name" in r.stderr and "starting with a letter" in r.stderr
    bad_block = {**policy, "spec": {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8",
                                                                                          "except": ["10.0.0.0/8"]}}]}]}}
    r = cli("apply", "-f", manifest(tmp_path, [bad_block], "bad-np.yaml"), check=False)
    assert r.returncode == 1 and "ipBlock.except[0]" in r.stderr and "strictly inside" in r.stderr
    r = cli("apply", "-f", manifest(tmp_path, [{**pod("l"), "metadata": {"name": "l", "labels": {"a b/c": "x"}}}], "l.yaml"),
            check=False)
    assert r.returncode == 1 and "label key 'a b/c'" in r.stderr

    # logs --tail as kubectl: 0 prints nothing
    cli("apply", "-f", manifest(tmp_path, [pod("talk", command=["sh", "-c", "echo one; echo two; sleep 300"])], "t.yaml"))
    assert wait_for_text(lambda: cli("logs", "talk").stdout, "two")
    assert cli("logs", "talk", "--tail", "0").stdout == ""
    assert cli("logs", "talk", "--tail", "1").stdout == "two\n"

    cli("lab", "down", "--name", cli.name)
    assert not os.path.exists(tmp_path / "lab"), os.listdir(tmp_path / "lab")


def wait_for_text(read, text: str, timeout: float = 10.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in read():
            return True
        time.sleep(0.1)
    return False


def test_wait_for_a_condition_or_a_deletion(cli, tmp_path):
    cli("lab", "up", "--nodes", "1", "--name", cli.name)
    cli("apply", "-f", manifest(tmp_path, [pod("ok"), pod("broken", command=["no-such-command-anywhere"])], "w.yaml"))
    r = cli("wait", "--for=condition=Ready", "pod/ok", "--timeout", "60s")
    assert r.stdout.strip() == "pod/ok condition met"
    r = cli("wait", "--for=condition=Ready", "pod/broken", "--timeout", "2s", check=False)
    assert r.returncode == 1 and "timed out waiting for the condition Ready on pods/broken" in r.stderr, r.stderr
    r = cli("wait", "--for=condition=Ready", "pod/nobody", "--timeout", "1s", check=False)
    assert r.returncode == 1 and "pods/nobody (not found)" in r.stderr
    assert cli("wait", "--for=nonsense", "pod/ok", check=False).returncode == 2
    cli("delete", "pod", "ok", "--no-wait")
    assert cli("wait", "--for=delete", "pod/ok", "--timeout", "60s").stdout.strip() == "pod/ok deleted"
    ready = json.loads(cli("get", "pods", "-o", "json").stdout)["items"]
    assert [p["metadata"]["name"] for p in ready] == ["broken"]
