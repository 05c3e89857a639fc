"""Rendered Kubernetes manifests: the input every backend and `check` works from."""

from harness.manifests.bundle import ManifestBundle

__all__ = ["ManifestBundle"]
