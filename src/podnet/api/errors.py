"""Validation errors that say which field is wrong and why."""

from __future__ import annotations


class ValidationError(ValueError):
    def __init__(self, field: str, problem: str, source: str = "") -> None:
        self.field = field
        self.problem = problem
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{field}: {problem}")


def mapping(value: object, field: str, source: str = "") -> dict:
    """`value` as a mapping ({} when absent), or an error naming the field."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(field, "must be a mapping", source)
    return value


def listing(value: object, field: str, source: str = "") -> list:
    """`value` as a list ([] when absent), or an error naming the field."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValidationError(field, "must be a list", source)
    return value
