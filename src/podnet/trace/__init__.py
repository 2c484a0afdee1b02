"""`podnet trace`: where a packet would go, read hop by hop from the live kernel state of every
namespace on its path, without sending anything; with --probe, one real packet confirms the
walk (temporary nft trace tables on the path, always removed).

    model       Trace, Hop, Evidence, Packet, Endpoint; the versioned JSON form
    kernel      the reader: `ip -j`, `bridge -j`, `nft -j`, `ss` in a named namespace (replaceable)
    inventory   the cluster's objects and namespace names; SRC/DST as the user types them
    netpol      a flow's NetworkPolicy verdict with the policy and rule behind it
    walk        the algorithm
    render      the text story
    probe       --probe: the trace tables, the monitors, the one packet, each hop confirmed or not
"""

from .inventory import Inventory, ResolveError
from .kernel import Kernel, KernelError
from .model import Trace
from .walk import TraceError, Walk, walk

__all__ = ["Inventory", "Kernel", "KernelError", "ResolveError", "Trace", "TraceError", "Walk", "walk"]
