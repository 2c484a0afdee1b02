"""`podnet mesh status` as text, in the manner of `weave status` (pure)."""

from __future__ import annotations


def render(st: dict) -> str:
    peers = st["peers"]
    established = [c for c in st["connections"] if c["state"] == "established"]
    lines = [
        f"        Router: {st['name']} ({st['uid']}) on {st['address']}",
        f"    Encryption: {'enabled (ChaCha20-Poly1305, keys from the password)' if st['encryption'] else 'disabled'}",
        f"        FastDP: {st.get('fastdp', 'off')}",
        f"         Peers: {len(peers)} (with {len(established)} established connections)",
        f"   Connections: {len(st['connections'])}",
    ]
    for c in st["connections"]:
        what = c["state"] + (f", {c['encapsulation']}" if c.get("encapsulation") else "")
        tail = c["peer"] or "?"
        if c["state"] != "established" and c.get("reason"):
            tail += f"  ({c['reason']})"
        lines.append(f"     {c['direction']} {c['address']:<22} {what:<22} {tail}")
    relayed = [p for p in peers if p.get("via")]
    for p in relayed:
        lines.append(f"        Relay: {p['name']} is reached through {p['via']} (no direct connection)")
    if st.get("unreachable"):
        lines.append(f"   Unreachable: {', '.join(st['unreachable'])} (their space stays theirs until `podnet mesh rmpeer`)")
    ipam = st["ipam"]
    lines.append(f"          IPAM: {ipam['status']}, range {ipam['range']}, {len(ipam['allocations'])} allocated here, "
                 f"{ipam['free']} free here" + (f"; refused an update: {ipam['error']}" if ipam.get("error") else ""))
    reachable = {p["name"]: p["reachable"] for p in peers}
    for peer, pct in ipam["shares"].items():
        n = sum(r["size"] for r in ipam["ranges"] if r["peer"] == peer)
        state = "" if reachable.get(peer, False) else "  (unreachable)"
        lines.append(f"                {peer:<14} {n:>8} addresses  {pct:>5.1f}%{state}")
    return "\n".join(lines) + "\n"
