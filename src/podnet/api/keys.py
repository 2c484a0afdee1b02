"""Where API objects live in the datastore: one prefix per kind, then <namespace>/<name>
(or just <name> for cluster-scoped kinds)."""

PODS = "/podnet/pods/"
SERVICES = "/podnet/services/"
NODES = "/podnet/nodes/"
NAMESPACES = "/podnet/namespaces/"
NETWORK_POLICIES = "/podnet/networkpolicies/"
