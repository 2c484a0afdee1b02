"""CNI spec versions and the rules about which verbs each version allows."""

from __future__ import annotations

SUPPORTED: tuple[str, ...] = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
CURRENT = "1.1.0"


def parse(version: str) -> tuple[int, int, int]:
    """Parse 'X.Y.Z' into a tuple; raise ValueError for anything else."""
    parts = version.split(".") if isinstance(version, str) else []
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"invalid version {version!r}: expected MAJOR.MINOR.PATCH")
    return int(parts[0]), int(parts[1]), int(parts[2])


def at_least(version: str, minimum: str) -> bool:
    return parse(version) >= parse(minimum)


def result_family(version: str) -> str:
    """Which result layout a version uses: '020' (ip4/ip6), '040' (ips with version), '100'."""
    v = parse(version)
    if v < (0, 3, 0):
        return "020"
    if v < (1, 0, 0):
        return "040"
    return "100"


# The first spec version that defines each verb.
VERB_MINIMUM = {"ADD": "0.1.0", "DEL": "0.1.0", "VERSION": "0.1.0", "CHECK": "0.4.0", "GC": "1.1.0", "STATUS": "1.1.0"}


def verb_allowed(verb: str, version: str) -> bool:
    return at_least(version, VERB_MINIMUM[verb])
