"""Nothing imports upward (../shared/DESIGN.md, "Layers"): each package of podnet may import
only the packages below it. A new arrow the wrong way fails here, naming the module and line."""

from __future__ import annotations

import ast
import os

import podnet

ROOT = os.path.dirname(os.path.abspath(podnet.__file__))
BASE = {"fastjson", "proc", "serving"}
ALLOWED = {
    "fastjson": set(),
    "proc": set(),
    "serving": set(),
    "kernel": {"fastjson"},
    "store": set(),
    "api": set(),
    "cni": {"fastjson"},
    "ipam": {"cni", "api", "store"},
    "plugins": {"cni", "ipam", "kernel"},
    "runtime": set(),
    "policy": {"api"},
    "proxy": {"api"},
    "dns": {"api", "store"},
    "apiserver": {"api", "store"},
    "kubelet": {"api", "store", "cni", "plugins", "kernel", "runtime"},
    "controllers": {"api", "store", "proxy", "apiserver"},
    "ingress": {"api", "store"},
    "trace": {"api", "policy", "proxy"},
    "mesh": {"ipam", "kernel"},
    "agent": {"api", "store", "cni", "plugins", "kernel", "policy", "proxy", "runtime", "ipam", "mesh"},
    "lab": {"api", "store", "cni", "plugins", "kernel", "policy", "proxy", "runtime", "apiserver", "agent", "dns", "ipam",
            "kubelet", "controllers", "ingress"},
    "topo": {"api", "store", "policy"},
}


def package_of(module_path: str) -> str:
    rel = os.path.relpath(module_path, ROOT)
    first = rel.split(os.sep)[0]
    return first[:-3] if first.endswith(".py") else first


def imported_packages(path: str) -> list[tuple[int, str]]:
    rel_parts = os.path.relpath(path, ROOT).split(os.sep)
    here = rel_parts[:-1]  # the package this module is in, relative to podnet
    tree = ast.parse(open(path).read(), path)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)] if node.level > 1 else here
                parts = base + (node.module.split(".") if node.module else [])
                if not parts:  # `from .. import x` at the top: x is a package or module of podnet
                    out += [(node.lineno, a.name) for a in node.names if a.name != "__version__"]
                    continue
                out.append((node.lineno, parts[0]))
            elif node.module and node.module.startswith("podnet."):
                out.append((node.lineno, node.module.split(".")[1]))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")[1]) for a in node.names if a.name.startswith("podnet.")]
    return out


def test_nothing_imports_upward():
    wrong = []
    for directory, _, files in os.walk(ROOT):
        for f in files:
            if not f.endswith(".py"):
                continue
            path = os.path.join(directory, f)
            pkg = package_of(path)
            if pkg not in ALLOWED:
                continue  # cli, demo, __init__: the top may use everything
            allowed = ALLOWED[pkg] | BASE | {pkg}
            wrong += [f"{os.path.relpath(path, ROOT)}:{line} imports podnet.{target}"
                      for line, target in imported_packages(path) if target not in allowed]
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)
