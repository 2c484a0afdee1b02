"""fastdp: the kernel's VXLAN between peers that reach each other directly (Weave's fast
datapath uses Open vSwitch's; this kernel has no OVS, and a VXLAN device on the bridge does the
same job). One device per node on the bridge, learning on; one FDB entry 00:00:00:00:00:00 per
fastdp peer (the kernel copies broadcasts and unknown destinations to each), and the bridge
learns where each remote MAC is. The sleeve carries what fastdp cannot reach: peers without a
direct connection (relayed), or every peer when fastdp is off (a password: Weave cannot encrypt
its fast path without IPsec either).

Split horizon: the bridge must never pass a frame between the two overlay ports (sleeve and
VXLAN), or broadcasts would loop; table `bridge podnet_mesh` drops that.
"""

from __future__ import annotations

import subprocess

from ..kernel import nft, rtnl

DEVICE = "podnet-fastdp"
VNI = 6784
ZERO = "00:00:00:00:00:00"
TABLE = "podnet_mesh"


def split_horizon(sleeve: str, fastdp: str) -> list[dict]:
    """One transaction replacing `table bridge podnet_mesh`."""
    t = {"family": "bridge", "table": TABLE}

    def between(a: str, b: str) -> dict:
        return {"add": {"rule": {**t, "chain": "forward", "comment": f"no frames from {a} to {b}", "expr": [
            {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": a}},
            {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": b}}, {"drop": None}]}}}

    return [{"add": {"table": {"family": "bridge", "name": TABLE}}},
            {"delete": {"table": {"family": "bridge", "name": TABLE}}},
            {"add": {"table": {"family": "bridge", "name": TABLE}}},
            {"add": {"chain": {**t, "name": "forward", "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}}},
            between(sleeve, fastdp), between(fastdp, sleeve)]


class FastDP:
    def __init__(self, bridge: str, address: str, port: int, mtu: int, sleeve: str) -> None:
        self.bridge, self.address, self.port, self.mtu, self.sleeve = bridge, address, port, mtu, sleeve
        self.peers: set[str] = set()   # underlay addresses with an FDB entry
        self.problem = ""

    def setup(self) -> bool:
        """The device on the bridge and the split horizon; False (and `problem`) when this kernel
        cannot (then everything goes through the sleeve)."""
        try:
            with rtnl.Netlink() as nl:
                link = nl.link(DEVICE)
                want = {"vni": VNI, "local": self.address, "port": self.port}
                if link is not None and (link.kind != "vxlan" or nl.vxlan_info(link.index) != want):
                    nl.delete_link(link.index)
                    link = None
                if link is None:
                    under = next(l for l in nl.links() if any(a.address == self.address for a in nl.addresses(l.index, rtnl.AF_INET)))
                    nl.add_vxlan(DEVICE, VNI, self.address, self.port, under.index, mtu=self.mtu, learning=True)
                    link = nl.link(DEVICE)
                br = nl.link(self.bridge)
                nl.set_link(link.index, master=br.index)
                nl.set_link(link.index, up=True)
                for dst, mac, _ in nl.neighbours(link.index, rtnl.AF_BRIDGE):
                    if mac == ZERO and dst:
                        subprocess.run(["bridge", "fdb", "del", ZERO, "dev", DEVICE, "dst", dst], capture_output=True)
            nft.run(split_horizon(self.sleeve, DEVICE))
        except (OSError, StopIteration, nft.NftError) as e:
            self.problem = f"no fastdp: {e}"
            return False
        return True

    def set_peers(self, addresses: set[str]) -> None:
        """FDB entries for exactly these peers (`bridge fdb append`: several default entries)."""
        for dst in sorted(addresses - self.peers):
            subprocess.run(["bridge", "fdb", "append", ZERO, "dev", DEVICE, "dst", dst], capture_output=True)
        for dst in sorted(self.peers - addresses):
            subprocess.run(["bridge", "fdb", "del", ZERO, "dev", DEVICE, "dst", dst], capture_output=True)
        self.peers = set(addresses)
