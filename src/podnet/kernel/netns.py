"""Network namespaces: enter one for a while, or open it for IFLA_NET_NS_FD."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

CLONE_NEWNET = 0x40000000
_setns = None


def _libc_setns(fd: int, nstype: int) -> None:
    global _setns
    if hasattr(os, "setns"):  # Python 3.12+
        os.setns(fd, nstype)
        return
    if _setns is None:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        _setns = libc.setns
    if _setns(fd, nstype) != 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class NetnsNotFound(OSError):
    pass


class NotANetns(OSError):
    """The path exists but is no network namespace (a regular file, a directory, another
    namespace type): setns() refuses it with a bare EINVAL, which tells nobody anything."""


def open_netns(path: str) -> int:
    """An O_RDONLY fd on a netns path (/var/run/netns/X or /proc/PID/ns/net)."""
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NetnsNotFound(2, f"failed to open netns {path!r}: no such file") from None


@contextlib.contextmanager
def entered(path: str) -> Iterator[None]:
    """Run the body with this thread in the namespace at `path`, then come back."""
    target = open_netns(path)
    try:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except BaseException:
        os.close(target)
        raise
    try:
        try:
            _libc_setns(target, CLONE_NEWNET)
        except OSError as e:
            if e.errno == 22:  # EINVAL
                raise NotANetns(f'failed to open netns "{path}": not a network namespace') from None
            raise
        try:
            yield
        finally:
            _libc_setns(home, CLONE_NEWNET)
    finally:
        os.close(target)
        os.close(home)

