"""The forwarder binary: built from forwarder.c with the system's C compiler, next to its
source, when it is missing or older than the source (`make` builds it too). Building takes a
lock, so the agents of a lab starting together build it once.

    python -m podnet.agent.backends.udp.native      # build it now; prints its path
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "forwarder.c")
BINARY = os.path.join(HERE, "podnet-udp-forwarder")
CFLAGS = ["-O2", "-Wall", "-Wextra"]


class BuildError(RuntimeError):
    pass


def up_to_date(binary: str = BINARY) -> bool:
    try:
        return os.stat(binary).st_mtime >= os.stat(SOURCE).st_mtime and os.access(binary, os.X_OK)
    except OSError:
        return False


def binary() -> str:
    """The forwarder's path ($PODNET_UDP_FORWARDER if set), built first if needed."""
    override = os.environ.get("PODNET_UDP_FORWARDER")
    if override:
        if not os.access(override, os.X_OK):
            raise BuildError(f"PODNET_UDP_FORWARDER={override} is not an executable file")
        return override
    if up_to_date():
        return BINARY
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        raise BuildError(f"the udp backend's forwarder is C ({SOURCE}) and there is no C compiler: install one "
                         "(Debian: apt-get install gcc) or run `make` on a machine that has one")
    with open(f"{BINARY}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if up_to_date():
            return BINARY
        tmp = f"{BINARY}.{os.getpid()}.tmp"
        proc = subprocess.run([cc, *CFLAGS, "-o", tmp, SOURCE], capture_output=True, text=True)
        if proc.returncode != 0:
            raise BuildError(f"{cc} could not build {SOURCE}: {proc.stderr.strip()[-800:]}")
        os.replace(tmp, BINARY)
    return BINARY


if __name__ == "__main__":
    try:
        print(binary())
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
