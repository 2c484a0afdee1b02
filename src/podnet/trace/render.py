"""A trace as text: one line per hop, a story a person can follow, then the verdict. The
decisive part of each hop (its `highlight`) is bold when asked (a terminal); with `evidence`,
each hop is followed by what it was read from."""

from __future__ import annotations

from .model import Trace

BOLD, RESET = "\033[1m", "\033[0m"
PROBE_MARKS = {"confirmed": "✓", "contradicted": "✗", "unobserved": "?"}   # --probe, per hop


def _bold(text: str, part: str, on: bool) -> str:
    if not on or not part or part not in text:
        return text
    return text.replace(part, f"{BOLD}{part}{RESET}", 1)


def _end(e) -> str:
    extra = f" ({e.kind})" if e.kind not in ("pod",) else ""
    name = e.name if e.kind != "ip" else e.ip
    addr = f" {e.ip}" if e.kind != "ip" else ""
    return f"{name}{extra}{addr}".strip()


def text(trace: Trace, bold: bool = False, evidence: bool = False) -> str:
    port = f":{trace.dst.port}" if trace.dst.port and trace.protocol != "icmp" else ""
    sport = f" (source port {trace.hops[0].packet.sport})" if trace.hops and trace.hops[0].packet.sport else ""
    lines = [f"trace {trace.protocol} from {_end(trace.src)} to {_end(trace.dst)}{port}{sport}"]
    width = max([len(h.place) for h in trace.hops] + [8])
    for h in trace.hops:
        mark = f"{PROBE_MARKS.get(h.probe.get('status'), ' ')} " if h.probe else ""
        lines.append(f"{h.index:>3}  {mark}{h.place:<{width}}  {h.stage:<11}  {_bold(h.decision, h.highlight, bold)}")
        if evidence:
            for e in h.evidence:
                lines.append(f"{'':>5}{'':<{width}}  {'':<11}    {e.summary}" + (f"   [{e.source}]" if e.source else ""))
            for line in (h.probe or {}).get("events", []):
                lines.append(f"{'':>5}{'':<{width}}  {'':<11}    probe: {line}")
    for note in trace.notes:
        lines.append(f"note: {note}")
    verdict = f"{BOLD}{trace.verdict}{RESET}" if bold else trace.verdict
    at = f" (hop {trace.at})" if trace.at and trace.verdict not in ("DELIVERED",) else ""
    lines.append(f"{verdict}{at}: {trace.reason}")
    return "\n".join(lines)
