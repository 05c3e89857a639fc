"""nox sessions: the CI and release entry points. Each installs the project from pyproject.toml.

Reuse an already-built environment with `nox -R` (reuse + no install) or run them in the
project venv without nox's own virtualenvs: `nox --no-venv -s tests` (after `./run tests`).
"""

from __future__ import annotations

import json
from pathlib import Path

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
    paths = (
        "harness",
        "reference_service",
        "tests",
        "scenarios",
        "benchmarks",
        "noxfile.py",
        "scripts",
    )
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)
    session.run("mypy")


@nox.session
def certify(session: nox.Session) -> None:
    """Certify the good manifests on the embedded local backend with the `local` profile."""
    _install(session)
    session.run("gauntlet", "certify", *session.posargs)


@nox.session
def certify_vllm(session: nox.Session) -> None:
    """Certify vLLM's CPU build (all six scenarios, manifests/vllm/local, profile vllm-local) on
    the local backend; the first run provisions vLLM's environment (~100 s, 3.4 GB, cached)."""
    _install(session)
    session.run(
        "gauntlet", "certify", "--manifests", "manifests/vllm/local", "--profile", "vllm-local",
        *session.posargs,
    )  # fmt: skip


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
    session.run("gauntlet", "gameday", "scenarios/experiments/zone-outage.json", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Speed targets as ratios against baselines measured in the same run (reports/bench/)."""
    _install(session)
    for script in ("bench_service", "bench_load", "bench_proxy", "bench_models"):
        session.run("python", f"benchmarks/{script}.py", *session.posargs)
    session.run("python", "benchmarks/bench_load.py", "--stream", *session.posargs)


@nox.session
def image(session: nox.Session) -> None:
    """Build the reference image and smoke-test it under a memory limit (needs a Docker engine)."""
    session.run("bash", "scripts/image_smoke.sh", *session.posargs, external=True)


@nox.session
def gpu(session: nox.Session) -> None:
    """One short GPU check (tiny model on CUDA, 200 requests); skipped with a reason without
    CUDA."""
    _install(session)
    session.run("python", "scripts/gpu_check.py", *session.posargs)


_WHEEL_PROBE = """if True:
    import json, sysconfig
    from pathlib import Path
    from harness import resources as r
    from harness.manifests.render import render
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    paths = {"profile": r.profile_file("seed"), "manifests": r.default_manifests(),
             "kind": r.kind_cluster_config(), "experiment": r.experiment_file("zone-outage")}
    for p in paths.values():
        assert p.is_relative_to(site), f"{p} is not the wheel's own file (under {site})"
    assert r.source_checkout() is None, r.source_checkout()
    Path("local.yaml").write_text(render(r.default_manifests()).to_yaml())
    print(json.dumps({k: str(v) for k, v in paths.items()}))
"""


@nox.session(reuse_venv=False)
def wheel(session: nox.Session) -> None:
    """Build the wheel, install it with its dependencies into a fresh venv and run the CLI from
    an empty directory, far from the checkout. `nox -s wheel -- certify` also runs
    `gauntlet certify --only cold-start` (deploys on the local backend: minutes)."""
    tmp = Path(session.create_tmp()).resolve()
    dist = tmp / "dist"
    for old in dist.glob("*.whl"):
        old.unlink()
    session.run("python", "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), ".")
    (built,) = dist.glob("gauntlet-*.whl")
    session.install(str(built))
    empty = tmp / "empty"
    empty.mkdir(exist_ok=True)
    with session.chdir(empty):
        session.run("gauntlet", "--version")
        out = session.run("python", "-c", _WHEEL_PROBE, silent=True)
        paths = json.loads(str(out).strip().splitlines()[-1])
        session.log(f"packaged data: {paths}")
        # seed is the GPU production profile: exit 1 (findings) is an answer, 2 is bad input
        session.run("gauntlet", "check", "--profile", "seed", "--manifests", "local.yaml",
                    success_codes=[0, 1])  # fmt: skip
        session.run("gauntlet", "check", "--profile", "local", "--manifests", paths["manifests"])
        session.run("gauntlet", "gameday", paths["experiment"], "--dry-run")
        if "certify" in session.posargs:
            session.run("gauntlet", "certify", "--only", "cold-start", "--out", str(tmp / "run"))
