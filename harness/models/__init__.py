"""Exact Kubernetes models (pure functions, no I/O): HPA, kubelet probes, topology spread."""
