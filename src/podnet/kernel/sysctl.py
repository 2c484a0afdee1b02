"""Per-namespace sysctls under /proc/sys/net (they follow the netns of the opening thread).

Keys are given slash-separated ("net/ipv4/conf/eth0/arp_notify") because interface names
may contain dots.
"""

from __future__ import annotations


def _path(key: str) -> str:
    return "/proc/sys/" + key.lstrip("/")


def write(key: str, value: str) -> None:
    with open(_path(key), "w") as f:
        f.write(value)


def read(key: str) -> str:
    with open(_path(key)) as f:
        return f.read().strip()


def enable_forwarding(families: set[str] | frozenset[str] = frozenset({"4"})) -> None:
    """IP forwarding for the address families given ("4", "6"), written only when off."""
    if "4" in families and read("net/ipv4/ip_forward") != "1":
        write("net/ipv4/ip_forward", "1")
    if "6" in families and read("net/ipv6/conf/all/forwarding") != "1":
        write("net/ipv6/conf/all/forwarding", "1")
