"""Pure renderers of the nftables rules the plugins own, and their removal by attachment tag.

Every attachment's rules carry the attachment's tag as their comment, so DEL can find and
remove them without knowing the addresses (the container's netns may already be gone).

- ipMasq: table `inet podnet_masq`, chain `postrouting` (nat, srcnat): traffic from the pod
  to anything outside its own subnet and outside multicast is masqueraded.
- macspoofchk: table `bridge podnet_macspoof`, chain `prerouting`: frames entering the bridge
  from the pod's host-side veth with another source MAC are dropped.
"""

from __future__ import annotations

import ipaddress

from ..kernel import nft

MASQ_TABLE = {"family": "inet", "name": "podnet_masq"}
MASQ_CHAIN = "postrouting"
SPOOF_TABLE = {"family": "bridge", "name": "podnet_macspoof"}
SPOOF_CHAIN = "prerouting"


def _match(proto: str, field: str, op: str, right: object) -> dict:
    return {"match": {"op": op, "left": {"payload": {"protocol": proto, "field": field}}, "right": right}}


def _prefix(cidr: str) -> dict:
    net = ipaddress.ip_network(cidr, strict=False)
    return {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}


def masq_add(addresses: list[str], tag: str) -> list[dict]:
    """Commands to masquerade traffic from each pod address (CIDR form) leaving its subnet."""
    cmds: list[dict] = [
        {"add": {"table": dict(MASQ_TABLE)}},
        {"add": {"chain": {**MASQ_TABLE, "table": MASQ_TABLE["name"], "name": MASQ_CHAIN, "type": "nat",
                           "hook": "postrouting", "prio": 100, "policy": "accept"}}},
    ]
    for cidr in addresses:
        iface = ipaddress.ip_interface(cidr)
        proto, mcast = ("ip6", "ff00::/8") if iface.version == 6 else ("ip", "224.0.0.0/4")
        expr = [
            _match(proto, "saddr", "==", str(iface.ip)),
            _match(proto, "daddr", "!=", _prefix(str(iface.network))),
            _match(proto, "daddr", "!=", _prefix(mcast)),
            {"masquerade": None},
        ]
        cmds.append({"add": {"rule": {"family": MASQ_TABLE["family"], "table": MASQ_TABLE["name"],
                                      "chain": MASQ_CHAIN, "comment": tag, "expr": expr}}})
    return cmds


def spoofcheck_add(host_ifname: str, mac: str, tag: str) -> list[dict]:
    expr = [
        {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": host_ifname}},
        {"match": {"op": "!=", "left": {"payload": {"protocol": "ether", "field": "saddr"}}, "right": mac}},
        {"drop": None},
    ]
    return [
        {"add": {"table": dict(SPOOF_TABLE)}},
        {"add": {"chain": {**SPOOF_TABLE, "table": SPOOF_TABLE["name"], "name": SPOOF_CHAIN, "type": "filter",
                           "hook": "prerouting", "prio": -300, "policy": "accept"}}},
        {"add": {"rule": {"family": SPOOF_TABLE["family"], "table": SPOOF_TABLE["name"], "chain": SPOOF_CHAIN,
                          "comment": tag, "expr": expr}}},
    ]


def delete_tagged(listing: list[dict], tag: str) -> list[dict]:
    """Commands deleting every rule in an `nft -j list` output whose comment is `tag`."""
    cmds = []
    for item in listing:
        rule = item.get("rule")
        if rule and rule.get("comment") == tag:
            cmds.append({"delete": {"rule": {"family": rule["family"], "table": rule["table"],
                                             "chain": rule["chain"], "handle": rule["handle"]}}})
    return cmds


def remove_attachment(table: dict, chain: str, tag: str) -> None:
    """Delete this attachment's rules from one of our chains (nothing to do if it is absent)."""
    listing = nft.list_ruleset(["chain", table["family"], table["name"], chain])
    nft.run(delete_tagged(listing, tag))


def has_tagged(table: dict, chain: str, tag: str) -> bool:
    listing = nft.list_ruleset(["chain", table["family"], table["name"], chain])
    return any((i.get("rule") or {}).get("comment") == tag for i in listing)
