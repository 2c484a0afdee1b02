"""fastdp: the kernel's VXLAN between peers that reach each other directly (Weave's fast
datapath uses Open vSwitch's; this kernel has no OVS, and a VXLAN device on the bridge does the
same job). One device per node on the bridge, learning on; one FDB entry 00:00:00:00:00:00 per
fastdp peer (the kernel copies broadcasts and unknown destinations to each), and the bridge
learns where each remote MAC is. The sleeve carries what fastdp cannot reach: peers without a
direct connection (relayed), or every peer when fastdp is off (a password: Weave cannot encrypt
its fast path without IPsec either).

Split horizon: the bridge must never pass a frame between the two overlay ports (sleeve and
VXLAN), or broadcasts would loop. Both are isolated bridge ports (`bridge link set ... isolated
on`): the kernel forwards nothing between isolated ports, at no cost per frame.
"""

from __future__ import annotations

import subprocess

from ..kernel import rtnl

DEVICE = "podnet-fastdp"
VNI = 6784
ZERO = "00:00:00:00:00:00"


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
            for port in (DEVICE, self.sleeve):
                done = subprocess.run(["bridge", "link", "set", "dev", port, "isolated", "on"], capture_output=True, text=True)
                if done.returncode != 0:
                    raise OSError(f"cannot isolate bridge port {port}: {done.stderr.strip()}")
        except (OSError, StopIteration) as e:
            self.problem = f"no fastdp: {e}"
            return False
        return True

    def set_peers(self, addresses: set[str]) -> None:
        """FDB entries for exactly these peers (`bridge fdb append`: several default entries).
        A peer that leaves fastdp also takes what the kernel learnt of it: otherwise the bridge
        would keep sending its pods' MACs into VXLAN, to an address that no longer answers,
        instead of to the sleeve (which may relay them), until the entries age out."""
        for dst in sorted(addresses - self.peers):
            subprocess.run(["bridge", "fdb", "append", ZERO, "dev", DEVICE, "dst", dst], capture_output=True)
        for dst in sorted(self.peers - addresses):
            subprocess.run(["bridge", "fdb", "del", ZERO, "dev", DEVICE, "dst", dst], capture_output=True)
            self.forget(dst)
        self.peers = set(addresses)

    @staticmethod
    def forget(dst: str) -> None:
        """The MACs the VXLAN device learnt behind `dst`, from it and from the bridge."""
        with rtnl.Netlink() as nl:
            link = nl.link(DEVICE)
            rows = nl.neighbours(link.index, rtnl.AF_BRIDGE) if link is not None else []
        for mac in sorted({mac for ip, mac, _ in rows if ip == dst and mac and mac != ZERO}):
            subprocess.run(["bridge", "fdb", "del", mac, "dev", DEVICE, "dst", dst, "self"], capture_output=True)
            subprocess.run(["bridge", "fdb", "del", mac, "dev", DEVICE, "master"], capture_output=True)

    @staticmethod
    def forget_on(port: str, macs: list[str]) -> None:
        """These MACs as the bridge learnt them on `port` (the sleeve's, when their peer comes to fastdp)."""
        for mac in macs:
            subprocess.run(["bridge", "fdb", "del", mac, "dev", port, "master"], capture_output=True)
