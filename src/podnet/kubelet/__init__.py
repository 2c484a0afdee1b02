"""The node's kubelet: Pods bound to the node become sandboxes (CNI) with supervised
containers, and their status goes back to the store."""
