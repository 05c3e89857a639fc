"""nox sessions: the CI and release entry points. Each installs the project from pyproject.toml.

Reuse an already-built environment with `nox -R` (reuse + no install) or run them in the
project venv without nox's own virtualenvs: `nox --no-venv -s tests` (after `./run tests`).
"""

from __future__ import annotations

import nox

nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]


def _install(session: nox.Session) -> None:
    if isinstance(session.virtualenv, nox.virtualenv.PassthroughEnv):
        return  # --no-venv: use the environment nox runs in
    session.install("-e", ".[dev]")


@nox.session
def tests(session: nox.Session) -> None:
    """Unit and integration tests, the self-test matrix included (same as `./run tests`)."""
    _install(session)
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint and mypy."""
    _install(session)
    session.run("ruff", "check", "harness", "reference_service", "tests", "scenarios", "benchmarks")
    session.run("mypy")


@nox.session
def certify(session: nox.Session) -> None:
    """Certify the good manifests on the embedded local backend with the `local` profile."""
    _install(session)
    session.run("gauntlet", "certify", *session.posargs)


@nox.session
def certify_kind(session: nox.Session) -> None:
    """Certify on a multi-zone kind cluster (needs Docker and kind); cluster tests included."""
    _install(session)
    session.run("python", "-m", "pytest", "-m", "cluster", "tests", *session.posargs)
    session.run("gauntlet", "certify", "--backend", "kind", *session.posargs)


@nox.session
def gameday(session: nox.Session) -> None:
    """The zone-outage chaos experiment on the local backend."""
    _install(session)
    session.run(
        "gauntlet", "gameday", "scenarios/experiments/zone-outage.json", *session.posargs
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Speed targets as ratios against baselines measured in the same run (reports/bench/)."""
    _install(session)
    for script in ("bench_service", "bench_load", "bench_proxy", "bench_models"):
        session.run("python", f"benchmarks/{script}.py", *session.posargs)


@nox.session
def image(session: nox.Session) -> None:
    """Build the reference image and smoke-test it under a memory limit (needs a Docker engine)."""
    session.run("bash", "scripts/image_smoke.sh", *session.posargs, external=True)


@nox.session
def gpu(session: nox.Session) -> None:
    """One short GPU check (tiny model on CUDA, 200 requests); skipped with a reason without CUDA."""
    _install(session)
    session.run("python", "scripts/gpu_check.py", *session.posargs)
