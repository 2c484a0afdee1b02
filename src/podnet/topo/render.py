"""The model as text, DOT, SVG and one self-contained HTML file.

Pure functions of the model, but for `svg`, which runs Graphviz's `dot`. Every name that reaches
an output is escaped for it (DOT string quoting; XML/HTML escaping; JSON inside <script> with
`<`, `>` and `&` as \\u escapes), so an object named `"><script>` is drawn, never run.

In DOT every drawn thing carries its model id as its `id`, which Graphviz keeps as the SVG
element's id: that is what the HTML page highlights (`?highlight=pod/default/a,...`).
"""

from __future__ import annotations

import re
import shutil
import subprocess

from . import page
from .model import Device, Topology


class RenderError(RuntimeError):
    pass


GRAPHVIZ_MISSING = "podnet topo -o svg needs Graphviz (apt-get install graphviz)"

# ---------------------------------------------------------------- text


def text(model: Topology) -> str:
    """What `podnet topo` prints: nodes with their devices and pods, Services -> endpoints,
    policies -> selected pods."""
    name = model.cluster.get("name", "")
    counts = [_count(len(model.nodes), "node"), _count(len(model.pods), "pod"), _count(len(model.services), "service"),
              _count(len(model.policies), "network policy", "network policies")]
    out = [f"{'lab ' + name + ': ' if name else ''}{', '.join(counts)}"]
    devices = {d.id: d for d in model.devices}
    for node in model.nodes:
        out.append("")
        out.append(f"node {node.name}  {node.ip or '-'}  netns {node.netns or '-'}  pods {node.pod_cidr or '-'}"
                   f"{'' if node.ready else '  (not ready)'}")
        for d in model.devices_of(node.id):
            if d.kind in ("bridge", "vxlan") or d.addresses:
                out.append(f"  {d.name:<14} {d.kind:<7} {_device_detail(d, model)}")
        for ns in model.namespaces:
            if ns.owner == node.id:
                out += [f"  route {r}" for r in ns.routes] + ([f"  (netns unreadable: {ns.error})"] if ns.error else [])
        for pod in model.pods_on(node.name):
            eth = next((d for d in model.devices_of(pod.id) if d.peer), None)
            wire = f"  {eth.name} <-> {devices[eth.peer].name}" if eth and eth.peer in devices else ""
            out.append(f"  pod {pod.namespace + '/' + pod.name:<28} {pod.ip or '-':<15} {'Ready' if pod.ready else pod.phase}{wire}")
    unscheduled = [p for p in model.pods if not p.node or p.node not in {n.name for n in model.nodes}]
    if unscheduled:
        out += ["", "pods on no known node"] + [f"  pod {p.namespace}/{p.name}  {p.ip or '-'}  {p.phase}" for p in unscheduled]
    if model.services:
        out += ["", "services"]
        for s in model.services:
            eps = ", ".join(f"{e.ip}{' (' + e.pod[4:] + ')' if e.pod else ''}{'' if e.ready else ' not ready'}"
                            for e in s.endpoints) or "none"
            out.append(f"  {s.namespace}/{s.name}  {s.type} {s.cluster_ip or '-'}  {' '.join(s.ports)}  -> {eps}")
    if model.policies:
        out += ["", "network policies"]
        for p in model.policies:
            selected = ", ".join(x[4:] for x in p.selects) or "no pods"
            out.append(f"  {p.namespace}/{p.name}  {'+'.join(p.policy_types) or '-'}  selects {selected}")
    return "\n".join(out) + "\n"


def _count(n: int, word: str, plural: str = "") -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


def _device_detail(d: Device, model: Topology) -> str:
    parts = [" ".join(d.addresses)] if d.addresses else []
    if d.kind == "vxlan":
        parts.append(f"VNI {d.vni} port {d.port} local {d.local or '-'}")
        names = {n.id: n.name for n in model.nodes}
        parts += [f"fdb {e.mac} -> {e.dst}{' (' + names[e.node] + ')' if e.node in names else ''}" for e in d.fdb]
    if d.kind == "bridge":
        ports = sorted(x.name for x in model.devices if x.master == d.id)
        parts.append(f"ports: {', '.join(ports) or 'none'}")
    return "  ".join(parts)


# ---------------------------------------------------------------- DOT

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def q(value: object) -> str:
    """A DOT double-quoted string: backslash and quote escaped, control characters dropped
    (a newline in a value becomes DOT's centred line break)."""
    s = _CONTROL.sub("", str(value)).replace("\\", "\\\\").replace('"', '\\"')
    return '"' + s.replace("\r", "").replace("\n", "\\n") + '"'


def _label(*lines: str) -> str:
    """Several lines as one DOT label (each line escaped on its own, joined by DOT's \\n)."""
    return '"' + "\\n".join(q(line)[1:-1] for line in lines if line) + '"'


def _attrs(**attrs: str) -> str:
    return ", ".join(f"{k.rstrip('_')}={v}" for k, v in attrs.items())


_EDGE_STYLE = {
    "veth": 'color="#444444", penwidth=2, dir=none',
    "bridge-port": 'color="#888888", dir=none',
    "vxlan": 'color="#1f6feb", style=bold, fontcolor="#1f6feb"',
    "endpoint": 'color="#2da44e", fontcolor="#2da44e"',
    "selects": 'color="#cf222e", style=dashed, arrowhead=empty',
}
_DEVICE_SHAPE = {"bridge": "box3d", "vxlan": "cds", "veth": "box"}


def _device_node(d: Device) -> str:
    lines = [d.name, d.kind + (f" VNI {d.vni}" if d.kind == "vxlan" else "")] + d.addresses
    return f'    {q(d.id)} [{_attrs(id=q(d.id), class_=q("device " + d.kind), label=_label(*lines), shape=_DEVICE_SHAPE.get(d.kind, "box"), fontsize="9", tooltip=q(d.netns))}];'


def dot(model: Topology) -> str:
    """One cluster per node holding its devices and one cluster per pod (the pod itself, labelled
    with its name and IP, and its devices); Services and policies outside. Edges: veth pairs,
    bridge ports, VXLAN tunnels (VNI and remote underlay IP), Service -> endpoint pods, policy ->
    selected pods (dashed). Link i of the model is the edge with id `link/i`."""
    out = ["digraph podnet {",
           f'  graph [{_attrs(id=q("topology"), rankdir="LR", fontname=q("Helvetica"), fontsize="11", compound="true", nodesep="0.25", label=_label("podnet " + model.cluster.get("name", "")), labelloc="t")}];',
           '  node [fontname="Helvetica", fontsize="10", style=filled, fillcolor="#ffffff"];',
           '  edge [fontname="Helvetica", fontsize="9"];']
    placed_nodes = {n.name for n in model.nodes}
    for node in model.nodes:
        out.append(f'  subgraph {q("cluster_" + node.id)} {{')
        out.append(f'    graph [{_attrs(id=q(node.id), class_=q("k8s-node"), label=_label(node.name, node.ip), style=q("rounded,filled"), fillcolor=q("#f6f8fa"), color=q("#57606a"), tooltip=q(node.netns))}];')
        out += [_device_node(d) for d in model.devices_of(node.id)]
        for pod in model.pods_on(node.name):
            out += _pod_cluster(model, pod)
        out.append("  }")
    for pod in model.pods:
        if pod.node not in placed_nodes:
            out += _pod_cluster(model, pod)
    for s in model.services:
        out.append(f'  {q(s.id)} [{_attrs(id=q(s.id), class_=q("service"), label=_label(s.name, f"{s.type} {s.cluster_ip}", " ".join(s.ports)), shape="hexagon", fillcolor=q("#dafbe1"), tooltip=q(s.namespace + "/" + s.name))}];')
    for p in model.policies:
        out.append(f'  {q(p.id)} [{_attrs(id=q(p.id), class_=q("policy"), label=_label(p.name, "NetworkPolicy " + "+".join(p.policy_types)), shape="note", fillcolor=q("#ffebe9"), tooltip=q(p.namespace + "/" + p.name))}];')
    out += _edges(model)
    out.append("}")
    return "\n".join(out) + "\n"


def _edges(model: Topology) -> list[str]:
    """One edge per link, but a tunnel both VTEPs know (each has the other in its FDB) is one
    edge with arrows both ways. Each edge has the class `link/<i>` of every link it stands for."""
    known = model.ids()
    index = {(lk.frm, lk.to, lk.kind): i for i, lk in enumerate(model.links)}
    out, drawn = [], set()
    for i, link in enumerate(model.links):
        if link.frm not in known or link.to not in known or i in drawn:
            continue
        ids, labels, both = [i], [link.label], ""
        back = index.get((link.to, link.frm, link.kind)) if link.kind == "vxlan" else None
        if back is not None and back not in drawn:
            ids.append(back)
            labels.append(model.links[back].label)
            both = ", dir=both"
        drawn.update(ids)
        classes = " ".join(["link", link.kind] + [f"link/{j}" for j in ids])
        text = f", label={_label(*labels)}" if any(labels) else ""
        out.append(f'  {q(link.frm)} -> {q(link.to)} [id={q(f"link/{i}")}, class={q(classes)}, '
                   f'{_EDGE_STYLE.get(link.kind, "")}{both}{text}];')
    return out


def _pod_cluster(model: Topology, pod) -> list[str]:
    colour = "#ddf4ff" if pod.ready else "#fff8c5"
    out = [f'    subgraph {q("cluster_" + pod.id)} {{',
           f'      graph [{_attrs(id=q("cluster/" + pod.id), label=q(pod.namespace), style=q("rounded,filled"), fillcolor=q(colour), color=q("#0969da"), fontsize="9")}];',
           f'      {q(pod.id)} [{_attrs(id=q(pod.id), class_=q("pod"), label=_label(pod.name, pod.ip or pod.phase), shape="ellipse", fillcolor=q(colour), tooltip=q(pod.namespace + "/" + pod.name))}];']
    out += ["  " + _device_node(d) for d in model.devices_of(pod.id)]
    out.append("    }")
    return out


# ---------------------------------------------------------------- SVG, HTML


def svg(model: Topology) -> str:
    """The DOT picture laid out by Graphviz."""
    if shutil.which("dot") is None:
        raise RenderError(GRAPHVIZ_MISSING)
    try:
        done = subprocess.run(["dot", "-Tsvg"], input=dot(model), capture_output=True, text=True, timeout=120, check=False)
    except FileNotFoundError:
        raise RenderError(GRAPHVIZ_MISSING) from None
    except subprocess.TimeoutExpired:
        raise RenderError("Graphviz (dot -Tsvg) did not finish within 120 s") from None
    if done.returncode != 0:
        raise RenderError(f"Graphviz failed: {done.stderr.strip()[-500:]}")
    return done.stdout


def inline_svg(document: str) -> str:
    """An SVG document as an element to embed in HTML (no XML declaration, DOCTYPE or comments)."""
    start = document.find("<svg")
    return re.sub(r"<!--.*?-->", "", document[start:], flags=re.DOTALL) if start >= 0 else ""


def html(model: Topology, graphviz: bool = True) -> str:
    """One HTML file with nothing to fetch: the model, the page's drawing of it, and, when
    Graphviz is installed, its SVG picture, all inline."""
    picture = ""
    if graphviz and shutil.which("dot"):
        picture = inline_svg(svg(model))
    return page.document(model.to_json(), live=False, svg=picture)

