"""Validation of the identifiers the spec constrains: container ID, network name, interface name."""

from __future__ import annotations

from .errors import INVALID_ENVIRONMENT, INVALID_NETWORK_CONFIG, CNIError

# SPEC.md: "must only contain alphanumeric characters, underscore, dot and hyphen, and must start
# with an alphanumeric character" for container IDs and network names. (No `re`: it costs
# plugin executables ~3 ms of start-up.)
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_ID_CHARS = _ALNUM | frozenset("_.-")


def _is_id(value: str) -> bool:
    return bool(value) and value[0] in _ALNUM and all(c in _ID_CHARS for c in value)
IFNAMSIZ = 16


def container_id(value: str) -> None:
    if value == "":
        raise CNIError(INVALID_ENVIRONMENT, "missing containerID")
    if not _is_id(value):
        raise CNIError(INVALID_ENVIRONMENT, "invalid characters in containerID", value)


def network_name(value: str) -> None:
    if value == "":
        raise CNIError(INVALID_NETWORK_CONFIG, "missing network name")
    if not _is_id(value):
        raise CNIError(INVALID_NETWORK_CONFIG, "invalid characters found in network name", value)


def interface_name(value: str) -> None:
    """The kernel's rules (dev_valid_name), which the spec adopts."""
    if value == "":
        raise CNIError(INVALID_ENVIRONMENT, "interface name is empty")
    if len(value) > IFNAMSIZ - 1:
        raise CNIError(INVALID_ENVIRONMENT, "interface name is too long", f"interface name should be less than {IFNAMSIZ} characters")
    if value in (".", ".."):
        raise CNIError(INVALID_ENVIRONMENT, "interface name is . or ..")
    if any(c in value for c in "/:") or any(c.isspace() for c in value):
        raise CNIError(INVALID_ENVIRONMENT, "interface name contains / or : or whitespace characters")
