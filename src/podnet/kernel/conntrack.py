"""Forgetting conntrack entries (conntrack(8)), run in the caller's network namespace."""

from __future__ import annotations

from . import spawn


def forget_udp_nat(orig_dst: str, port: int, endpoint: str) -> bool:
    """Delete UDP flows DNATed to `endpoint` that were sent to `orig_dst`:`port` (any local
    address when `orig_dst` is ""). False when conntrack(8) is not installed. (Exit 1 with "0
    flow entries have been deleted" is fine: nothing was there.)"""
    argv = ["conntrack", "-D", "-p", "udp", "--dst-nat", endpoint, "--orig-port-dst", str(port)]
    if orig_dst:
        argv += ["--orig-dst", orig_dst]
    try:
        spawn.run(argv)
    except FileNotFoundError:
        return False
    return True
