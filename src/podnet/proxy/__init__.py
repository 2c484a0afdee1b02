"""The service proxy: pure renderers from Services + EndpointSlices to one nftables ruleset.

The agent applies what these render; nothing here touches the kernel.
"""
