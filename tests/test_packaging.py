"""The wheel carries gauntlet's data, and `harness.resources` finds it wherever gauntlet runs.

Fast version of `nox -s wheel` (which installs the wheel with its dependencies into a fresh
venv and runs the CLI): build the wheel from a copy of the source tree, list the archive, then
import the wheel's own files (installed with --target, no dependencies) from an empty folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import resources

ROOT = Path(__file__).resolve().parents[1]
# top-level folders a wheel build never needs (and `models` would be large)
_SKIP_AT_ROOT = {".git", ".venv", ".nox", "build", "dist", "reports", "models", ".gl", ".cache"}
_SKIP_ANYWHERE = {"__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis"}


def _ignore(folder: str, names: list[str]) -> set[str]:
    at_root = Path(folder).resolve() == ROOT
    return {
        n
        for n in names
        if n in _SKIP_ANYWHERE or n.endswith(".egg-info") or (at_root and n in _SKIP_AT_ROOT)
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A wheel built from a copy of the tree (the checkout gets no build/ or egg-info)."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=_ignore)
    out = base / "dist"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-cache-dir", "-q", "-w", str(out), str(src)],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (whl,) = out.glob("gauntlet-*.whl")
    yield whl


@pytest.fixture(scope="module")
def names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as zf:
        return set(zf.namelist())


def _files(folder: Path, *patterns: str) -> list[Path]:
    found = sorted({p for pat in patterns for p in folder.glob(pat) if p.is_file()})
    assert found, f"nothing matches {patterns} in {folder}"
    return found


def test_wheel_carries_profiles_manifests_experiments(names: set[str]) -> None:
    data = "harness/data"
    for path in _files(ROOT / "scenarios" / "profiles", "*.yaml"):
        assert f"{data}/profiles/{path.name}" in names
    for path in _files(ROOT / "scenarios" / "experiments", "*.json"):
        assert f"{data}/experiments/{path.name}" in names
    for path in _files(ROOT / "scenarios" / "traces", "*.csv", "*.jsonl", "*.md"):
        assert f"{data}/traces/{path.name}" in names
    for path in _files(ROOT / "manifests", "**/*.yaml", "*.md"):
        assert f"{data}/manifests/{path.relative_to(ROOT / 'manifests').as_posix()}" in names
    for sub in ("base", "overlays/local", "overlays/kind", "broken/no-readiness", "kind"):
        assert any(n.startswith(f"{data}/manifests/{sub}/") for n in names), sub


def test_wheel_carries_templates_code_and_license(names: set[str]) -> None:
    for path in _files(ROOT / "harness" / "report" / "templates", "*.j2"):
        assert f"harness/report/templates/{path.name}" in names
    assert "harness/py.typed" in names
    assert "reference_service/Dockerfile" in names
    for package in ("harness", "reference_service"):
        for path in _files(ROOT / package, "**/*.py"):
            rel = path.relative_to(ROOT).as_posix()
            if "/data/" not in rel or rel == "harness/data/__init__.py":
                assert rel in names, f"{rel} missing from the wheel"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert entry_points


def test_wheel_has_no_tests_or_checkout_files(names: set[str]) -> None:
    tops = {n.split("/", 1)[0] for n in names}
    assert tops <= {"harness", "reference_service"} | {n for n in tops if n.endswith(".dist-info")}
    assert not any(n.endswith((".pyc", "conftest.py")) or "/test_" in n for n in names)


def test_installed_wheel_reads_its_own_data(wheel: Path, tmp_path: Path) -> None:
    """The wheel's files alone, from an empty folder: the checkout is nowhere on the path."""
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile",
         "--target", str(site), str(wheel)],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    empty = tmp_path / "empty"
    empty.mkdir()
    probe = """if True:
        import json, harness
        from harness import resources as r
        from harness.profile import available_profiles, load_profile
        print(json.dumps({
            "harness": harness.__file__,
            "profiles": available_profiles(),
            "seed": load_profile("seed").source,
            "manifests": str(r.default_manifests()),
            "kustomization": (r.default_manifests() / "kustomization.yaml").is_file(),
            "base": (r.manifests_dir() / "base" / "deployment.yaml").is_file(),
            "kind": str(r.kind_cluster_config()),
            "experiments": r.experiment_names(),
            "zone_outage": r.experiment_file("zone-outage").is_file(),
            "checkout": r.source_checkout(),
        }))
    """
    # PYTHONPATH puts the wheel's copy first: the editable install's finder only answers
    # for names the path does not have
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run(
        [sys.executable, "-c", probe], cwd=empty, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout)
    assert Path(got["harness"]).is_relative_to(site)
    for key in ("seed", "manifests", "kind"):
        assert Path(got[key]).is_relative_to(site.resolve()), (key, got[key])
    assert {"local", "seed"} <= set(got["profiles"])
    assert got["kustomization"] and got["base"] and got["zone_outage"]
    assert "zone-outage" in got["experiments"]
    assert got["checkout"] is None


def test_editable_install_resources_are_the_checkout() -> None:
    assert resources.profiles_dir() == (ROOT / "scenarios" / "profiles").resolve()
    assert resources.profile_file("seed") == (ROOT / "scenarios" / "profiles" / "seed.yaml")
    assert {"local", "seed"} <= set(resources.profile_names())
    assert resources.manifests_dir() == ROOT / "manifests"
    assert resources.default_manifests() == ROOT / "manifests" / "overlays" / "local"
    assert resources.overlay_dir("kind") == ROOT / "manifests" / "overlays" / "kind"
    assert resources.broken_manifests_dir() == ROOT / "manifests" / "broken"
    assert resources.kind_cluster_config() == ROOT / "manifests" / "kind" / "cluster.yaml"
    assert resources.experiments_dir() == ROOT / "scenarios" / "experiments"
    assert resources.traces_dir() == ROOT / "scenarios" / "traces"
    assert resources.experiment_file("zone-outage").is_file()
    assert "zone-outage" in resources.experiment_names()
    assert resources.source_checkout() == ROOT


def test_missing_resources_fail_clearly() -> None:
    with pytest.raises(resources.ResourceError, match="profile 'no-such'"):
        resources.profile_file("no-such")
    with pytest.raises(resources.ResourceError, match="experiment 'no-such'"):
        resources.experiment_file("no-such")
    with pytest.raises(resources.ResourceError, match="overlay 'no-such'"):
        resources.overlay_dir("no-such")
