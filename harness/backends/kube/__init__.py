"""Kubernetes backend: any cluster through an explicitly allowed kube context."""

from harness.backends.kube.backend import RUN_ID_LABEL, KubeBackend
from harness.backends.kube.safety import ChaosNotAllowedError, ContextNotAllowedError

__all__ = ["RUN_ID_LABEL", "ChaosNotAllowedError", "ContextNotAllowedError", "KubeBackend"]
