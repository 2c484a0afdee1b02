"""The lab: a multi-node cluster out of network namespaces on one machine.

    pn-<lab>-u             the underlay: a bridge every node is plugged into (and etcd, if used)
    pn-<lab>-<node>        one namespace per node, running its `podnet agent`
    pn-<lab>-p-<hash>      one namespace per pod, wired by CNI exactly as a runtime would
"""
