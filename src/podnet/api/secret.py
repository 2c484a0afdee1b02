"""The Secret resource (v1): parsing and validation with the field named on error, stored as the
API server stores it.

`data` holds base64 text, as in every Kubernetes manifest and in `get -o yaml`; `stringData`
is a write-only convenience: its plain strings are encoded into `data` at parse time (a key in
both takes stringData's value) and the field itself is not stored, as the API server does.

A `kubernetes.io/tls` Secret is checked further than Kubernetes checks it: tls.crt must be a PEM
certificate and tls.key the private key that matches it. The Ingress controller hands the pair
to nginx, and a bad pair would otherwise surface later as an nginx reload that fails for every
Ingress; here it is refused at apply time, naming the key that is wrong. The check uses the
standard library's OpenSSL only (the same library nginx links), through temporary files in a
private directory.

This module also holds the metadata helpers the newer kinds share (`object_meta`,
`check_annotations`, `check_known`).
"""

from __future__ import annotations

import base64
import json
import os
import re
import ssl
import tempfile

from .errors import ValidationError, mapping
from .pod import DNS_LABEL, DNS_SUBDOMAIN, QUALIFIED_NAME, check_labels, check_name

OPAQUE = "Opaque"
TLS = "kubernetes.io/tls"
CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")  # a key of data (Kubernetes' IsConfigMapKey)
MAX_SIZE = 1024 * 1024                          # Kubernetes' limit on a Secret's decoded data
MAX_ANNOTATIONS = 256 * 1024                    # ... and on all annotations of an object together
# the keys each well-known type must have (basic-auth: either of its two; see _check_type)
REQUIRED_KEYS = {TLS: ("tls.crt", "tls.key"), "kubernetes.io/ssh-auth": ("ssh-privatekey",),
                 "kubernetes.io/dockercfg": (".dockercfg",), "kubernetes.io/dockerconfigjson": (".dockerconfigjson",)}
JSON_KEYS = {"kubernetes.io/dockercfg": ".dockercfg", "kubernetes.io/dockerconfigjson": ".dockerconfigjson"}


# -- metadata, shared by Secret, Ingress and IngressClass -----------------------------------------
def check_known(raw: dict, allowed: tuple[str, ...], field_: str, source: str) -> None:
    """Refuse a key outside `allowed`: in these small fixed schemas an unknown key is a typo
    (pathtype, secretname) that would otherwise be silently ignored."""
    for key in raw:
        if key not in allowed:
            prefix = f"{field_}." if field_ else ""
            raise ValidationError(f"{prefix}{key}", f"is not a known field (known: {', '.join(allowed)})", source)


def _quoted(value: object) -> str:
    """How to write a YAML value as a string: true -> "true", 8080 -> "8080"."""
    return json.dumps(json.dumps(value, default=str) if not isinstance(value, str) else value)


def check_annotations(raw: object, field_: str, source: str) -> dict[str, str]:
    """metadata.annotations: keys as label keys (an optional DNS-subdomain prefix and '/', then a
    name), values any strings; at most 256 KiB together, as Kubernetes has it."""
    annotations = mapping(raw, field_, source)
    for key, value in annotations.items():
        if not _qualified_key(key):
            raise ValidationError(f"{field_}.{key}", "an annotation key is an optional DNS subdomain and '/' (example.com/), "
                                                     "then a name of at most 63 alphanumerics, '-', '_' or '.', beginning "
                                                     "and ending with an alphanumeric", source)
        if not isinstance(value, str):
            raise ValidationError(f"{field_}.{key}", f"annotation values must be strings: quote it ({_quoted(value)})",
                                  source)
    size = sum(len(k) + len(v) for k, v in annotations.items())
    if size > MAX_ANNOTATIONS:
        raise ValidationError(field_, f"annotations take {size} bytes together; at most {MAX_ANNOTATIONS} are allowed",
                              source)
    return dict(annotations)


def _qualified_key(key: object) -> bool:
    if not isinstance(key, str):
        return False
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(QUALIFIED_NAME.match(name))


def object_meta(doc: dict, source: str, kind: str, api_version: str, default_namespace: str | None,
                name_pattern: re.Pattern = DNS_SUBDOMAIN, name_limit: int = 253) -> dict:
    """apiVersion and metadata of an object: {name, namespace, labels, annotations}, without
    namespace for a cluster-scoped kind (`default_namespace` None; a namespace given is ignored,
    as the API server clears it)."""
    if doc.get("apiVersion") != api_version:
        raise ValidationError("apiVersion", f"a {kind} needs apiVersion: {api_version}, not {doc.get('apiVersion')!r}",
                              source)
    meta = doc.get("metadata")
    if not isinstance(meta, dict):
        raise ValidationError("metadata", "is required (with at least a name)", source)
    out = {"name": check_name(meta.get("name"), "metadata.name", source, name_pattern, name_limit)}
    if default_namespace is not None:
        out["namespace"] = check_name(meta.get("namespace") or default_namespace, "metadata.namespace", source,
                                      DNS_LABEL, 63)
    out["labels"] = check_labels(meta.get("labels"), "metadata.labels", source)
    out["annotations"] = check_annotations(meta.get("annotations"), "metadata.annotations", source)
    return out


# -- Secret ---------------------------------------------------------------------------------------
def parse_secret(doc: dict, source: str, default_namespace: str = "default") -> dict:
    """The Secret as stored: {apiVersion, kind, metadata, type, data[, immutable]}, data base64."""
    meta = object_meta(doc, source, "Secret", "v1", default_namespace)
    check_known(doc, ("apiVersion", "kind", "metadata", "type", "data", "stringData", "immutable"), "", source)
    stype = doc.get("type") or OPAQUE
    if not isinstance(stype, str):
        raise ValidationError("type", f"must be a string such as Opaque or kubernetes.io/tls, not {stype!r}", source)
    data = _data(doc.get("data"), source)
    data.update(_string_data(doc.get("stringData"), source))
    size = sum(len(k) + len(v) for k, v in data.items())
    if size > MAX_SIZE:
        raise ValidationError("data", f"holds {size} bytes; a Secret may hold at most {MAX_SIZE} (1 MiB)", source)
    _check_type(stype, data, meta, source)
    out = {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": stype,
           "data": {k: base64.b64encode(data[k]).decode("ascii") for k in sorted(data)}}
    immutable = doc.get("immutable")
    if immutable is not None:
        if not isinstance(immutable, bool):
            raise ValidationError("immutable", f"must be true or false, not {immutable!r}", source)
        out["immutable"] = immutable
    return out


def _key(key: object, field_: str, source: str) -> str:
    if not isinstance(key, str) or not key or len(key) > 253 or not CONFIG_KEY.match(key) or key in (".", "..") \
            or key.startswith(".."):
        raise ValidationError(f"{field_}.{key}", "a key must be at most 253 characters of a-z, A-Z, 0-9, '-', '_' or '.' "
                                                 "(a file name such as tls.crt; not '.' or '..')", source)
    return key


def _data(raw: object, source: str) -> dict[str, bytes]:
    """`data` decoded. Line breaks inside a value are ignored, as Go's base64 decoder (which the
    API server uses) ignores them: a long value folded in YAML still decodes."""
    out = {}
    for key, value in mapping(raw, "data", source).items():
        _key(key, "data", source)
        if not isinstance(value, str):
            raise ValidationError(f"data.{key}", f"must be a base64-encoded string, not {type(value).__name__} "
                                                 "(put plain text under stringData instead)", source)
        try:
            out[key] = b64decode(value.replace("\n", "").replace("\r", ""))
        except ValueError as e:
            raise ValidationError(f"data.{key}", f"must be base64 (as `base64 -w0 FILE` prints it): {e}; put plain text "
                                                 "under stringData instead", source) from None
    return out


def b64decode(text: str) -> bytes:
    """Standard padded base64, as strict as Go's decoder: Python's alone accepts extra '='."""
    decoded = base64.b64decode(text, validate=True)  # binascii.Error is a ValueError
    if len(text) != 4 * -(-len(decoded) // 3):
        raise ValueError("the length (with '=' padding) must be a multiple of 4, without extra '='")
    return decoded


def _string_data(raw: object, source: str) -> dict[str, bytes]:
    out = {}
    for key, value in mapping(raw, "stringData", source).items():
        _key(key, "stringData", source)
        if not isinstance(value, str):
            raise ValidationError(f"stringData.{key}", f"must be a string: quote it ({_quoted(value)})", source)
        out[key] = value.encode()
    return out


def _check_type(stype: str, data: dict[str, bytes], meta: dict, source: str) -> None:
    """The keys a well-known type requires (Kubernetes' ValidateSecret), and for TLS the pair itself."""
    for key in REQUIRED_KEYS.get(stype, ()):
        if key not in data:
            raise ValidationError(f"data.{key}", f"is required for a Secret of type {stype}", source)
    if stype == "kubernetes.io/basic-auth" and "username" not in data and "password" not in data:
        raise ValidationError("data", "a Secret of type kubernetes.io/basic-auth needs username or password", source)
    if stype == "kubernetes.io/service-account-token" and not meta["annotations"].get("kubernetes.io/service-account.name"):
        raise ValidationError("metadata.annotations.kubernetes.io/service-account.name",
                              "is required for a Secret of type kubernetes.io/service-account-token", source)
    if stype in JSON_KEYS:
        try:
            json.loads(data[JSON_KEYS[stype]])
        except ValueError as e:
            raise ValidationError(f"data.{JSON_KEYS[stype]}", f"must be JSON: {e}", source) from None
    if stype == TLS:
        check_tls_pair(data["tls.crt"], data["tls.key"], source)


# -- TLS ------------------------------------------------------------------------------------------
class _Encrypted(Exception):
    """Raised by the password callback: OpenSSL asks for a passphrase only for an encrypted key
    (without a callback it would prompt on the terminal)."""


def _no_password() -> bytes:
    raise _Encrypted()


def _ssl_text(e: Exception) -> str:
    """An OpenSSL error without Python's source location: 'key values mismatch'."""
    return re.sub(r"\s*\(_ssl\.c:\d+\)$", "", str(e)) or e.__class__.__name__


def check_tls_pair(crt: bytes, key: bytes, source: str = "") -> None:
    """Refuse a certificate that is not PEM, or a private key that is not PEM, is encrypted or
    does not belong to the certificate: each error names data.tls.crt or data.tls.key."""
    if b"-----BEGIN CERTIFICATE-----" not in crt:
        raise ValidationError("data.tls.crt", "is not a PEM certificate (no '-----BEGIN CERTIFICATE-----' line)", source)
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=crt.decode("ascii"))
    except (ssl.SSLError, UnicodeDecodeError, ValueError) as e:
        raise ValidationError("data.tls.crt", f"is not a PEM certificate ({_ssl_text(e)})", source) from None
    if b"PRIVATE KEY-----" not in key:
        raise ValidationError("data.tls.key", "is not a PEM private key (no '-----BEGIN ... PRIVATE KEY-----' line)", source)
    with tempfile.TemporaryDirectory(prefix="podnet-tls-") as tmp:
        os.chmod(tmp, 0o700)  # mkdtemp makes it so; said here because the key must never be readable by others
        crt_path, key_path = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
        for path, content in ((crt_path, crt), (key_path, key)):
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
                f.write(content)
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(crt_path, key_path, password=_no_password)
        except _Encrypted:
            raise ValidationError("data.tls.key", "is encrypted with a passphrase; nginx needs the key unencrypted "
                                                  "(openssl pkey -in KEY -out PLAIN)", source) from None
        except ssl.SSLError as e:
            raise _pair_error(e, source) from None


def _pair_error(e: ssl.SSLError, source: str) -> ValidationError:
    if e.reason == "KEY_VALUES_MISMATCH":
        return ValidationError("data.tls.key", f"does not match the certificate in tls.crt ({_ssl_text(e)})", source)
    if e.reason is None or "PEM" in str(e) or e.library in ("PEM", "DECODER"):
        return ValidationError("data.tls.key", f"is not a PEM private key ({_ssl_text(e)})", source)
    if e.reason == "EE_KEY_TOO_SMALL":  # weaker than OpenSSL's security level, so nginx would refuse it too
        return ValidationError("data.tls.crt", f"has a key too small for OpenSSL ({_ssl_text(e)}): use RSA of 2048 bits "
                                               "or more, or an EC key", source)
    return ValidationError("data.tls.crt", f"is refused by OpenSSL ({_ssl_text(e)})", source)


def tls_pair(secret: dict) -> tuple[bytes, bytes]:
    """The decoded (certificate, private key) of a stored Secret with tls.crt and tls.key (any
    type: ingress-nginx, too, takes an Opaque Secret holding the two keys)."""
    data = secret.get("data") or {}
    for key in ("tls.crt", "tls.key"):
        if not isinstance(data.get(key), str):
            raise ValidationError(f"data.{key}", "is missing: a TLS Secret needs tls.crt and tls.key", _ident(secret))
    try:
        return b64decode(data["tls.crt"]), b64decode(data["tls.key"])
    except ValueError as e:
        raise ValidationError("data", f"is not base64: {e}", _ident(secret)) from None


def _ident(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    return f"Secret {meta.get('namespace', '')}/{meta.get('name', '')}"
