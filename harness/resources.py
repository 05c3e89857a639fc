"""Where gauntlet's packaged data lives: profiles, manifests, the kind config, experiments.

The data stays in the repository's top-level folders (`scenarios/profiles`,
`scenarios/experiments`, `manifests/`); the package `harness.data` links to them
(`harness/data/profiles`, `experiments`, `manifests` are relative symlinks), so an editable
install reads them in place and a wheel carries copies with the same layout. Everything here
goes through `importlib.resources` (never `__file__` or the working directory), so it works the
same from a checkout, an editable install and an installed wheel.

Kustomize, kubectl and chaostoolkit need real files and directories, so every function returns
a resolved `pathlib.Path` that exists on disk; an install whose data is not on the filesystem
(a zipped import) raises `ResourceError` rather than handing out a path that does not work.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from harness.errors import SetupError

DATA_PACKAGE = "harness.data"
DEFAULT_OVERLAY = "local"
"""The overlay `certify` and game days deploy when no `--manifests` is given."""


class ResourceError(SetupError):
    """Packaged data is missing or is not on the filesystem (a broken or zipped install)."""


def _data(folder: str) -> Path:
    """The real directory `harness/data/<folder>`, symlinks resolved."""
    root = resources.files(DATA_PACKAGE)
    if not isinstance(root, Path):
        raise ResourceError(
            f"gauntlet's packaged data is not on the filesystem ({root!r}); kustomize needs "
            "real directories: install gauntlet unzipped (pip install gauntlet, or -e .)"
        )
    path = (root / folder).resolve()
    if not path.is_dir():
        raise ResourceError(
            f"packaged data folder {folder!r} is missing: {path} (a wheel built without its "
            "data, or a checkout whose harness/data symlinks were not kept)"
        )
    return path


def _existing(path: Path, what: str) -> Path:
    if not path.exists():
        raise ResourceError(f"{what} not found in the installed package: {path}")
    return path


def profiles_dir() -> Path:
    """Folder of the bundled SLO profiles (`<name>.yaml`)."""
    return _data("profiles")


def traces_dir() -> Path:
    """Folder of the bundled synthetic trace samples (Azure CSV, Mooncake JSONL)."""
    return _data("traces")


def profile_names() -> list[str]:
    """Names of the bundled profiles, sorted (`local`, `seed`, ...)."""
    return sorted(p.stem for p in profiles_dir().glob("*.yaml"))


def profile_file(name: str) -> Path:
    """The bundled profile `name` (without `.yaml`); `ResourceError` if there is none."""
    return _existing(profiles_dir() / f"{name}.yaml", f"profile {name!r}")


def manifests_dir() -> Path:
    """Root of the bundled manifests: `base/`, `overlays/<name>/`, `broken/<name>/`, `kind/`."""
    return _data("manifests")


def overlay_dir(name: str) -> Path:
    """A bundled kustomize overlay, `overlays/<name>` (`local`, `kind`, `gpu`, `istio`)."""
    return _existing(manifests_dir() / "overlays" / name, f"manifest overlay {name!r}")


def default_manifests() -> Path:
    """The overlay deployed when the user names none: `overlays/local`."""
    return overlay_dir(DEFAULT_OVERLAY)


def broken_manifests_dir() -> Path:
    """Folder of the deliberately broken variants (`broken/<name>/`) that `check` must reject."""
    return _existing(manifests_dir() / "broken", "broken manifests")


def kind_cluster_config() -> Path:
    """The kind cluster definition (`kind/cluster.yaml`): zones, node labels, port mappings."""
    return _existing(manifests_dir() / "kind" / "cluster.yaml", "kind cluster config")


def experiments_dir() -> Path:
    """Folder of the bundled chaostoolkit experiments (game days, `<name>.json`)."""
    return _data("experiments")


def experiment_names() -> list[str]:
    """Names of the bundled experiments, sorted (`replica-kill`, `zone-outage`, ...)."""
    return sorted(p.stem for p in experiments_dir().glob("*.json"))


def experiment_file(name: str) -> Path:
    """The bundled experiment `name` (without `.json`); `ResourceError` if there is none."""
    return _existing(experiments_dir() / f"{name}.json", f"experiment {name!r}")


def source_checkout() -> Path | None:
    """The source tree gauntlet runs from (an editable install or a checkout on sys.path), or
    None for an installed wheel: the folder above the `harness` package, when it holds the
    gauntlet `pyproject.toml`. For provenance (git commit) and image builds, never for data."""
    package = resources.files("harness")
    if not isinstance(package, Path):
        return None
    root = package.resolve().parent
    try:
        project = tomllib.loads((root / "pyproject.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return root if project.get("project", {}).get("name") == "gauntlet" else None
