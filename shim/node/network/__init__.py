"""The node's networking: pod network namespaces and CNI (cni.py)."""
