"""The embedded local backend: replicas as real processes (or containers) with kubelet semantics."""

from harness.backends.local.backend import LocalBackend
from harness.backends.local.cleanup import cleanup_stale

__all__ = ["LocalBackend", "cleanup_stale"]
