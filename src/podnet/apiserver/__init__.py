"""What the Kubernetes API server does when an object is written: allocation (ClusterIPs,
NodePorts, LoadBalancer addresses), admission (the namespace exists), defaulting and scheduling.
`podnet apply` and the lab go through it; controllers and agents only read and watch."""
