"""`podnet demo`: two pods on a bridge inside a private node namespace, a ping, teardown.

Everything happens in namespaces named pn-demo-*; they are removed at the end, also on
failure or Ctrl-C. The pods are wired exactly as a container runtime would do it: the
conflist is run through podnet's libcni-style runner, which executes the plugin binaries.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import uuid

import click

from .cni.install import install
from .cni.runner import ConfList, Runner, RuntimeConf
from .kernel import netns


def _sh(*argv: str, check: bool = True) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=check).stdout


def _step(text: str) -> None:
    click.secho(f"==> {text}", fg="cyan", bold=True)


def run_demo() -> None:
    tag = uuid.uuid4().hex[:4]
    node, pods = f"pn-demo-node-{tag}", [f"pn-demo-a-{tag}", f"pn-demo-b-{tag}"]
    work = tempfile.mkdtemp(prefix="pn-demo-")
    made: list[str] = []
    try:
        _step(f"node namespace {node} and pod namespaces {', '.join(pods)}")
        for ns in (node, *pods):
            _sh("ip", "netns", "add", ns)
            made.append(ns)
            _sh("ip", "-n", ns, "link", "set", "lo", "up")
        bindir = os.path.join(work, "bin")
        install(bindir)
        _step(f"installed podnet's CNI plugins into {bindir}")
        conflist = {
            "cniVersion": "1.0.0", "name": "demo",
            "plugins": [{"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": True,
                         "ipam": {"type": "host-local", "dataDir": os.path.join(work, "ipam"),
                                  "ranges": [[{"subnet": "10.244.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
                        {"type": "portmap", "capabilities": {"portMappings": True}}],
        }
        conf_path = os.path.join(work, "demo.conflist")
        with open(conf_path, "w") as f:
            json.dump(conflist, f, indent=2)
        click.echo(json.dumps(conflist, indent=2))
        net = ConfList.load(conf_path)
        runner = Runner([bindir], cache_dir=os.path.join(work, "cache"))
        ips = {}
        with netns.entered(f"/var/run/netns/{node}"):
            for i, pod in enumerate(pods):
                _step(f"CNI ADD {pod} (the way a runtime does it: env + stdin, chained plugins)")
                rt = RuntimeConf(container_id=f"demo-{i}", netns=f"/var/run/netns/{pod}", ifname="eth0")
                result = runner.add(net, rt)
                ips[pod] = result["ips"][0]["address"].split("/")[0]
                click.echo(f"    {pod}: {result['ips'][0]['address']} via {result['ips'][0]['gateway']}")
        _step(f"inside {pods[0]}")
        click.echo(_sh("ip", "-n", pods[0], "-br", "addr") + _sh("ip", "-n", pods[0], "route"))
        _step("on the node: the bridge and its ports")
        click.echo(_sh("ip", "-n", node, "-br", "link", "show", "type", "bridge")
                   + _sh("ip", "-n", node, "-br", "link", "show", "master", "cni0"))
        _step(f"ping {pods[1]} ({ips[pods[1]]}) from {pods[0]}")
        ping = subprocess.run(["ip", "netns", "exec", pods[0], "busybox", "ping", "-c", "3", ips[pods[1]]],
                              capture_output=True, text=True)
        click.echo(ping.stdout.rstrip())
        ok = ping.returncode == 0
        with netns.entered(f"/var/run/netns/{node}"):
            for i, pod in enumerate(pods):
                runner.delete(net, RuntimeConf(container_id=f"demo-{i}", netns=f"/var/run/netns/{pod}", ifname="eth0"))
        _step("CNI DEL both pods: addresses released, veths gone")
        click.echo("    node links now: " + " ".join(l.split()[0] for l in _sh("ip", "-n", node, "-br", "link").splitlines()))
        if not ok:
            raise click.ClickException("the pods could not reach each other")
        click.secho("demo passed: two pods, one bridge, real packets", fg="green", bold=True)
    finally:
        for ns in reversed(made):
            _sh("ip", "netns", "del", ns, check=False)
        shutil.rmtree(work, ignore_errors=True)
        _step("teardown: namespaces removed")


@click.command("demo")
def demo() -> None:
    """Two pods on a bridge in a private node namespace, a ping, teardown (needs root)."""
    if os.geteuid() != 0:
        raise click.ClickException("the demo creates network namespaces: run it as root")
    run_demo()
