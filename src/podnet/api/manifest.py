"""Reading manifests: YAML or JSON, several documents per file, or a `kind: List`."""

from __future__ import annotations

import json

import yaml

from .errors import ValidationError


def load_documents(text: str, source: str) -> list[dict]:
    docs = None
    if text.lstrip().startswith(("{", "[")):
        try:  # plain JSON: fast, and its errors are clearer
            parsed = json.loads(text)
            docs = parsed if isinstance(parsed, list) else [parsed]
        except (ValueError, RecursionError):
            docs = None  # perhaps several JSON documents separated by ---: YAML reads those
    if docs is None:
        try:
            docs = [d for d in yaml.safe_load_all(text) if d is not None]
        except (yaml.YAMLError, RecursionError, ValueError) as e:
            raise ValidationError("(document)", f"cannot parse: {e}", source) from None
    out: list[dict] = []
    for i, doc in enumerate(docs):
        where = f"{source}[{i}]" if len(docs) > 1 else source
        if not isinstance(doc, dict):
            raise ValidationError("(document)", "must be a mapping with apiVersion, kind and metadata", where)
        if doc.get("kind") == "List":
            items = doc.get("items")
            if not isinstance(items, list):
                raise ValidationError("items", "a List needs a list of items", where)
            for j, item in enumerate(items):
                if not isinstance(item, dict):
                    raise ValidationError(f"items[{j}]", "must be a mapping", where)
                out.append(item)
        else:
            out.append(doc)
    return out


def load_file(path: str) -> list[dict]:
    if path == "-":
        import sys

        return load_documents(sys.stdin.read(), "<stdin>")
    try:
        with open(path) as f:
            return load_documents(f.read(), path)
    except OSError as e:
        raise ValidationError("(file)", f"cannot read {path}: {e.strerror}") from None
