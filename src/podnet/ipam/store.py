"""The host-local on-disk store, in the reference plugin's layout.

    <dataDir>/<network>/<ip>                 "<containerID>\\r\\n<ifname>"
    <dataDir>/<network>/last_reserved_ip.<i> the last address reserved from range set i
    <dataDir>/<network>/lock                 flock(2) held for a whole operation

A reservation is a file created with O_EXCL, so two writers can never own one address even
without the lock; the lock makes "find a free address and take it" one atomic step.
"""

from __future__ import annotations

import fcntl
import os
import time

from ..cni.errors import TRY_AGAIN_LATER, CNIError
from collections.abc import Iterator

LAST_RESERVED_PREFIX = "last_reserved_ip."
LOCK_NAME = "lock"
DEFAULT_DATA_DIR = "/var/lib/cni/networks"
LOCK_TIMEOUT = 30.0  # seconds; past it the runtime is told to try again (code 11)


class Store:
    def __init__(self, data_dir: str, network: str, lock_timeout: float = LOCK_TIMEOUT) -> None:
        self.dir = os.path.join(data_dir, network)
        self.lock_timeout = lock_timeout
        self._lock_fd: int | None = None

    def __enter__(self) -> "Store":
        os.makedirs(self.dir, mode=0o755, exist_ok=True)
        fd = os.open(os.path.join(self.dir, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise CNIError(TRY_AGAIN_LATER, f"timed out after {self.lock_timeout:g}s waiting for the lock on {self.dir}",
                                   "another process holds the IPAM store lock") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.02)
        self._lock_fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    def reserve(self, container_id: str, ifname: str, ip: str, range_set: int) -> bool:
        """Take `ip` for the attachment; False if someone holds it already."""
        path = os.path.join(self.dir, ip)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        try:
            os.write(fd, f"{container_id}\r\n{ifname}".encode())
        finally:
            os.close(fd)
        self._write_last_reserved(range_set, ip)
        return True

    def _write_last_reserved(self, range_set: int, ip: str) -> None:
        path = os.path.join(self.dir, f"{LAST_RESERVED_PREFIX}{range_set}")
        tmp = f"{path}.tmp.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(ip)
        os.replace(tmp, path)

    def last_reserved(self, range_set: int) -> str | None:
        try:
            with open(os.path.join(self.dir, f"{LAST_RESERVED_PREFIX}{range_set}")) as f:
                return f.read().strip() or None
        except FileNotFoundError:
            return None

    def allocations(self) -> Iterator[tuple[str, str, str]]:
        """(ip, container ID, ifname) for every reservation; ifname is '' in the legacy format."""
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return
        for name in names:
            if name == LOCK_NAME or name.startswith(LAST_RESERVED_PREFIX) or ".tmp." in name:
                continue
            try:
                with open(os.path.join(self.dir, name), "rb") as f:
                    content = f.read().decode(errors="replace")
            except (FileNotFoundError, IsADirectoryError):
                continue
            cid, _, ifname = content.strip().partition("\r\n")
            yield name, cid.strip(), ifname.strip()

    def by_attachment(self, container_id: str, ifname: str) -> list[str]:
        return [ip for ip, cid, ifn in self.allocations() if cid == container_id and ifn in (ifname, "")]

    def release(self, ip: str) -> None:
        try:
            os.unlink(os.path.join(self.dir, ip))
        except FileNotFoundError:
            pass

    def release_attachment(self, container_id: str, ifname: str) -> list[str]:
        released = self.by_attachment(container_id, ifname)
        for ip in released:
            self.release(ip)
        return released

