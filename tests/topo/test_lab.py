"""`podnet topo` on a live 2-node VXLAN lab: the model from the kernel and the store, `-o svg`
as the acceptance check reads it, and the `--serve` page in headless Chromium, including a pod
added after the page loaded reaching the page without a reload."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

import pytest

from podnet.api.networkpolicy import parse_network_policy
from podnet.lab import policies, topology
from podnet.topo.collect import NodeRef, collect
from tests.lab.conftest import module_lab, pods_a_b_and_web, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow]
PODNET = os.path.join(os.path.dirname(sys.executable), "podnet")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with module_lab(tmp_path_factory, "o", 2) as lab:
        with topology.store_context(lab.state):
            store = lab.store()
            try:
                pods_a_b_and_web(lab, store)
                policies.apply_network_policy(store, parse_network_policy(
                    {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "deny-b"},
                     "spec": {"podSelector": {"matchLabels": {"app": "b"}}, "policyTypes": ["Ingress"]}}, "test"))
                assert wait_for(lambda: store.get("/podnet/endpointslices/default/web") is not None
                                and "addresses" in store.get("/podnet/endpointslices/default/web").value, 30)
            finally:
                store.close()
        yield lab


def model_of(lab):
    with topology.store_context(lab.state):
        store = lab.store()
        try:
            return collect(store, [NodeRef(n.name, n.netns, n.ip) for n in lab.state.nodes], {"name": lab.state.name})
        finally:
            store.close()


def env_of(lab) -> dict:
    return {**os.environ, "PODNET_LAB_DIR": lab.state.directory}


def test_collect_sees_nodes_pods_devices_tunnels_and_endpoints(lab):
    m = model_of(lab)
    state_ips = {n.name: n.ip for n in lab.state.nodes}
    assert {(n.name, n.ip, n.netns) for n in m.nodes} == {(n.name, n.ip, n.netns) for n in lab.state.nodes}
    stored = {p["metadata"]["name"]: p for p in lab.pods()}
    pods = {p.name: p for p in m.pods if p.namespace == "default"}
    assert set(pods) == {"a", "b"}
    devices = {d.id: d for d in m.devices}
    links = {(lk.frm, lk.to, lk.kind) for lk in m.links}
    for name, node in (("a", "node1"), ("b", "node2")):
        pod = pods[name]
        assert (pod.ip, pod.node, pod.ready) == (stored[name]["status"]["podIP"], node, True)
        eth0 = devices[f"dev/pod/default/{name}/eth0"]
        assert f"{pod.ip}/24" in eth0.addresses
        host_end = devices[eth0.peer]
        assert host_end.owner == f"node/{node}" and host_end.peer == eth0.id
        assert (eth0.id, host_end.id, "veth") in links
        bridge = devices[host_end.master]
        assert bridge.kind == "bridge" and (host_end.id, bridge.id, "bridge-port") in links
    vtep = next(d for d in m.devices if d.owner == "node/node1" and d.kind == "vxlan")
    assert vtep.local == state_ips["node1"] and vtep.vni is not None
    assert state_ips["node2"] in {e.dst for e in vtep.fdb}
    remote = next(d for d in m.devices if d.owner == "node/node2" and d.kind == "vxlan")
    assert any(lk.frm == vtep.id and lk.to == remote.id and lk.kind == "vxlan" and state_ips["node2"] in lk.label
               for lk in m.links)
    web = next(s for s in m.services if s.id == "svc/default/web")
    assert [(e.ip, e.pod, e.ready) for e in web.endpoints] == [(pods["b"].ip, "pod/default/b", True)]
    assert ("svc/default/web", "pod/default/b", "endpoint") in links
    assert next(p for p in m.policies if p.id == "netpol/default/deny-b").selects == ["pod/default/b"]
    node_ns = next(n for n in m.namespaces if n.owner == "node/node1")
    assert any("podnet" in r or "vxlan" in r or remote.name in r for r in node_ns.routes)


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz")
def test_cli_svg_is_xml_naming_every_pod_service_and_node(lab):
    done = subprocess.run([PODNET, "topo", "-o", "svg"], env=env_of(lab), check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    ET.fromstring(done.stdout)
    for name in ("a", "b", "web", "node1", "node2"):
        assert f">{name}<" in done.stdout, name
    m = model_of(lab)
    for p in m.pods:
        assert f">{p.ip}<" in done.stdout


def test_cli_text_and_json(lab):
    text = subprocess.run([PODNET, "topo"], env=env_of(lab), check=False, capture_output=True, text=True, timeout=60)
    assert text.returncode == 0, text.stderr
    for word in ("node node1", "node node2", "pod default/a", "pod default/b", "default/web", "deny-b  Ingress  selects default/b"):
        assert word in text.stdout, word
    doc = json.loads(subprocess.run([PODNET, "topo", "-o", "json"], env=env_of(lab), capture_output=True, text=True,
                                    timeout=60, check=True).stdout)
    assert doc["version"] == 1 and {lk["kind"] for lk in doc["links"]} >= {"veth", "bridge-port", "vxlan", "endpoint", "selects"}


class Lines:
    """Every line a process writes (stdout and stderr), readable while it runs."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.q: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        for stream in (proc.stdout, proc.stderr):
            threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self.q.put(line)

    def wait(self, pattern: str, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        for line in self.seen:
            if m := re.search(pattern, line):
                return m
        while time.monotonic() < deadline:
            try:
                line = self.q.get(timeout=0.1)
            except queue.Empty:
                continue
            self.seen.append(line)
            if m := re.search(pattern, line):
                return m
        raise AssertionError(f"no line matching {pattern!r} within {timeout} s; got {self.seen[-10:]}")

    def drain(self) -> list[str]:
        while True:
            try:
                self.seen.append(self.q.get_nowait())
            except queue.Empty:
                return self.seen


def stop(proc: subprocess.Popen | None) -> int | None:
    """Stop a process this test started (by its PID), politely first."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)
    return proc.returncode


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium")
def test_served_page_shows_every_pod_and_follows_a_new_one_without_reload(lab, tmp_path):
    server = chrome = None
    try:
        server = subprocess.Popen([PODNET, "topo", "--serve", "127.0.0.1:0"], env=env_of(lab), text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        lines = Lines(server)
        url = lines.wait(r"serving the topology on (http://127\.0\.0\.1:\d+/)", 60).group(1)
        # open long enough for the pod below to be added while the page is live (Chromium's
        # virtual clock stands still while the event stream is open)
        chrome = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}",
                                   "--virtual-time-budget=8000", "--dump-dom", url],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        lines.wait(r'"GET /events\?since=', 90)
        lab.apply_pod("c", "node1", labels={"app": "c"})
        dom, _ = chrome.communicate(timeout=240)
        assert stop(server) == 0  # SIGTERM: a clean stop
        log = lines.drain()
    finally:
        stop(chrome)
        stop(server)
    ips = {p["metadata"]["name"]: p["status"]["podIP"] for p in lab.pods()}
    drawing = dom[dom.index('<main id="drawing"'):dom.index("</main>")]
    for name in ("a", "b", "c"):
        assert f'<b class="name">{name}</b> <span class="ip">{ips[name]}</span>' in drawing, name
    for node in lab.state.nodes:
        assert f'<span class="name">{node.name}</span> <span class="ip">{node.ip}</span>' in drawing
    assert '"GET /events' in "".join(log)
    assert sum(1 for line in log if '"GET / HTTP' in line) == 1  # one page load: c came through /events
    embedded = dom[dom.index('id="model">'):]
    assert ips["c"] not in embedded[:embedded.index("</script>")]  # and not with the page
