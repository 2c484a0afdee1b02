"""Anti-spoofing upkeep: records of pods that are gone are dropped, the table is rebuilt when
it drifted, and drops are logged per pod as they grow (the Node's status shows them)."""

from __future__ import annotations

from . import Controller


class Antispoof(Controller):
    name = "antispoof"

    def sync(self, full: bool) -> None:
        a = self.agent
        gone = a.attachments.sync(lambda: {link.name for link in a.nl.links()})
        if gone:
            a.log(f"anti-spoofing: dropped {gone} records of pods that are gone")
        by_veth = {att.host_veth: att.pod or att.host_veth for att in a.attachments.load()}
        drops = {by_veth.get(veth, veth): n for veth, n in a.attachments.drops().items()}
        for who, n in sorted(drops.items()):
            if n > a.spoofed.get(who, 0):
                a.log(f"anti-spoofing: dropped {n - a.spoofed.get(who, 0)} packets from {who} "
                      "(a source MAC or IPv4 address that is not its own)")
        a.spoofed = drops
