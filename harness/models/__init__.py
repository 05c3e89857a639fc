"""Exact Kubernetes models (pure, no I/O), laid out like upstream: `hpa` (pkg/controller/
podautoscaler), `scheduler` (pkg/scheduler), `prober` (pkg/kubelet/prober), `intstr`
(apimachinery util/intstr). See docs/models.md for the file-by-file map."""
