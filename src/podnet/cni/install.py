"""Writing plugin executables into a CNI bin directory (which plugins: `podnet.plugins.registry`).

Each executable is a few lines of Python run with `-IS` (isolated, no site import): it puts
podnet's package directory on sys.path and calls one plugin's main(). Plugins import only the
standard library, so nothing else is needed and start-up stays near the interpreter's own cost.
"""

from __future__ import annotations

import os
import sys

from .invoke import MARKER

def package_root() -> str:
    import podnet

    return os.path.dirname(os.path.dirname(os.path.abspath(podnet.__file__)))


def launcher(name: str, module: str, python: str, root: str) -> str:
    return (
        f"#!{python} -IS\n"
        f"{MARKER.decode()}{name}\n"
        "import sys\n"
        f"sys.path.insert(0, {root!r})\n"
        f"from {module} import main\n"
        "main()\n"
    )


def install(directory: str, plugins: dict[str, str], python: str = "", names: list[str] | None = None) -> list[str]:
    """Write an executable per plugin (name -> module with a main()); return their paths.
    Existing files of the same name are replaced."""
    python = python or sys.executable
    root = package_root()
    os.makedirs(directory, exist_ok=True)
    written = []
    for name in names or list(plugins):
        path = os.path.join(directory, name)
        tmp = f"{path}.tmp.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(launcher(name, plugins[name], python, root))
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)
        written.append(path)
    return written
