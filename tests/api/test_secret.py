"""Secrets: data as base64, stringData merged in, the keys each type needs, and a TLS pair checked
with OpenSSL (a PEM certificate and the key that matches it), each error naming the field."""

from __future__ import annotations

import base64
import os
import shutil
import stat
import subprocess
import tempfile

import pytest

from podnet.api import kinds, secret
from podnet.api.errors import ValidationError
from podnet.api.secret import parse_secret, tls_pair
from tests.api.edits import edited


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


GOOD = {"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "creds", "labels": {"app": "web"}, "annotations": {"team": "shop"}},
        "data": {"user": b64("admin"), "pass": b64("old")}, "stringData": {"pass": "s3cret", "note": "hi"}}


def changed(*edits) -> dict:
    """GOOD with (path tuple, value) edits; value KeyError deletes the key."""
    return edited(GOOD, *edits)


def test_stored_shape_merges_string_data_and_drops_it():
    assert parse_secret(GOOD, "s.yaml") == {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "creds", "namespace": "default", "labels": {"app": "web"}, "annotations": {"team": "shop"}},
        "type": "Opaque",
        "data": {"note": b64("hi"), "pass": b64("s3cret"), "user": b64("admin")}}  # stringData won on "pass"


def test_defaults_and_kept_fields():
    obj = parse_secret({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "e", "namespace": "shop"},
                        "type": "", "immutable": True}, "s.yaml")
    assert (obj["type"], obj["data"], obj["immutable"], obj["metadata"]["namespace"]) == ("Opaque", {}, True, "shop")
    assert parse_secret(changed((("type",), "example.com/custom")), "s")["type"] == "example.com/custom"


def test_base64_is_canonical_and_line_breaks_are_ignored():
    folded = b64("x" * 100)
    folded = folded[:40] + "\n" + folded[40:] + "\n"
    obj = parse_secret(changed((("data",), {"long": folded, "empty": ""}), (("stringData",), KeyError)), "s")
    assert obj["data"] == {"empty": "", "long": b64("x" * 100)}


@pytest.mark.parametrize("edits,field,text", [
    (((("data",), {"k": "not base64!"}),), "data.k", "must be base64"),
    (((("data",), {"k": "YWJj="}),), "data.k", "must be base64"),  # bad padding
    (((("data",), {"k": 42}),), "data.k", "base64-encoded string"),
    (((("data",), {"bad key": b64("x")}),), "data.bad key", "a key must be"),
    (((("data",), {"..x": b64("x")}),), "data...x", "a key must be"),
    (((("stringData",), {"k": 8080}),), "stringData.k", 'quote it ("8080")'),
    (((("stringData",), {"a/b": "x"}),), "stringData.a/b", "a key must be"),
    (((("data",), ["x"]),), "data", "mapping"),
    (((("immutable",), "yes"),), "immutable", "true or false"),
    (((("type",), 3),), "type", "must be a string"),
    (((("apiVersion",), "v2"),), "apiVersion", "needs apiVersion: v1"),
    (((("metadata", "name"), "Creds"),), "metadata.name", "lowercase DNS name"),
    (((("metadata", "annotations"), {"team": True}),), "metadata.annotations.team", 'quote it ("true")'),
    (((("metadata", "annotations"), {"bad key": "x"}),), "metadata.annotations.bad key", "annotation key"),
    (((("spec",), {}),), "spec", "not a known field"),
    (((("type",), "kubernetes.io/tls"),), "data.tls.crt", "is required for a Secret of type kubernetes.io/tls"),
    (((("type",), "kubernetes.io/ssh-auth"),), "data.ssh-privatekey", "is required"),
    (((("type",), "kubernetes.io/basic-auth"), (("data",), {}), (("stringData",), {})), "data", "username or password"),
    (((("type",), "kubernetes.io/dockerconfigjson"), (("stringData",), {".dockerconfigjson": "{nope"})),
     "data..dockerconfigjson", "must be JSON"),
    (((("type",), "kubernetes.io/service-account-token"),),
     "metadata.annotations.kubernetes.io/service-account.name", "is required"),
])
def test_bad_secrets_name_the_field(edits, field, text):
    with pytest.raises(ValidationError) as e:
        parse_secret(changed(*edits), "s.yaml")
    assert e.value.field == field and text in e.value.problem and str(e.value).startswith(f"s.yaml: {field}: ")


def test_size_limit():
    with pytest.raises(ValidationError, match="1 MiB") as e:
        parse_secret(changed((("stringData",), {"big": "x" * (1024 * 1024)})), "s")
    assert e.value.field == "data"


def test_basic_auth_with_a_username_passes():
    obj = parse_secret(changed((("type",), "kubernetes.io/basic-auth"), (("data",), {}),
                               (("stringData",), {"username": "u"})), "s")
    assert obj["data"] == {"username": b64("u")}


# -- kubernetes.io/tls ----------------------------------------------------------------------------
def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def pem(tmp_path_factory) -> dict[str, bytes]:
    """Two self-signed certificates with their keys, and the first key encrypted."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    d = tmp_path_factory.mktemp("tls")
    for name, cn in (("a", "a.example"), ("b", "b.example")):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
                 "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.crt"), "-days", "1")
    _openssl("pkey", "-in", str(d / "a.key"), "-aes128", "-passout", "pass:secret", "-out", str(d / "a.enc"))
    return {p.name: p.read_bytes() for p in d.iterdir()}


def tls_doc(crt: bytes, key: bytes) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "foo-tls"}, "type": "kubernetes.io/tls",
            "data": {"tls.crt": b64(crt), "tls.key": b64(key)}}


def test_a_matching_pair_is_stored_and_read_back(pem):
    obj = parse_secret(tls_doc(pem["a.crt"], pem["a.key"]), "tls.yaml")
    assert obj["type"] == "kubernetes.io/tls" and sorted(obj["data"]) == ["tls.crt", "tls.key"]
    assert tls_pair(obj) == (pem["a.crt"], pem["a.key"])
    # the same pair as plain text under stringData
    plain = {**tls_doc(b"", b""), "data": {},
             "stringData": {"tls.crt": pem["a.crt"].decode(), "tls.key": pem["a.key"].decode()}}
    assert tls_pair(parse_secret(plain, "tls.yaml")) == (pem["a.crt"], pem["a.key"])


def test_a_key_of_another_certificate_is_refused(pem):
    with pytest.raises(ValidationError) as e:
        parse_secret(tls_doc(pem["a.crt"], pem["b.key"]), "tls.yaml")
    assert e.value.field == "data.tls.key" and e.value.problem.startswith("does not match the certificate in tls.crt (")
    assert "_ssl.c" not in e.value.problem


@pytest.mark.parametrize("crt,key,field,text", [
    ("garbage", "a.key", "data.tls.crt", "is not a PEM certificate"),
    ("a.key", "a.key", "data.tls.crt", "is not a PEM certificate"),
    ("broken", "a.key", "data.tls.crt", "is not a PEM certificate ("),
    ("a.crt", "a.crt", "data.tls.key", "is not a PEM private key"),
    ("a.crt", "broken-key", "data.tls.key", "is not a PEM private key ("),
    ("a.crt", "a.enc", "data.tls.key", "is encrypted"),
])
def test_garbage_and_encrypted_keys_are_refused(pem, crt, key, field, text):
    files = dict(pem, garbage=b"hello",
                 broken=b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                 **{"broken-key": b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"})
    with pytest.raises(ValidationError) as e:
        parse_secret(tls_doc(files[crt], files[key]), "tls.yaml")
    assert e.value.field == field and e.value.problem.startswith(text)


def test_the_pair_is_checked_in_a_private_directory_that_goes_away(pem, tmp_path, monkeypatch):
    seen = {}

    class Recording(tempfile.TemporaryDirectory):
        def __exit__(self, *exc):
            seen["dir"] = stat.S_IMODE(os.stat(self.name).st_mode)
            seen["files"] = {f: stat.S_IMODE(os.stat(os.path.join(self.name, f)).st_mode)
                             for f in os.listdir(self.name)}
            return super().__exit__(*exc)

    monkeypatch.setattr(secret.tempfile, "TemporaryDirectory", Recording)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    parse_secret(tls_doc(pem["a.crt"], pem["a.key"]), "tls.yaml")
    assert seen == {"dir": 0o700, "files": {"tls.crt": 0o600, "tls.key": 0o600}}
    assert os.listdir(tmp_path) == []


def test_tls_pair_needs_both_keys():
    with pytest.raises(ValidationError) as e:
        tls_pair({"metadata": {"name": "x", "namespace": "default"}, "data": {"tls.crt": b64("c")}})
    assert e.value.field == "data.tls.key" and "default/x" in str(e.value)


# -- the kind -------------------------------------------------------------------------------------
def test_secret_kind_and_columns():
    kind = kinds.lookup("secrets")
    assert kind is kinds.lookup("secret") is kinds.BY_KIND["Secret"]
    assert (kind.api_version, kind.namespaced, kind.writable, kind.key("shop", "creds")) == \
        ("v1", True, True, "/podnet/secrets/shop/creds")
    obj = parse_secret(GOOD, "s")
    assert [c.header for c in kind.columns] == ["NAME", "TYPE", "DATA", "AGE"]
    assert [c.value(obj) for c in kind.columns[:3]] == ["creds", "Opaque", "3"]
