"""The node agent: subnet lease, backend (host-gw or vxlan), ip-masq, and the CNI server."""
