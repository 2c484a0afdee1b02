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
