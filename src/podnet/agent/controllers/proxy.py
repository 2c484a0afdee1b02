"""The service proxy: table ip podnet_proxy from Services and their EndpointSlices, changed by
diffs (nothing at all when nothing changed). The first fill of an empty kernel goes in chunks
switched on at once. In a full pass, when someone else changed nftables since our own last
change, the table is replaced whole from the model (a rule deleted by hand comes back)."""

from __future__ import annotations

import json

from ...api import keys, stored
from ...kernel import nft
from ...proxy import render as proxy
from .. import survive
from . import Controller


class Proxy(Controller):
    name = "proxy"
    watches = (keys.SERVICES, keys.ENDPOINT_SLICES)

    def __init__(self, agent) -> None:
        super().__init__(agent)
        self.model: proxy.Model | None = None

    def sync(self, full: bool) -> None:
        a = self.agent
        services, bad = stored.decode_all(a.store.list(keys.SERVICES)[0])
        slices: dict[tuple[str, str], dict] = {}
        for kv in a.store.list(keys.ENDPOINT_SLICES)[0]:
            ns, _, name = kv.key[len(keys.ENDPOINT_SLICES):].partition("/")
            try:
                obj = json.loads(kv.value)
            except ValueError:
                obj = None
            if isinstance(obj, dict) and isinstance(obj.get("items"), list) and name:
                slices[(ns, name)] = obj
            else:
                bad.append(kv.key)
        model, culprits = survive.proxy_model(services, slices, a.node, str(a.cfg.network))
        a.report_skipped("services", bad + culprits)
        if self.model is None:
            if nft.list_ruleset(["table", proxy.FAMILY, proxy.TABLE]):
                nft.run(proxy.full(model))  # a previous agent's table: replace it in one transaction
            else:
                for batch in proxy.full_chunked(model):  # nothing there yet: fill, then switch on
                    nft.run(batch)
            a.log(f"proxy: full sync ({len(services)} services, {model.rule_count()} rules)")
        elif full and nft.changed_by_others() and self._drifted(model):
            nft.run(proxy.full(model))
            a.log(f"proxy: table {proxy.TABLE} was changed outside podnet: replaced from the model")
        else:
            cmds = proxy.diff(self.model, model)
            if cmds:
                nft.run(cmds)
                a.log(f"proxy: {len(cmds)} changes ({len(services)} services, {model.rule_count()} rules)")
        self.model = model

    def _drifted(self, model: proxy.Model) -> bool:
        """The kernel's table differs from the model in its chains, the number of rules in each,
        or the number of elements in each map. (Counting, not comparing rule by rule: a listing
        of 200,000 rules is read once; a rule edited in place, same count, goes unnoticed.)"""
        rules: dict[str, int] = {}
        elements: dict[str, int] = {}
        for item in nft.list_ruleset(["table", proxy.FAMILY, proxy.TABLE]):
            if "chain" in item:
                rules.setdefault(item["chain"]["name"], 0)
            elif "rule" in item:
                rules[item["rule"]["chain"]] = rules.get(item["rule"]["chain"], 0) + 1
            elif "map" in item:
                elements[item["map"]["name"]] = len(item["map"].get("elem") or [])
        if set(rules) != set(model.chains):
            return True
        if any(rules[chain] != len(chain_rules) for chain, chain_rules in model.chains.items()):
            return True
        return any(elements.get(name, 0) != len(elems) for name, elems in model.maps.items())
