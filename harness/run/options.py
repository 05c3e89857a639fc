"""A run's inputs: the options of `gauntlet certify` (the pytest suites and game days take the
same), resolved and checked before anything is deployed.

`resolve_inputs` is what every entry point shares (profile, manifests, backend options and a
backend factory); `prepare` adds what a certification needs (scenarios, run id and directory, a
backend built once to fail fast).
"""

from __future__ import annotations

import secrets
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import resources
from harness.backends import (
    BACKENDS,
    RUNTIMES,
    Backend,
    backend_options,
    default_manifests,
    get_backend,
    preflight,
)
from harness.errors import InputError
from harness.manifests.bundle import ManifestBundle
from harness.manifests.render import render
from harness.profile import Profile, load_profile
from harness.report.schema import BackendInfo, ManifestsInfo
from harness.run import evidence
from harness.scenarios import base as scenarios_base
from harness.scenarios.base import BackendFactory

__all__ = [
    "BACKENDS",
    "RUNTIMES",
    "CertifyOptions",
    "Inputs",
    "Prepared",
    "prepare",
    "resolve_inputs",
]


@dataclass
class CertifyOptions:
    backend: str = "local"
    context: str | None = None
    allow_contexts: list[str] = field(default_factory=list)
    profile: str = "local"
    manifests: str | None = None  # default: the packaged overlays/local
    only: list[str] = field(default_factory=list)
    out: Path | None = None  # default: reports/<run-id>/
    runtime: str = "process"
    fail_on_skip: bool = False
    html: bool = True
    command: list[str] = field(default_factory=list)


@dataclass
class Inputs:
    """What any run deploys, where, and how: shared by certify, the pytest suites and game days."""

    profile: Profile
    bundle: ManifestBundle
    backend: BackendInfo  # name and the options get_backend receives
    manifests: ManifestsInfo
    backend_factory: BackendFactory


@dataclass
class Prepared(Inputs):
    """A certification's validated inputs: everything a ScenarioContext needs."""

    scenarios: list[str] = field(default_factory=list)
    run_id: str = ""
    run_dir: Path = Path()
    limits_enforced: bool | None = None


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def resolve_scenarios(only: list[str] | tuple[str, ...]) -> list[str]:
    """SCENARIOS order, restricted to `only` (accepts cold_start for cold-start, and commas)."""
    known = list(scenarios_base.SCENARIOS)
    if not only:
        return known
    wanted = set()
    for raw in only:
        for name in raw.split(","):
            norm = name.strip().replace("_", "-")
            if not norm:
                continue
            if norm not in known:
                raise InputError(
                    f"unknown scenario {name.strip()!r}",
                    field="--only",
                    fix=f"use one of {', '.join(known)}",
                )
            wanted.add(norm)
    return [n for n in known if n in wanted]


def resolve_manifests_path(manifests: str | Path | None, flag: str = "--manifests") -> Path:
    """The given path; none: the packaged default overlay. A relative `manifests/...` that is not
    in the working directory is read from the packaged manifests (so it works from anywhere)."""
    if not manifests:
        return resources.default_manifests()
    path = Path(manifests)
    if not path.exists() and not path.is_absolute() and path.parts[:1] == ("manifests",):
        packaged = resources.manifests_dir().joinpath(*path.parts[1:])
        if packaged.exists():
            path = packaged
    if not path.exists():
        raise InputError(
            "manifests not found",
            file=path,
            field=flag,
            fix="give a kustomize directory or a YAML file of Kubernetes objects",
        )
    return path


def load_manifests(path: Path) -> ManifestBundle:
    bundle = render(path)
    if not bundle.source:
        bundle.source = str(path)
    return bundle


def make_backend_factory(name: str, options: dict[str, Any]) -> BackendFactory:
    """workdir -> an un-deployed backend `name` built with `options`."""

    def factory(workdir: Path) -> Backend:
        return get_backend(name, workdir, **options)

    return factory


def resolve_inputs(
    backend: str,
    profile: str | Path,
    manifests: str | Path | None,
    *,
    context: str | None,
    allow_contexts: list[str],
    runtime: str,
    manifests_flag: str = "--manifests",
) -> Inputs:
    """Profile, rendered manifests (their Deployment checked), backend options: InputError now,
    naming the flag, rather than inside every scenario."""
    prof = load_profile(profile)
    # none given: the backend's default (kind: overlays/kind, which runs on kind nodes)
    path = (
        resolve_manifests_path(manifests, manifests_flag)
        if manifests
        else default_manifests(backend)
    )
    bundle = load_manifests(path)
    _ = bundle.deployment
    options = backend_options(
        backend, prof, context=context, allow_contexts=allow_contexts, runtime=runtime
    )
    return Inputs(
        profile=prof,
        bundle=bundle,
        backend=BackendInfo(name=backend, options=options),
        manifests=ManifestsInfo(
            source=str(path),
            objects=[
                f"{o.get('kind')}/{(o.get('metadata') or {}).get('name', '?')}" for o in bundle
            ],
        ),
        backend_factory=make_backend_factory(backend, options),
    )


def prepare(opts: CertifyOptions, check_backend: bool = True) -> Prepared:
    scenarios = resolve_scenarios(opts.only)
    inputs = resolve_inputs(
        opts.backend,
        opts.profile,
        opts.manifests,
        context=opts.context,
        allow_contexts=opts.allow_contexts,
        runtime=opts.runtime,
    )
    run_id = new_run_id()
    run_dir = opts.out or Path("reports") / run_id
    if (run_dir / evidence.REPORT).exists():
        raise InputError(
            "already holds a report; a new run would mix evidence with it",
            file=run_dir,
            field="--out",
            fix="choose a new or empty directory",
        )
    limits = None
    if check_backend:  # in a scratch dir: a run refused at setup leaves no empty run dir behind
        with tempfile.TemporaryDirectory(prefix="gauntlet-preflight-") as scratch:
            limits = preflight(
                opts.backend, inputs.backend_factory, Path(scratch) / evidence.BACKEND_DIR
            )
    run_dir.mkdir(parents=True, exist_ok=True)
    return Prepared(
        **vars(inputs), scenarios=scenarios, run_id=run_id, run_dir=run_dir, limits_enforced=limits
    )
