"""The cluster network configuration (flannel's net-conf.json, under /podnet/config).

    {"Network": "10.244.0.0/16", "SubnetLen": 24, "SubnetMin": "10.244.1.0", "SubnetMax": "10.244.255.0",
     "Backend": {"Type": "vxlan", "VNI": 1, "Port": 8472}}

Defaults follow flannel: SubnetLen 24 (Network's length + 2 for networks of /24 or smaller),
SubnetMin the second subnet, SubnetMax the last one, Backend vxlan.

The Backend section belongs to its backend: its Type names one, and the rest (VNI and Port for
vxlan, ...) is checked by that backend's own parser, passed in as `backends` (the agent's
registry, `podnet.agent.backends`): this layer knows no backend.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Callable, Mapping

from .errors import ValidationError
from .keys import CONFIG

Parser = Callable[[dict, str], dict]  # (the Backend section, source) -> its normalized fields, or ValidationError


@dataclass(frozen=True)
class ClusterConfig:
    network: ipaddress.IPv4Network
    subnet_len: int
    subnet_min: ipaddress.IPv4Address
    subnet_max: ipaddress.IPv4Address
    backend: str
    backend_items: tuple = ()  # the backend's own fields, normalized, as sorted (key, value) pairs

    @property
    def backend_conf(self) -> dict:
        return dict(self.backend_items)

    def subnets(self):
        """Every allocatable node subnet, in order."""
        step = 1 << (32 - self.subnet_len)
        addr = int(self.subnet_min)
        while addr <= int(self.subnet_max):
            yield ipaddress.ip_network((addr, self.subnet_len))
            addr += step

    def to_json(self) -> str:
        backend = {"Type": self.backend, **self.backend_conf}
        return json.dumps({"Network": str(self.network), "SubnetLen": self.subnet_len, "SubnetMin": str(self.subnet_min),
                           "SubnetMax": str(self.subnet_max), "Backend": backend})


def parse(doc: object, source: str = CONFIG, backends: Mapping[str, Parser] | None = None) -> ClusterConfig:
    """The config, validated; with `backends`, Backend.Type must name one of them and its
    parser checks the rest of the section (without, the section is only checked to be an object)."""
    if isinstance(doc, (str, bytes)):
        try:
            doc = json.loads(doc)
        except ValueError as e:
            raise ValidationError("(document)", f"not valid JSON: {e}", source) from None
    if not isinstance(doc, dict):
        raise ValidationError("(document)", "must be a JSON object", source)
    unknown = set(doc) - {"Network", "SubnetLen", "SubnetMin", "SubnetMax", "Backend", "EnableIPv4", "EnableIPv6"}
    if unknown:
        raise ValidationError(sorted(unknown)[0], "unknown field (expected Network, SubnetLen, SubnetMin, SubnetMax, Backend)", source)
    if "Network" not in doc:
        raise ValidationError("Network", "is required, e.g. \"10.244.0.0/16\"", source)
    try:
        network = ipaddress.ip_network(str(doc["Network"]), strict=True)
    except ValueError as e:
        raise ValidationError("Network", f"{doc['Network']!r} is not a network address: {e}", source) from None
    if network.version != 4:
        raise ValidationError("Network", "only IPv4 cluster networks are supported so far", source)
    default_len = 24 if network.prefixlen < 24 else network.prefixlen + 2
    subnet_len = doc.get("SubnetLen", default_len)
    if not isinstance(subnet_len, int) or isinstance(subnet_len, bool) or not network.prefixlen < subnet_len <= 30:
        raise ValidationError("SubnetLen", f"must be an integer between {network.prefixlen + 1} and 30, not {subnet_len!r}", source)
    step = 1 << (32 - subnet_len)
    first, last = int(network.network_address), int(network.broadcast_address) + 1 - step

    def bound(name: str, default: int) -> ipaddress.IPv4Address:
        raw = doc.get(name)
        if raw is None:
            return ipaddress.IPv4Address(default)
        try:
            ip = ipaddress.IPv4Address(str(raw))
        except ValueError:
            raise ValidationError(name, f"{raw!r} is not an IPv4 address", source) from None
        if ip not in network or (int(ip) - first) % step:
            raise ValidationError(name, f"{ip} is not the start of a /{subnet_len} inside {network}", source)
        return ip

    smin = bound("SubnetMin", first + step if last > first else first)
    smax = bound("SubnetMax", last)
    if smin > smax:
        raise ValidationError("SubnetMin", f"{smin} is after SubnetMax {smax}", source)
    backend = doc.get("Backend", {"Type": "vxlan"})
    if not isinstance(backend, dict):
        raise ValidationError("Backend", "must be an object such as {\"Type\": \"vxlan\"}", source)
    btype = backend.get("Type", "vxlan")
    if not isinstance(btype, str) or not btype:
        raise ValidationError("Backend.Type", f"must name a backend, not {btype!r}", source)
    fields = {k: v for k, v in backend.items() if k != "Type"}
    if backends is not None:
        if btype not in backends:
            raise ValidationError("Backend.Type", f"{btype!r} is not one of {', '.join(sorted(backends))}", source)
        fields = backends[btype](fields, source)
    return ClusterConfig(network, subnet_len, smin, smax, btype, tuple(sorted(fields.items())))


__all__ = ["ClusterConfig", "parse", "ValidationError"]
