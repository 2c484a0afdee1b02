"""A Weave-style mesh: routers that find each other by gossip, carry pod frames between nodes
(sleeve: Ethernet frames in UDP, relayed by a third peer where two have no direct path), and
share the cluster range without a datastore (podnet.ipam.ring).

    module      job
    topology    peers, their connections, who is reachable and through whom (pure)
    protocol    the TCP messages and the sleeve's UDP header (pure)
    router      the process: connections, gossip, IPAM, the control socket, the sleeve
    tap         the TAP device the sleeve reads and writes frames on
    client      the control socket's client (the agent's backend, `podnet mesh status`)
    status      `podnet mesh status` as text (pure)
"""
