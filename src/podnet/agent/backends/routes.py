"""The shared route manager: makes the kernel match a rendered Desired state, touching only what
podnet owns (routes with protocol RTPROT_PODNET, neighbours and FDB entries on its own VTEP).
Every backend that programs routes uses it, as flannel's backends share their RouteNetwork."""

from __future__ import annotations

import errno

from ...kernel import rtnl
from ..render import Desired


def apply(nl: rtnl.Netlink, desired: Desired, under: rtnl.Link, vtep: rtnl.Link | None = None) -> dict:
    """Make the kernel match `desired`; counts of what changed (all zero when in sync). Routes
    marked onlink go out of `vtep`, the others out of the underlay."""
    changed = {"neighbours": 0, "fdb": 0, "routes_added": 0, "routes_removed": 0}
    if vtep is not None:
        have_neigh = {(ip, mac) for ip, mac, state in nl.neighbours(vtep.index, rtnl.AF_INET) if state & rtnl.NUD_PERMANENT}
        for ip, mac in desired.neighbours - have_neigh:
            nl.set_neighbour(vtep.index, ip, mac)
            changed["neighbours"] += 1
        for ip, mac in have_neigh - desired.neighbours:
            ignore_missing(nl.delete_neighbour, vtep.index, ip)
            changed["neighbours"] += 1
        have_fdb = {(mac, dst) for dst, mac, _ in nl.neighbours(vtep.index, rtnl.AF_BRIDGE) if dst}
        for mac, dst in desired.fdb - have_fdb:
            nl.set_fdb(vtep.index, mac, dst)
            changed["fdb"] += 1
        for mac, dst in have_fdb - desired.fdb:
            ignore_missing(nl.delete_fdb, vtep.index, mac, dst)
            changed["fdb"] += 1
    have_routes = {}
    for r in nl.routes(rtnl.AF_INET):
        if r.protocol == rtnl.RTPROT_PODNET:
            have_routes[(r.dst, r.gateway, bool(vtep is not None and r.oif == vtep.index))] = r
    for dst, gw, onlink in sorted(desired.routes):
        if (dst, gw, onlink) in have_routes:
            continue
        oif = vtep.index if onlink and vtep is not None else under.index
        nl.add_route(dst, gw, oif, onlink=onlink, protocol=rtnl.RTPROT_PODNET, replace=True)
        changed["routes_added"] += 1
    for (dst, gw, onlink), r in have_routes.items():
        if (dst, gw, onlink) not in desired.routes:
            ignore_missing(nl.delete_route, dst, gw, r.oif)
            changed["routes_removed"] += 1
    return changed


def ignore_missing(fn, *args) -> None:
    try:
        fn(*args)
    except OSError as e:
        if e.errno not in (errno.ENOENT, errno.ESRCH, errno.ENODEV):
            raise
