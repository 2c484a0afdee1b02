"""What this kernel can do, found by trying (never by version): a device of a kind is created in
a throwaway network namespace (unshare), so nothing the caller can see changes."""

from __future__ import annotations

import shutil
import subprocess
from functools import lru_cache


@lru_cache(maxsize=None)
def link_kind_problem(kind: str) -> str:
    """'' when `ip link add ... type KIND` works here, else the kernel's (or ip's) complaint."""
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if not unshare or not ip:
        return "cannot test: unshare or ip is missing"
    proc = subprocess.run([unshare, "--net", ip, "link", "add", "pn-probe0", "type", kind], capture_output=True, text=True,
                          timeout=10)
    if proc.returncode == 0:
        return ""
    return (proc.stderr or proc.stdout).strip() or f"exit code {proc.returncode}"
