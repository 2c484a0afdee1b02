"""The renderers on a hand-built model: every node, pod and Service named; names escaped for
each format; SVG well-formed; the HTML file fetches nothing and cannot be broken out of."""

from __future__ import annotations

import html.parser
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from podnet.topo import page, render
from podnet.topo.model import Topology
from tests.topo.sample import NASTY, sample

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz (dot)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_json_document_round_trips_and_is_versioned():
    doc = sample().to_json()
    assert doc["version"] == 1
    assert set(doc) >= {"version", "nodes", "pods", "services", "policies", "devices", "links"}
    assert {"from", "to", "kind"} <= set(doc["links"][0])
    assert Topology.from_json(json.loads(json.dumps(doc))).to_json() == doc


def test_from_json_refuses_another_version():
    with pytest.raises(ValueError, match="version 2"):
        Topology.from_json({"version": 2})


def test_text_lists_nodes_pods_services_policies():
    out = render.text(sample())
    for word in ("node node1", "172.31.0.11", "default/a", "10.244.1.3", "eth0 <-> veth1", "default/web",
                 "-> 10.244.2.2 (default/b)", "deny-b", "selects default/b", "fdb 82:f8:69:6e:f4:05 -> 172.31.0.12 (node2)",
                 "pods on no known node", "default/lost", "route default via 172.31.0.1 dev eth0"):
        assert word in out, word


def test_dot_quoting():
    assert render.q('a"b\\c') == '"a\\"b\\\\c"'
    assert render.q("two\nlines\x00") == '"two\\nlines"'
    out = render.dot(sample())
    assert render.q(f"pod/default/{NASTY}") in out
    assert 'subgraph "cluster_node/node1"' in out and 'subgraph "cluster_pod/default/a"' in out
    # every quoted string is closed: outside of strings only DOT punctuation and words remain
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', out)
    assert '"' not in bare.replace('""', "")
    assert "<" not in bare and "\\" not in bare


def test_dot_merges_a_tunnel_both_ends_know():
    out = render.dot(sample())
    vxlan = [line for line in out.splitlines() if "vxlan link/" in line]
    assert len(vxlan) == 1 and "dir=both" in vxlan[0]
    assert "VNI 1 -> 172.31.0.12" in vxlan[0] and "VNI 1 -> 172.31.0.11" in vxlan[0]


@needs_dot
def test_svg_is_well_formed_and_names_everything():
    svg = render.svg(sample())
    root = ET.fromstring(svg)
    texts = {"".join(e.itertext()).strip() for e in root.iter() if e.tag.endswith("text")}
    for name in ("a", "b", "web", "node1", "node2", "10.244.1.3", "172.31.0.12", NASTY):
        assert name in texts, name
    for name in ("a", "b", "web", "node1", "node2"):  # as the acceptance check looks for them
        assert f">{name}<" in svg
    ids = {e.get("id") for e in root.iter()}
    assert {"pod/default/a", "node/node1", "svc/default/web", "netpol/default/deny-b", "link/0"} <= ids


def test_svg_without_graphviz_says_what_to_install(monkeypatch):
    monkeypatch.setattr(render.shutil, "which", lambda name: None)
    with pytest.raises(render.RenderError, match=r"needs Graphviz \(apt-get install graphviz\)"):
        render.svg(sample())


class Fetches(html.parser.HTMLParser):
    """Every attribute that could make a browser fetch something."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str, str]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "action", "poster", "data", "srcset", "background") and value:
                self.found.append((tag, name, value))


@pytest.mark.parametrize("graphviz", [True, False])
def test_html_is_one_self_contained_file(graphviz):
    if graphviz and shutil.which("dot") is None:
        pytest.skip("needs Graphviz")
    out = render.html(sample(), graphviz=graphviz)
    parser = Fetches()
    parser.feed(out)
    assert parser.found == []
    assert not {"link", "iframe", "img", "object", "embed", "base"} & set(parser.tags)
    assert "url(" not in out and "@import" not in out and "fetch(" not in out
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", out)
    assert "default-src 'none'" in out
    assert ("<svg" in out) == graphviz


def test_html_names_cannot_break_out_of_the_script():
    out = render.html(sample(), graphviz=False)
    assert out.count("</script>") == out.count("<script") == 2
    inline = re.search(r'<script type="application/json" id="model">(.*?)</script>', out, re.DOTALL).group(1)
    assert "<" not in inline and "&" not in inline
    assert json.loads(inline) == sample().to_json()


def test_page_document_escapes_the_title():
    out = page.document({"cluster": {"name": NASTY}, "version": 1}, live=False)
    assert "<title>podnet topo x&quot;y\\z&lt;b&gt;&amp;&lt;/script&gt;&lt;!--</title>" in out


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium")
def test_html_draws_and_highlights_in_a_browser(tmp_path):
    path = tmp_path / "topo.html"
    path.write_text(render.html(sample()))
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}",
                          "--virtual-time-budget=2000", "--dump-dom",
                          f"file://{path}?highlight=pod/default/a,dev/pod/default/a/eth0,dev/node/node1/veth1"],
                         check=False, capture_output=True, text=True, timeout=120).stdout
    drawing = dom[dom.index('<main id="drawing"'):dom.index("</main>")]
    for word in ("node1", "node2", "172.31.0.11", ">a<", "10.244.1.3", ">b<", "10.244.2.2", ">web<", "deny-b",
                 'x"y\\z&lt;b&gt;&amp;&lt;/script&gt;&lt;!--'):
        assert word in drawing, word
    assert re.search(r'<div class="pod ready hl" data-id="pod/default/a">', drawing)
    assert re.search(r'class="[^"]*\bhl\b[^"]*" data-id="dev/pod/default/a/eth0"', drawing)
    assert re.search(r'<g id="pod/default/a" class="[^"]*\bhl\b', dom)  # the Graphviz picture too
    assert re.search(r'<g id="link/0" class="[^"]*\bhl\b', dom)  # and the veth between them
    assert not re.search(r'<g id="link/1" class="[^"]*\bhl\b', dom)  # not the bridge port: cni0 is not on the path
    ids = re.findall(r'<g id="([^"]*)"', dom)
    assert len(ids) == len(set(ids))
