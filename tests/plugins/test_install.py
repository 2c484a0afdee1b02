"""`podnet cni install`: every executable is there, answers VERSION, and starts lean."""

import json
import os
import subprocess

import pytest

from podnet.plugins.registry import PLUGINS
from podnet.cni.invoke import podnet_plugin_name


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_each_plugin_answers_version(ours, name):
    path = os.path.join(ours, name)
    assert os.access(path, os.X_OK) and podnet_plugin_name(path) == name
    r = subprocess.run([path], env={"CNI_COMMAND": "VERSION", "PATH": os.environ["PATH"]}, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["cniVersion"] == "1.1.0"
    assert out["supportedVersions"] == ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]


def test_without_a_command_it_prints_what_it_is(ours):
    r = subprocess.run([os.path.join(ours, "bridge")], env={}, capture_output=True, text=True)
    assert r.returncode == 0 and "CNI bridge plugin" in r.stderr and r.stdout == ""


def test_python_environment_variables_cannot_hijack_a_plugin(ours, tmp_path):
    # Plugins run with -I: PYTHONPATH and friends from the runtime's environment are ignored.
    (tmp_path / "podnet").mkdir()
    (tmp_path / "podnet" / "__init__.py").write_text("raise SystemExit(42)\n")
    env = {"CNI_COMMAND": "VERSION", "PYTHONPATH": str(tmp_path), "PYTHONSTARTUP": str(tmp_path / "x.py")}
    assert subprocess.run([os.path.join(ours, "loopback")], env=env, capture_output=True).returncode == 0


def test_host_local_runs_in_process_only_when_asked(ours):
    """The invoker knows no plugin: without a resolver it always executes the file."""
    from podnet.cni.invoke import call
    from podnet.plugins.registry import in_process

    env = {"CNI_COMMAND": "VERSION", "PATH": os.environ["PATH"]}
    path = os.path.join(ours, "host-local")
    assert in_process("host-local") is not None and in_process("loopback") is not None and in_process("bridge") is None
    executed = call(path, env, b"")
    in_proc = call(path, env, b"", resolve=in_process)
    assert executed[0] == in_proc[0] == 0 and json.loads(executed[1]) == json.loads(in_proc[1])
