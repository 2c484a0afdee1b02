"""CNI error codes and the error object printed on stdout (SPEC.md, "Error")."""

from __future__ import annotations

from .. import fastjson as json

INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
INVALID_ENVIRONMENT = 4
IO_FAILURE = 5
DECODING_FAILURE = 6
INVALID_NETWORK_CONFIG = 7
TRY_AGAIN_LATER = 11
PLUGIN_NOT_AVAILABLE = 50
PLUGIN_NOT_AVAILABLE_LIMITED = 51
# Codes 100+ are plugin specific; the reference plugins use 999 for failures the spec does not name.
INTERNAL = 999

MEANING = {
    INCOMPATIBLE_VERSION: "Incompatible CNI version",
    UNSUPPORTED_FIELD: "Unsupported field in network configuration",
    UNKNOWN_CONTAINER: "Container unknown or does not exist",
    INVALID_ENVIRONMENT: "Invalid necessary environment variables",
    IO_FAILURE: "I/O failure",
    DECODING_FAILURE: "Failed to decode content",
    INVALID_NETWORK_CONFIG: "Invalid network config",
    TRY_AGAIN_LATER: "Try again later",
    PLUGIN_NOT_AVAILABLE: "The plugin is not available",
    PLUGIN_NOT_AVAILABLE_LIMITED: "The plugin is not available; existing containers may have limited connectivity",
    INTERNAL: "Internal plugin error",
}


class CNIError(Exception):
    """An error that a plugin reports to its runtime as the spec's error JSON."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details

    def to_dict(self, cni_version: str) -> dict:
        out = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out

    def to_json(self, cni_version: str) -> str:
        return json.dumps(self.to_dict(cni_version), indent=4)

    def __str__(self) -> str:
        text = f"{self.msg}"
        if self.details:
            text += f": {self.details}"
        return text

    @classmethod
    def from_dict(cls, data: dict) -> "CNIError":
        return cls(int(data.get("code", INTERNAL)), str(data.get("msg", "")), str(data.get("details", "")))
