"""The scenario suites on the run engine: `pytest scenarios/ --gauntlet-backend local ...`.

The same inputs as `gauntlet certify` (options prefixed `--gauntlet-`) and the same engine
(`harness.run`), so the same run directory: report.json rewritten after every scenario,
junit.xml, report.html and certify.log at the end of the session, an interrupted session marked
so. Every `scenarios/test_<scenario>.py` holds two tests:

- `test_scenario` runs the scenario and passes on a pass verdict, is skipped on a skip (with the
  reason) and fails otherwise (fail, inconclusive, error);
- `test_check[<check>]`, one per check the scenario declares (`CHECKS` in its module), so a CI
  page names the check that failed: it passes when the check met its target, fails when it
  missed it, and is skipped when it was inconclusive or not evaluated (the scenario stopped
  before it, was skipped, or ended in error), with the reason.

A scenario runs once per session, by whichever of its tests comes first.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from harness.backends import BACKENDS, RUNTIMES
from harness.errors import InputError, SetupError
from harness.report.schema import ScenarioResult
from harness.run import evidence
from harness.run.engine import Run, SignalGuard
from harness.run.options import CertifyOptions, prepare, resolve_scenarios
from harness.scenarios import base as scenarios_base

_RUN = pytest.StashKey[Run]()
_SELECTED = pytest.StashKey[list[str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup(
        "gauntlet", "Gauntlet certification scenarios (the options of `gauntlet certify`)"
    )
    g.addoption(
        "--gauntlet-backend",
        choices=list(BACKENDS),
        default="local",
        help="where the deployment runs",
    )
    g.addoption("--gauntlet-context", default=None, help="kubeconfig context (kube backend)")
    g.addoption(
        "--gauntlet-allow-context",
        action="append",
        default=[],
        help="allow this context (repeatable)",
    )
    g.addoption("--gauntlet-profile", default="local", help="SLO profile name or YAML file")
    g.addoption(
        "--gauntlet-manifests",
        default=None,
        help="kustomize dir or YAML file (default: the packaged overlays/local)",
    )
    g.addoption("--gauntlet-out", default=None, help="run directory (default: reports/<run-id>/)")
    g.addoption(
        "--gauntlet-only",
        action="append",
        default=[],
        help="run only these scenarios (repeatable or comma-separated)",
    )
    g.addoption(
        "--gauntlet-runtime",
        choices=list(RUNTIMES),
        default="process",
        help="local backend runtime",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "scenario(name): the certification scenario this test runs")


def scenario_of(item: pytest.Item | pytest.Module) -> str | None:
    """The scenario a test runs: its `scenario` marker, else its file (test_cold_start.py)."""
    marker = item.get_closest_marker("scenario")
    if marker and marker.args:
        return str(marker.args[0])
    name = Path(str(item.path)).stem.removeprefix("test_").replace("_", "-")
    return name if name in scenarios_base.SCENARIOS else None


def declared_checks(scenario: str) -> tuple[str, ...]:
    """The check names the scenario's module declares (`CHECKS`)."""
    module = importlib.import_module(scenarios_base.SCENARIOS[scenario].split(":")[0])
    checks: tuple[str, ...] = module.CHECKS
    return checks


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "gauntlet_check" in metafunc.fixturenames:
        scenario = scenario_of(metafunc.definition)
        if scenario is None:
            raise pytest.UsageError(
                f"{metafunc.definition.nodeid}: no scenario (name the file "
                "test_<scenario>.py or mark it @pytest.mark.scenario(name))"
            )
        checks = declared_checks(scenario)
        metafunc.parametrize("gauntlet_check", checks, ids=list(checks))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    only = config.getoption("--gauntlet-only")
    try:
        wanted = set(resolve_scenarios(only)) if only else None
    except InputError as err:
        pytest.exit(f"error: {err}", returncode=2)
    order = {name: i for i, name in enumerate(scenarios_base.SCENARIOS)}
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        name = scenario_of(item)
        (drop if wanted is not None and name is not None and name not in wanted else keep).append(
            item
        )
    if drop:
        config.hook.pytest_deselected(items=drop)
    # cold-start feeds probe-timing
    keep.sort(key=lambda it: order.get(scenario_of(it) or "", len(order)))
    items[:] = keep
    config.stash[_SELECTED] = list(dict.fromkeys(n for it in keep if (n := scenario_of(it))))


@pytest.fixture(scope="session")
def gauntlet_run(request: pytest.FixtureRequest) -> Run:
    """The session's run: its inputs checked once, its report written at the session's end."""
    config = request.config
    out = config.getoption("--gauntlet-out")
    opts = CertifyOptions(
        backend=config.getoption("--gauntlet-backend"),
        context=config.getoption("--gauntlet-context"),
        allow_contexts=config.getoption("--gauntlet-allow-context"),
        profile=config.getoption("--gauntlet-profile"),
        manifests=config.getoption("--gauntlet-manifests"),
        only=config.getoption("--gauntlet-only"),
        out=Path(out) if out else None,
        runtime=config.getoption("--gauntlet-runtime"),
    )
    try:
        prep = prepare(opts)
    except SetupError as err:
        pytest.skip(f"backend {opts.backend} unavailable: {err}")
    except InputError as err:
        pytest.exit(f"error: {err}", returncode=2)
    prep.scenarios = config.stash.get(_SELECTED, prep.scenarios) or prep.scenarios
    run = Run(prep, command=["pytest", *config.invocation_params.args], echo=print)  # captured
    run.start()
    config.stash[_RUN] = run
    return run


class ScenarioTest:
    """One scenario of the session's run, as the tests of its file see it."""

    def __init__(self, run: Run, name: str) -> None:
        self.run = run
        self.name = name

    def result(self) -> ScenarioResult:
        """Its result, running it through the engine the first time (SIGTERM = Ctrl-C meanwhile)."""
        done = self.run.report.scenario(self.name)
        if done is not None:
            return done
        with SignalGuard(print):
            return self.run.run_scenario(self.name)

    def verdict(self) -> None:
        r = self.result()
        if r.verdict == "skip":
            pytest.skip(r.reason)
        if r.verdict != "pass":
            failing = [
                f"  {c.name} ({c.outcome}): measured {c.measured}{c.unit} "
                f"vs target {c.target}{c.unit}" + (f"; {c.note}" if c.note else "")
                for c in r.checks
                if not c.ok and not c.skipped
            ]
            pytest.fail(
                "\n".join([f"{self.name} {r.verdict}: {r.reason}", *failing]), pytrace=False
            )

    def check(self, check: str) -> None:
        r = self.result()
        c = next((c for c in r.checks if c.name == check), None)
        if c is None:  # the scenario stopped before it, or this run's path does not have it
            why = {"skip": "the scenario was skipped", "error": "the scenario ended in error"}.get(
                r.verdict, f"not among the checks of this {r.verdict} verdict"
            )
            pytest.skip(f"not evaluated: {why} ({r.reason})")
        line = f"measured {c.measured}{c.unit} vs target {c.target}{c.unit}" + (
            f"; {c.note}" if c.note else ""
        )
        if c.skipped:
            pytest.skip(f"skipped: {c.skipped}")
        if c.inconclusive:
            pytest.skip(f"inconclusive: {c.note or line}")
        if not c.ok:
            pytest.fail(f"{self.name} {check}: {line}", pytrace=False)


@pytest.fixture
def gauntlet_scenario(gauntlet_run: Run, request: pytest.FixtureRequest) -> ScenarioTest:
    """The scenario of the requesting test's file (or its `scenario` marker)."""
    name = scenario_of(request.node)
    if name is None:
        raise InputError(
            f"{request.node.nodeid}: no scenario",
            fix="name the file test_<scenario>.py "
            f"(one of {', '.join(scenarios_base.SCENARIOS)}) "
            "or mark it @pytest.mark.scenario(name)",
        )
    return ScenarioTest(gauntlet_run, name)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    run = session.config.stash.get(_RUN, None)
    if run is None:
        return
    run.close(interrupted=exitstatus == pytest.ExitCode.INTERRUPTED)
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        tr.write_line(f"gauntlet report: {run.run_dir / evidence.HTML}")
