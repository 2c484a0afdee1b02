import json

import pytest

from podnet import fastjson

DOCS = [{"a": [1, 2.5, {"b": None, "c": True, "d": False}], "s": "é\"\n\t", "e": {}, "l": []}, [], "x", 3, -1.5e10]


@pytest.mark.parametrize("doc", DOCS)
def test_same_as_json(doc):
    assert fastjson.loads(json.dumps(doc)) == doc
    assert fastjson.dumps(doc) == json.dumps(doc)
    assert fastjson.dumps(doc, indent=4) == json.dumps(doc, indent=4)


@pytest.mark.parametrize("bad", ["{bad", "[1,]", "{} x", "", "   ", '{"a":1'])
def test_errors_are_value_errors(bad):
    with pytest.raises(ValueError):
        fastjson.loads(bad)


def test_bytes_and_whitespace():
    assert fastjson.loads(b' \n{"a": 1}\n ') == {"a": 1}


def test_plugin_modules_do_not_import_json_or_re():
    import subprocess
    import sys

    code = ("import sys; import podnet.plugins.bridge, podnet.plugins.ptp, podnet.plugins.portmap, "
            "podnet.plugins.loopback, podnet.plugins.host_local; "
            "bad = [m for m in ('json', 're', 'typing', 'dataclasses', 'subprocess', 'pyroute2') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    from podnet.cni.install import package_root

    r = subprocess.run([sys.executable, "-IS", "-c", f"import sys; sys.path.insert(0, {package_root()!r}); {code}"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
