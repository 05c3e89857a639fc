"""The cluster state (the API server role) that controllers and kubelets share."""
