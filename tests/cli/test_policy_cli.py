"""NetworkPolicy from the command line: apply/get/delete of policies and namespaces, label, probe."""

from __future__ import annotations

import json
import sys

import pytest

from tests.cli.test_lab_cli import cli, manifest  # noqa: F401 - the fixture

pytestmark = [pytest.mark.root, pytest.mark.slow]
SERVE = [sys.executable, "-m", "podnet.lab.echo", "--port", "80", "--udp"]


def _pod(name, ns, node, labels):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"nodeName": node, "containers": [{"name": "s", "command": SERVE,
                                                        "ports": [{"name": "http", "containerPort": 80}]}]}}


POLICY = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "web-from-team", "namespace": "shop"},
          "spec": {"podSelector": {"matchLabels": {"app": "web"}},
                   "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "shop"}}}], "ports": [{"port": "http"}]}]}}


def _grid_rows(out: str) -> dict[str, list[str]]:
    lines = [l.split() for l in out.splitlines()[1:] if l.strip()]
    header = lines[0]
    return {row[0]: dict(zip(header, row[1:])) for row in lines[1:] if len(row) == len(header) + 1}


def test_policy_workflow(cli, tmp_path):  # noqa: F811
    cli("lab", "up", "--nodes", "2", "--name", cli.name)
    docs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"team": "shop"}}},
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}},
            _pod("web", "shop", "node1", {"app": "web"}), _pod("client", "shop", "node2", {"app": "client"}),
            _pod("outsider", "other", "node2", {"app": "client"}), POLICY]
    out = cli("apply", "-f", manifest(tmp_path, docs)).stdout
    assert "namespace/shop created" in out and "networkpolicy.networking.k8s.io/web-from-team created" in out
    assert "unchanged" in cli("apply", "-f", manifest(tmp_path, [POLICY], "p.yaml")).stdout

    ns = cli("get", "ns", "--show-labels").stdout
    assert "shop" in ns and "team=shop" in ns and "kube-system" in ns
    assert "app=web" in cli("get", "pods", "-n", "shop", "--show-labels").stdout
    table = cli("get", "netpol", "-n", "shop", "-o", "wide").stdout
    assert "web-from-team" in table and "app=web" in table and "Ingress" in table
    listed = json.loads(cli("get", "networkpolicies", "-A", "-o", "json").stdout)
    assert listed["kind"] == "List" and listed["items"][0]["spec"]["ingress"][0]["ports"][0]["port"] == "http"

    r = cli("probe", "-n", "shop", "-n", "other", "--expect-model")
    rows = _grid_rows(r.stdout)
    assert rows["other/outsider"]["shop/web"] == "X" and rows["shop/client"]["shop/web"] == "."
    assert rows["shop/web"]["other/outsider"] == "." and "as expected" in r.stdout

    # the grid just printed is a valid --expect file; a changed label makes the same file fail
    expect = tmp_path / "expect.txt"
    expect.write_text("\n".join(r.stdout.splitlines()[1:-2]) + "\n")
    cli("probe", "-n", "shop", "-n", "other", "--expect", str(expect))
    assert "namespace/other labeled" in cli("label", "ns", "other", "team=shop").stdout
    bad = cli("probe", "-n", "shop", "-n", "other", "--expect", str(expect), check=False)
    assert bad.returncode == 1 and "other/outsider -> shop/web: expected X, observed ." in bad.stderr
    assert "UDP/80" in cli("probe", "-n", "other", "--protocol", "udp").stdout

    assert cli("label", "pod", "web", "-n", "shop", "app=api", check=False).returncode == 1  # needs --overwrite
    r = cli("label", "ns", "other", "kubernetes.io/metadata.name=x", check=False)
    assert r.returncode == 1 and "cannot change" in r.stderr
    r = cli("probe", "--expect", str(tmp_path / "missing.txt"), check=False)
    assert r.returncode == 2
    (tmp_path / "broken.txt").write_text("a b\na . ?\nb . .\n")
    r = cli("probe", "--expect", str(tmp_path / "broken.txt"), check=False)
    assert r.returncode == 1 and "line 2" in r.stderr

    r = cli("delete", "ns", "default", check=False)
    assert r.returncode == 1 and "system namespace" in r.stderr
    cli("delete", "netpol", "web-from-team", "-n", "shop")
    assert cli("delete", "netpol", "web-from-team", "-n", "shop", check=False).returncode == 1
    out = cli("delete", "ns", "other").stdout
    assert 'namespace "other" deleted' in out
    assert "outsider" not in cli("get", "pods", "-A").stdout
