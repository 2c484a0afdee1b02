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
