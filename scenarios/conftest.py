"""pytest options and fixtures for the scenario suites (`pytest scenarios/ --backend local ...`).

The same inputs as `gauntlet certify`, the same report: verdicts recorded with `record_verdict`
are written to `<out>/report.json`, `junit.xml` and `report.html` at the end of the session
(report.json also after every verdict, so an interrupted session leaves a partial report).
A scenario test passes iff its verdict passes; skip -> pytest.skip(reason); fail, inconclusive
and error -> pytest.fail(reason).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness.certify import (
    BACKENDS,
    RUNTIMES,
    CertifyOptions,
    Prepared,
    new_report,
    prepare,
    resolve_scenarios,
)
from harness.errors import InputError, SetupError
from harness.report import write_outputs
from harness.report.schema import Report, ScenarioResult
from harness.scenarios import base as scenarios_base
from harness.scenarios.base import ScenarioContext, run_scenario
from harness.verdict import Verdict

_SESSION = pytest.StashKey["_CertifySession"]()
_SELECTED = pytest.StashKey[list[str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("gauntlet", "Gauntlet certification scenarios")
    g.addoption("--backend", choices=BACKENDS, default="local", help="where the deployment runs")
    g.addoption("--context", default=None, help="kubeconfig context (kube backend)")
    g.addoption("--allow-context", action="append", default=[], help="allow this context (repeatable)")
    g.addoption("--profile", default="local", help="SLO profile name or YAML file")
    g.addoption("--manifests", default=None, help="kustomize dir or YAML file (default: manifests/overlays/local)")
    g.addoption("--out", default=None, help="run directory (default: reports/<run-id>/)")
    g.addoption("--only", action="append", default=[], help="run only these scenarios (repeatable)")
    g.addoption("--runtime", choices=RUNTIMES, default="process", help="local backend runtime")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "scenario(name): the certification scenario this test runs")


def scenario_of(item: pytest.Item) -> str | None:
    """The scenario a test runs: its `scenario` marker, else its file (test_cold_start.py)."""
    marker = item.get_closest_marker("scenario")
    if marker and marker.args:
        return str(marker.args[0])
    stem = Path(str(item.fspath)).stem
    name = stem.removeprefix("test_").replace("_", "-")
    return name if name in scenarios_base.SCENARIOS else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    only = config.getoption("--only")
    wanted = set(resolve_scenarios(only)) if only else None
    order = {name: i for i, name in enumerate(scenarios_base.SCENARIOS)}
    keep, drop = [], []
    for item in items:
        name = scenario_of(item)
        (drop if wanted is not None and name is not None and name not in wanted else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
    keep.sort(key=lambda it: order.get(scenario_of(it) or "", len(order)))  # cold-start feeds probe-timing
    items[:] = keep
    config.stash[_SELECTED] = list(dict.fromkeys(n for it in keep if (n := scenario_of(it))))


@dataclass
class _CertifySession:
    prep: Prepared
    report: Report
    measured: dict = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)

    def save(self) -> None:
        self.report.finished_at = time.time()
        self.report.finalize().write(self.prep.run_dir / "report.json")


@pytest.fixture(scope="session")
def certify_session(request: pytest.FixtureRequest) -> _CertifySession:
    config = request.config
    opts = CertifyOptions(
        backend=config.getoption("--backend"), context=config.getoption("--context"),
        allow_contexts=config.getoption("--allow-context"), profile=config.getoption("--profile"),
        manifests=config.getoption("--manifests"), only=config.getoption("--only"),
        out=Path(config.getoption("--out")) if config.getoption("--out") else None,
        runtime=config.getoption("--runtime"),
    )
    try:
        prep = prepare(opts)
    except SetupError as err:
        pytest.skip(f"backend {opts.backend} unavailable: {err}")
    except InputError as err:
        pytest.exit(f"error: {err}", returncode=2)
    prep.scenarios = config.stash.get(_SELECTED, prep.scenarios) or prep.scenarios
    session = _CertifySession(prep, new_report(prep, ["pytest", *config.invocation_params.args]))
    session.save()
    config.stash[_SESSION] = session
    return session


@pytest.fixture
def scenario_ctx(certify_session: _CertifySession) -> Callable[[str], ScenarioContext]:
    """scenario_ctx("cold-start") -> a ScenarioContext whose evidence goes to <out>/cold-start/."""

    def make(name: str) -> ScenarioContext:
        if name not in scenarios_base.SCENARIOS:
            raise InputError(f"unknown scenario {name!r}", fix=f"use one of {', '.join(scenarios_base.SCENARIOS)}")
        prep = certify_session.prep
        out_dir = prep.run_dir / name
        out_dir.mkdir(parents=True, exist_ok=True)
        log_path = prep.run_dir / "certify.log"

        def log(message: str) -> None:
            line = f"{datetime.now(UTC).strftime('%H:%M:%S')} [{name}] {message}"
            with log_path.open("a") as f:
                f.write(line + "\n")
            print(line)  # captured by pytest, shown on failure

        certify_session.started.setdefault(name, time.time())
        return ScenarioContext(
            profile=prep.profile, bundle=prep.bundle.copy(), backend_factory=prep.backend_factory,
            backend_name=prep.backend.name, out_dir=out_dir, measured=certify_session.measured, log=log,
        )

    return make


@pytest.fixture
def record_verdict(certify_session: _CertifySession) -> Callable[[Verdict], None]:
    """Store a verdict in the report, then pass / pytest.skip / pytest.fail on it."""

    def record(verdict: Verdict) -> None:
        started = certify_session.started.get(verdict.name)
        result = ScenarioResult.from_verdict(verdict, started, time.time())
        scenarios = certify_session.report.scenarios
        scenarios[:] = [s for s in scenarios if s.name != result.name] + [result]
        certify_session.save()
        if verdict.status == "skip":
            pytest.skip(verdict.reason)
        if verdict.status != "pass":
            pytest.fail(f"{verdict.name} {verdict.status}: {verdict.reason}", pytrace=False)

    return record


@pytest.fixture
def certify_scenario(
    scenario_ctx: Callable[[str], ScenarioContext], record_verdict: Callable[[Verdict], None]
) -> Callable[[str], Verdict]:
    """The whole test in one call: certify_scenario("hpa") runs it (errors become verdicts) and records."""

    def run(name: str) -> Verdict:
        verdict = run_scenario(name, scenario_ctx(name))
        record_verdict(verdict)
        return verdict

    return run


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    cs = session.config.stash.get(_SESSION, None)
    if cs is None:
        return
    done = {s.name for s in cs.report.scenarios}
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        cs.report.interrupted = True
        cs.report.not_run = [n for n in cs.prep.scenarios if n not in done]
        cs.report.interrupted_during = cs.report.not_run[0] if cs.report.not_run else None
    cs.report.requested = [n for n in cs.prep.scenarios if n in done or cs.report.interrupted]
    cs.save()
    write_outputs(cs.report, cs.prep.run_dir)
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        tr.write_line(f"gauntlet report: {cs.prep.run_dir / 'report.html'}")
