"""The Deployment resource (apps/v1): replicas of a pod template, selected by labels."""

from __future__ import annotations

from .errors import ValidationError, mapping
from .pod import DNS_LABEL, check_labels, parse_header, parse_pod


def parse_deployment(doc: dict, source: str, default_namespace: str = "default") -> dict:
    name, namespace, dep_labels, spec = parse_header(doc, source, default_namespace, "Deployment", "apps/v1", DNS_LABEL, 50)
    replicas = spec.get("replicas", 1)
    if not isinstance(replicas, int) or isinstance(replicas, bool) or not 0 <= replicas <= 1000:
        raise ValidationError("spec.replicas", f"must be an integer from 0 to 1000, not {replicas!r}", source)
    selector = mapping(spec.get("selector"), "spec.selector", source).get("matchLabels")
    if not isinstance(selector, dict) or not selector:
        raise ValidationError("spec.selector.matchLabels", "is required (the labels that pick this deployment's pods)", source)
    check_labels(selector, "spec.selector.matchLabels", source)
    template = spec.get("template")
    if not isinstance(template, dict):
        raise ValidationError("spec.template", "is required (a pod template)", source)
    labels = check_labels(mapping(template.get("metadata"), "spec.template.metadata", source).get("labels"),
                          "spec.template.metadata.labels", source)
    if any(labels.get(k) != v for k, v in selector.items()):
        raise ValidationError("spec.template.metadata.labels", f"must include the selector {selector}", source)
    probe = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{name}-x", "labels": labels},
             "spec": template.get("spec")}
    try:
        parse_pod(probe, source, namespace)
    except ValidationError as e:
        raise ValidationError(f"spec.template.{e.field}", e.problem, source) from None
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": dep_labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": selector},
                     "template": {"metadata": {"labels": labels}, "spec": template["spec"]}}}
