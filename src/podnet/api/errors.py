"""Validation errors that say which field is wrong and why."""

from __future__ import annotations


class ValidationError(ValueError):
    def __init__(self, field: str, problem: str, source: str = "") -> None:
        self.field = field
        self.problem = problem
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{field}: {problem}")
