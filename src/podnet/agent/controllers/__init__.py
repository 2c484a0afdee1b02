"""The agent's controllers: each owns one piece of the node's kernel state, declares the store
prefixes whose changes concern it, and has `sync(full)`. The daemon runs them all under one
error policy; `full` is the periodic pass that also compares what the kernel holds with what
the controller put there and repairs drift.

    routes       the backend's routes / neighbours / FDB, and its guard table  (subnet leases)
    masquerade   ip-masq for pod traffic leaving the cluster network
    proxy        the service ruleset                                (services, endpointslices)
    policy       NetworkPolicy for the node's pods          (pods, namespaces, policies, nodes)
    antispoof    pods' own addresses only, at their ports        (the CNI server's records)
"""

from __future__ import annotations


class Controller:
    name = ""
    watches: tuple[str, ...] = ()  # store prefixes whose changes make it sync

    def __init__(self, agent) -> None:
        self.agent = agent

    def concerns(self, event) -> bool:
        """Whether a store event should make it sync: by default, any change under `watches`."""
        return bool(self.watches) and event.key.startswith(self.watches)

    def sync(self, full: bool) -> None:
        raise NotImplementedError
