"""Run a helper program (nft, conntrack) without importing `subprocess`.

`import subprocess` costs ~10 ms here (selectors, signal, threading), more than running nft.
posix_spawn with three pipes does the same job for small inputs and outputs: stdin is written
whole before reading (callers send a few KB at most, far below the pipe buffer), then stdout
and stderr are drained.
"""

from __future__ import annotations

import os


class Completed:
    __slots__ = ("returncode", "stdout", "stderr")

    def __init__(self, returncode: int, stdout: bytes, stderr: bytes) -> None:
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


def _drain(fd: int) -> bytes:
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def run(argv: list[str], stdin: bytes = b"") -> Completed:
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    actions = [(os.POSIX_SPAWN_DUP2, in_r, 0), (os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, err_w, 2)]
    for fd in (in_r, in_w, out_r, out_w, err_r, err_w):
        actions.append((os.POSIX_SPAWN_CLOSE, fd))
    try:
        pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=actions)
    finally:
        for fd in (in_r, out_w, err_w):
            os.close(fd)
    try:
        if stdin:
            os.write(in_w, stdin)
    except BrokenPipeError:
        pass
    finally:
        os.close(in_w)
    try:
        out = _drain(out_r)
        err = _drain(err_r)
    finally:
        os.close(out_r)
        os.close(err_r)
    _, status = os.waitpid(pid, 0)
    return Completed(os.waitstatus_to_exitcode(status), out, err)
