"""Where everything lives in the datastore: one prefix per kind, then <namespace>/<name> (or
just <name> for cluster-scoped kinds), and the few keys of the network itself. Nothing else in
podnet spells a key."""

ROOT = "/podnet/"                      # watch this to see every change
CONFIG = "/podnet/config"              # the cluster network (flannel's net-conf.json)
SUBNETS = "/podnet/subnets/"           # <a.b.c.d>-<len>: a node's subnet lease
ALLOCATIONS = "/podnet/allocations/"   # <kind>/<value>: ClusterIPs, NodePorts, LB IPs, each held by one service
LEADERS = "/podnet/leader/"            # <component>: who acts, under a store lease

PODS = "/podnet/pods/"
SERVICES = "/podnet/services/"
ENDPOINT_SLICES = "/podnet/endpointslices/"
DEPLOYMENTS = "/podnet/deployments/"
NODES = "/podnet/nodes/"
NAMESPACES = "/podnet/namespaces/"
NETWORK_POLICIES = "/podnet/networkpolicies/"
