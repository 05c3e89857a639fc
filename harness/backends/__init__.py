"""Backends: where a deployment runs. `get_backend` imports only the one asked for.

Each backend declares the options it takes from the profile and the command line in its own
module (`BACKEND_OPTIONS`); `backend_options` validates the shared flags and dispatches to it.
"""

from __future__ import annotations

import contextlib
import importlib
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from harness.backends.base import Backend, BackendError, ClusterProvisioner, RolloutRestarter
from harness.errors import InputError, SetupError

if TYPE_CHECKING:
    from harness.profile import Profile

BACKENDS: dict[str, str] = {
    "local": "harness.backends.local:LocalBackend",
    "kind": "harness.backends.kind:KindBackend",
    "kube": "harness.backends.kube:KubeBackend",
}

#: Each backend's declaration of its options: module:function with the `OptionsDeclaration`
#: signature.
BACKEND_OPTIONS: dict[str, str] = {
    "local": "harness.backends.local.options:options",
    "kind": "harness.backends.kind:options",
    "kube": "harness.backends.kube.options:options",
}

#: The packaged overlay (`manifests/overlays/<name>`) a backend deploys when the user names no
#: manifests; any other backend gets `harness.resources.default_manifests()` (overlays/local).
#: kind's pods cannot use local's hostPath model folder: overlays/kind runs the model the image
#: bakes in.
DEFAULT_OVERLAYS: dict[str, str] = {"kind": "kind"}

#: How the local backend runs a replica (a process from the container spec, or a docker container).
#: Checked for every backend, as the command line offers `--runtime` whatever the backend.
RUNTIMES: tuple[str, ...] = ("process", "docker")


class OptionsDeclaration(Protocol):
    """What a backend module's `options` function looks like."""

    def __call__(
        self, profile: Profile, *, context: str | None, allow_contexts: list[str], runtime: str
    ) -> dict[str, Any]: ...


def _load(target: str) -> Any:
    module_name, attr = target.split(":")
    return getattr(importlib.import_module(module_name), attr)


def backend_options(
    name: str, profile: Profile, *, context: str | None, allow_contexts: list[str], runtime: str
) -> dict[str, Any]:
    """The keyword arguments `get_backend(name, workdir, **options)` takes for this profile and
    these flags.

    InputError (field names are the CLI flags): an unknown backend (--backend) or runtime
    (--runtime); then the backend's own: --context with local or kind, kube without --context.
    kube's allowed contexts are the profile's `kube.allowed_contexts` then `allow_contexts`.
    Imports only the asked backend's options module.
    """
    target = BACKEND_OPTIONS.get(name)
    if target is None:
        raise InputError(
            f"unknown backend {name!r}", field="--backend", fix=f"use one of {', '.join(BACKENDS)}"
        )
    if runtime not in RUNTIMES:
        raise InputError(
            f"unknown runtime {runtime!r}",
            field="--runtime",
            fix=f"use one of {', '.join(RUNTIMES)}",
        )
    declare: OptionsDeclaration = _load(target)
    return declare(profile, context=context, allow_contexts=list(allow_contexts), runtime=runtime)


def default_manifests(name: str) -> Path:
    """The manifests backend `name` deploys when none are given (`DEFAULT_OVERLAYS`)."""
    from harness import resources

    overlay = DEFAULT_OVERLAYS.get(name)
    return resources.overlay_dir(overlay) if overlay else resources.default_manifests()


def backend_class(name: str) -> type[Backend]:
    """The class of backend `name` (its module imported, nothing built)."""
    target = BACKENDS.get(name)
    if target is None:
        raise InputError(
            f"unknown backend {name!r}", field="backend", fix=f"use one of {sorted(BACKENDS)}"
        )
    cls: type[Backend] = _load(target)
    return cls


def get_backend(name: str, workdir: Path, **options: Any) -> Backend:
    """Make an un-deployed backend by name ('local', 'kube', 'kind')."""
    return backend_class(name)(Path(workdir), **options)


def preflight(name: str, factory: Callable[[Path], Backend], workdir: Path) -> bool:
    """Fail before any scenario runs (bad context, missing runtime...): build, never deploy, one
    backend with `factory` in `workdir` (removed after), and say whether it enforces memory limits.

    A `ClusterProvisioner` (kind) is not built -- that would create a cluster -- only its
    prerequisites are checked, and its class says whether it enforces limits. InputError and
    SetupError pass through; any other failure to build is a SetupError.
    """
    cls = backend_class(name)
    if issubclass(cls, ClusterProvisioner):
        cls.check_prerequisites()
        return bool(cls.limits_enforced)
    try:
        backend = factory(workdir)
    except (InputError, SetupError):
        raise
    except Exception as err:
        raise SetupError(f"backend could not start: {type(err).__name__}: {err}") from err
    try:
        return backend.limits_enforced
    finally:
        with contextlib.suppress(Exception):
            backend.teardown()
        shutil.rmtree(workdir, ignore_errors=True)


def close_run() -> None:
    """The run's end: release what its backends shared (the kind cluster: deleted unless kept).
    Imports nothing a run did not load; SetupError/BackendError say what could not be deleted."""
    kind_cluster = sys.modules.get("harness.backends.kind_cluster")
    if kind_cluster is not None:
        kind_cluster.close_clusters()


__all__ = [
    "BACKENDS",
    "BACKEND_OPTIONS",
    "DEFAULT_OVERLAYS",
    "RUNTIMES",
    "Backend",
    "BackendError",
    "ClusterProvisioner",
    "OptionsDeclaration",
    "RolloutRestarter",
    "backend_class",
    "backend_options",
    "close_run",
    "default_manifests",
    "get_backend",
    "preflight",
]
