"""The cluster's controllers (what kube-controller-manager runs), in one process that holds a
leader lease so that exactly one instance acts: EndpointSlices from Services and Ready pods,
and Deployments' replicas. (Per-node work is the agent's, in podnet.agent.)"""
