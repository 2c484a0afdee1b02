"""An nftables table the agent owns and replaces whole (masquerade, overlay guard, policy).

Render, then apply: the transaction runs only when the render changed. At every full sync the
agent also asks the kernel: a table that someone changed or deleted behind its back (its
fingerprint differs from the one taken right after the agent's own apply) is put back, so
drift lasts at most one sync period.
"""

from __future__ import annotations

import json
from typing import Callable

from ..kernel import nft


class OwnedTable:
    def __init__(self, family: str, name: str, log: Callable[[str], None] = lambda _msg: None) -> None:
        self.family = family
        self.name = name
        self.log = log
        self.rendered = ""
        self.fingerprint: str | None = None

    def apply(self, commands: list[dict], check_kernel: bool = False) -> bool:
        """Make the kernel hold `commands`' table; True when a transaction ran."""
        text = json.dumps(commands)
        if text == self.rendered:
            if not check_kernel or nft.fingerprint(self.family, self.name) == self.fingerprint:
                return False
            self.log(f"table {self.family} {self.name} was changed outside podnet: restoring it")
        nft.run(commands)
        self.rendered = text
        self.fingerprint = nft.fingerprint(self.family, self.name)
        return True
