"""Gauntlet: testing and chaos-validation harness for GPU inference services on Kubernetes."""

__version__ = "0.1.0"
