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
IPPOOLS = "/podnet/ippools/"           # <name>: IPPool (routed mode: where pod addresses come from)
BGP_CONFIGURATIONS = "/podnet/bgpconfigurations/"  # default: AS number, mesh or route reflectors
SECRETS = "/podnet/secrets/"                 # <namespace>/<name>: Secret (data base64, as the API has it)
INGRESSES = "/podnet/ingresses/"             # <namespace>/<name>: Ingress (status written by the controller)
INGRESS_CLASSES = "/podnet/ingressclasses/"  # <name>: IngressClass (cluster-scoped)

# IPAM of the routed mode (Calico's model, podnet.ipam.blocks)
IPAM_BLOCKS = "/podnet/ipam/blocks/"          # <a.b.c.d>-<len>: a block, its owner (affinity) and allocations
IPAM_AFFINITIES = "/podnet/ipam/affinities/"  # <node>/<a.b.c.d>-<len>: index of the blocks a node owns
IPAM_HANDLES = "/podnet/ipam/handles/"        # <handle>: the address one attachment holds (to release it)
IPAM_BORROWED = "/podnet/ipam/borrowed/"      # <a.b.c.d>: an address a node took from another node's block
