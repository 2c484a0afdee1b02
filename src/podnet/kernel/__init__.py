"""The only code that talks to the kernel.

Plugins run as short-lived executables, so this layer speaks rtnetlink with the standard
library's AF_NETLINK sockets instead of importing pyroute2 (whose import alone costs ~150 ms
here, fifteen times the reference plugin's whole ADD). Tests cross-check what it does with
iproute2 (`ip -j`), an independent netlink implementation.
"""
