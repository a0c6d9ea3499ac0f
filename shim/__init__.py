"""kubeshim: a Kubernetes-API-compatible server that runs pods on containerd."""

__version__ = "0.1.0"
KUBE_VERSION = "1.32.0"  # the Kubernetes version kubeshim reports and serves schemas of
