"""The topology page: one HTML document with its CSS and JS inline, nothing fetched from anywhere
(a Content-Security-Policy says so to the browser too).

The page draws the model itself (boxes per node, pods inside with name and IP, Services and
policies beside, lines for tunnels, endpoints and selections), so serving it needs no Graphviz.
Served live (`podnet topo --serve`) it listens on /events (Server-Sent Events) and redraws in
place when a new model arrives. `?highlight=id,id,...` marks those ids (and the links between
them) with the CSS class `hl`: how a `trace` path is shown.
"""

from __future__ import annotations

import html as _html
import json

CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'")
_CSP_ATTRIBUTE = CSP.replace('"', "&quot;")  # single quotes are fine inside a double-quoted attribute

CSS = """
body { font: 13px/1.35 system-ui, sans-serif; margin: 0; color: #1f2328; background: #fff; }
header { display: flex; gap: 1em; align-items: baseline; padding: .6em 1em; border-bottom: 1px solid #d0d7de; }
header h1 { font-size: 1.1em; margin: 0; }
#status { color: #57606a; font-size: .9em; }
#drawing { position: relative; padding: 1em; }
#links { position: absolute; left: 0; top: 0; pointer-events: none; overflow: visible; }
#links line { stroke-width: 1.5; opacity: .7; }
#links line.vxlan { stroke: #1f6feb; stroke-width: 2.5; }
#links line.endpoint { stroke: #2da44e; }
#links line.selects { stroke: #cf222e; stroke-dasharray: 5 4; }
#links line.hl { stroke: #bf3989; stroke-width: 4; }
.row { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; margin-bottom: 1.5em; }
.node { border: 2px solid #57606a; border-radius: 8px; background: #f6f8fa; padding: .5em .7em; min-width: 16em; }
.node > h2 { font-size: 1em; margin: 0 0 .2em; }
.meta { color: #57606a; font-size: .85em; }
.devices { list-style: none; padding: 0; margin: .4em 0; font-size: .85em; }
.devices li { margin: .1em 0; }
.dev { font-family: ui-monospace, monospace; }
.fdb { color: #1f6feb; }
.pods { display: flex; flex-wrap: wrap; gap: .5em; }
.pod { border: 1.5px solid #0969da; border-radius: 6px; background: #ddf4ff; padding: .3em .5em; min-width: 9em; }
.pod.notready { background: #fff8c5; border-color: #9a6700; }
.pod .ns, .pod .wire { color: #57606a; font-size: .8em; }
.ip { font-family: ui-monospace, monospace; }
.service { border: 1.5px solid #2da44e; border-radius: 6px; background: #dafbe1; padding: .3em .5em; }
.policy { border: 1.5px dashed #cf222e; border-radius: 6px; background: #ffebe9; padding: .3em .5em; }
.service ul, .policy ul { margin: .2em 0 0; padding-left: 1.2em; font-size: .85em; }
h3 { font-size: .95em; margin: 0 0 .4em; color: #57606a; }
#drawing .hl { outline: 3px solid #bf3989; outline-offset: 2px; }
svg .hl polygon, svg .hl ellipse, svg .hl path { stroke: #bf3989; stroke-width: 3; }
#graph { padding: 1em; border-top: 1px solid #d0d7de; overflow: auto; }
"""

JS = r"""
(function () {
  'use strict';
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  };
  const withId = (e, id) => { e.dataset.id = id; return e; };
  const highlight = new Set((new URLSearchParams(location.search).get('highlight') || '')
    .split(',').map(s => s.trim()).filter(Boolean));
  let model = JSON.parse(document.getElementById('model').textContent);

  function deviceLine(d, nodes) {
    const li = withId(el('li'), d.id);
    li.appendChild(el('span', 'dev', d.name));
    let text = ' ' + d.kind;
    if (d.kind === 'vxlan') text += ' VNI ' + d.vni + ' port ' + d.port + ' local ' + (d.local || '-');
    if (d.addresses.length) text += ' ' + d.addresses.join(' ');
    li.appendChild(document.createTextNode(text));
    for (const f of d.fdb || []) {
      const n = nodes.get(f.node);
      li.appendChild(el('div', 'fdb', '\u2192 ' + f.dst + (n ? ' (' + n.name + ')' : '') + ' ' + f.mac));
    }
    return li;
  }

  function podBox(p, devices) {
    const box = withId(el('div', 'pod' + (p.ready ? ' ready' : ' notready')), p.id);
    box.appendChild(el('b', 'name', p.name));
    box.appendChild(document.createTextNode(' '));
    box.appendChild(el('span', 'ip', p.ip || p.phase));
    box.appendChild(el('div', 'ns', p.namespace + (p.ready ? '' : ' \u00b7 ' + p.phase)));
    for (const d of devices.filter(d => d.owner === p.id && d.peer)) {
      const peer = devices.find(x => x.id === d.peer);
      box.appendChild(withId(el('div', 'wire', d.name + ' \u21c4 ' + (peer ? peer.name : '?')), d.id));
    }
    return box;
  }

  function render(m) {
    const nodes = new Map(m.nodes.map(n => [n.id, n]));
    const drawing = document.getElementById('drawing');
    const nodeRow = el('div', 'row');
    for (const n of m.nodes) {
      const box = withId(el('section', 'node'), n.id);
      const h = el('h2');
      h.appendChild(el('span', 'name', n.name));
      h.appendChild(document.createTextNode(' '));
      h.appendChild(el('span', 'ip', n.ip));
      box.appendChild(h);
      box.appendChild(el('div', 'meta', 'netns ' + (n.netns || '-') + ' \u00b7 pods ' + (n.pod_cidr || '-') +
                                       (n.ready ? '' : ' \u00b7 not ready')));
      const list = el('ul', 'devices');
      for (const d of m.devices.filter(d => d.owner === n.id && (d.kind !== 'veth' || d.addresses.length)))
        list.appendChild(deviceLine(d, nodes));
      box.appendChild(list);
      const pods = el('div', 'pods');
      for (const p of m.pods.filter(p => p.node === n.name)) pods.appendChild(podBox(p, m.devices));
      box.appendChild(pods);
      nodeRow.appendChild(box);
    }
    const stray = m.pods.filter(p => !m.nodes.some(n => n.name === p.node));
    if (stray.length) {
      const box = el('section', 'node');
      box.appendChild(el('h2', null, 'no node'));
      const pods = el('div', 'pods');
      for (const p of stray) pods.appendChild(podBox(p, m.devices));
      box.appendChild(pods);
      nodeRow.appendChild(box);
    }
    const objRow = el('div', 'row');
    if (m.services.length) {
      const col = el('div');
      col.appendChild(el('h3', null, 'Services'));
      for (const s of m.services) {
        const box = withId(el('div', 'service'), s.id);
        box.appendChild(el('b', 'name', s.name));
        box.appendChild(document.createTextNode(' ' + s.namespace + ' \u00b7 ' + s.type + ' '));
        box.appendChild(el('span', 'ip', s.cluster_ip));
        box.appendChild(document.createTextNode(' ' + s.ports.join(' ')));
        const ul = el('ul');
        for (const e of s.endpoints) ul.appendChild(el('li', null, e.ip + (e.pod ? ' ' + e.pod.slice(4) : '') +
                                                       (e.ready ? '' : ' (not ready)')));
        if (!s.endpoints.length) ul.appendChild(el('li', null, 'no endpoints'));
        box.appendChild(ul);
        col.appendChild(box);
      }
      objRow.appendChild(col);
    }
    if (m.policies.length) {
      const col = el('div');
      col.appendChild(el('h3', null, 'NetworkPolicies'));
      for (const p of m.policies) {
        const box = withId(el('div', 'policy'), p.id);
        box.appendChild(el('b', 'name', p.name));
        box.appendChild(document.createTextNode(' ' + p.namespace + ' \u00b7 ' + p.policy_types.join('+')));
        const ul = el('ul');
        for (const id of p.selects) ul.appendChild(el('li', null, 'selects ' + id.slice(4)));
        if (!p.selects.length) ul.appendChild(el('li', null, 'selects no pods'));
        box.appendChild(ul);
        col.appendChild(box);
      }
      objRow.appendChild(col);
    }
    const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
    svg.id = 'links';
    drawing.replaceChildren(svg, nodeRow, objRow);
    document.getElementById('cluster').textContent = m.cluster.name ? m.cluster.name + ' (' + (m.cluster.backend || '') + ')' : '';
    drawLinks(m);
    mark(m);
  }

  function find(id) {
    return document.querySelector('#drawing [data-id="' + CSS.escape(id) + '"]');
  }

  function drawLinks(m) {
    const svg = document.getElementById('links');
    const drawing = document.getElementById('drawing');
    svg.setAttribute('width', drawing.scrollWidth);
    svg.setAttribute('height', drawing.scrollHeight);
    const origin = drawing.getBoundingClientRect();
    const centre = e => { const r = e.getBoundingClientRect(); return [r.left - origin.left + r.width / 2, r.top - origin.top + r.height / 2]; };
    m.links.forEach((l, i) => {
      if (!['vxlan', 'endpoint', 'selects'].includes(l.kind)) return;
      const a = find(l.from), b = find(l.to);
      if (!a || !b) return;
      const [x1, y1] = centre(a), [x2, y2] = centre(b);
      const line = document.createElementNS('http://www.w3.org/2000/svg', 'line');
      line.setAttribute('x1', x1); line.setAttribute('y1', y1); line.setAttribute('x2', x2); line.setAttribute('y2', y2);
      line.setAttribute('class', l.kind);
      line.dataset.id = 'link/' + i;
      const title = document.createElementNS('http://www.w3.org/2000/svg', 'title');
      title.textContent = l.kind + (l.label ? ': ' + l.label : '');
      line.appendChild(title);
      svg.appendChild(line);
    });
  }

  function mark(m) {
    if (!highlight.size) return;
    const ids = new Set(highlight);
    m.links.forEach((l, i) => { if (highlight.has(l.from) && highlight.has(l.to)) ids.add('link/' + i); });
    for (const id of ids) {
      document.querySelectorAll('[data-id="' + CSS.escape(id) + '"]').forEach(e => e.classList.add('hl'));
      const g = document.getElementById(id);  // the Graphviz picture, when there is one
      if (g) g.classList.add('hl');
      for (const e of document.getElementsByClassName(id)) e.classList.add('hl');  // its edges: class link/<i>
    }
  }

  render(model);
  let resizeTimer = null;
  window.addEventListener('resize', () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(() => render(model), 200); });
  const status = document.getElementById('status');
  if (document.body.dataset.live === 'true' && window.EventSource) {
    // `since`: the version this page came with (no need to send that model again)
    const events = new EventSource('events?since=' + encodeURIComponent(document.body.dataset.version || ''));
    status.textContent = 'live';
    events.addEventListener('model', e => {
      model = JSON.parse(e.data);
      render(model);
      status.textContent = 'live \u00b7 updated ' + new Date().toLocaleTimeString();
    });
    // the server ends each stream after a few seconds and the browser reconnects: only a closed one is news
    events.onerror = () => { if (events.readyState === EventSource.CLOSED) status.textContent = 'disconnected'; };
  } else {
    status.textContent = 'snapshot';
  }
})();
"""


def script_json(doc: object) -> str:
    """JSON safe inside an HTML <script> element: no `</script>`, `<!--` or `&` can appear."""
    return json.dumps(doc, sort_keys=True).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def document(model: dict, live: bool, svg: str = "", version: str = "") -> str:
    """The whole page. `svg` (an inline <svg> element, already well-formed XML) is added below
    the drawing when given; `version` is the live model's version, the page's starting point."""
    name = str((model.get("cluster") or {}).get("name", ""))
    graph = f'<section id="graph"><h3>Graphviz</h3>\n{svg}\n</section>\n' if svg else ""
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP_ATTRIBUTE}">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>podnet topo{' ' + _html.escape(name) if name else ''}</title>\n<style>{CSS}</style>\n</head>\n"
            f'<body data-live="{"true" if live else "false"}" data-version="{_html.escape(version)}">\n'
            '<header><h1>podnet topology <span id="cluster"></span></h1><span id="status"></span></header>\n'
            '<main id="drawing"><noscript>This page draws the topology with JavaScript; '
            "<code>podnet topo</code> prints it as text.</noscript></main>\n"
            f"{graph}"
            f'<script type="application/json" id="model">{script_json(model)}</script>\n'
            f"<script>{JS}</script>\n</body>\n</html>\n")
