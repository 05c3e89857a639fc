"""One controller per file over the shared ClusterState (kube-controller-manager's role)."""
