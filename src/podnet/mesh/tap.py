"""The sleeve's TAP device: made here (not persistent: it goes with the router), attached to
the node's bridge, up, with the pods' MTU."""

from __future__ import annotations

import fcntl
import os
import struct

from ..kernel import rtnl

TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI = 0x0002, 0x1000


def open_tap(name: str, bridge: str, mtu: int) -> int:
    """A non-blocking fd of TAP device `name` on `bridge`."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
        with rtnl.Netlink() as nl:
            br = nl.link(bridge)
            if br is None:
                raise OSError(f"no bridge {bridge!r} in this namespace (the mesh backend makes it)")
            link = nl.link(name)
            nl.set_link(link.index, master=br.index, mtu=mtu)
            nl.set_link(link.index, up=True)
    except BaseException:
        os.close(fd)
        raise
    return fd
