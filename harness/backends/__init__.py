"""Backends: where a deployment runs. `get_backend` imports only the one asked for."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from harness.backends.base import Backend, BackendError
from harness.errors import InputError

BACKENDS: dict[str, str] = {
    "local": "harness.backends.local:LocalBackend",
    "kube": "harness.backends.kube:KubeBackend",
    "kind": "harness.backends.kind:KindBackend",
}


def get_backend(name: str, workdir: Path, **options: Any) -> Backend:
    """Make an un-deployed backend by name ('local', 'kube', 'kind')."""
    target = BACKENDS.get(name)
    if target is None:
        raise InputError(f"unknown backend {name!r}", field="backend", fix=f"use one of {sorted(BACKENDS)}")
    module_name, attr = target.split(":")
    module = importlib.import_module(module_name)
    cls = getattr(module, attr)
    return cls(Path(workdir), **options)


__all__ = ["BACKENDS", "Backend", "BackendError", "get_backend"]
