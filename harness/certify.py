"""`gauntlet certify`: run the scenarios against one backend and profile, and leave a report.

The runner loops over `run_scenario` in SCENARIOS order (cold-start feeds probe-timing) with a
live progress table; report.json is rewritten after every scenario, so an interrupt (Ctrl-C,
SIGTERM) or even a crash still leaves the scenarios done so far. Backends tear themselves
down through their context managers; the runner only turns the signal into KeyboardInterrupt.
"""

from __future__ import annotations

import contextlib
import importlib
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from harness import interrupts
from harness.backends.base import Backend
from harness.errors import InputError, SetupError
from harness.manifests.bundle import ManifestBundle
from harness.profile import Profile, load_profile
from harness.report import write_outputs
from harness.report.environment import collect_environment
from harness.report.schema import (
    BackendInfo,
    ManifestsInfo,
    ProfileInfo,
    Report,
    ScenarioResult,
)
from harness.report.summary import STYLE
from harness.scenarios import base as scenarios_base
from harness.scenarios.base import BackendFactory, ScenarioContext

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MANIFESTS = "manifests/overlays/local"
BACKENDS = ("local", "kind", "kube")
RUNTIMES = ("process", "docker")
#: exit codes (docs/certify.md): 3 = nothing failed but something could not be observed;
#: 4 = every scenario was skipped, nothing was measured; 130 = interrupted (SIGINT/SIGTERM)
EXIT_PASS, EXIT_FAIL, EXIT_INPUT, EXIT_INCONCLUSIVE, EXIT_NOTHING_MEASURED, EXIT_INTERRUPTED = (
    0, 1, 2, 3, 4, 130)


@dataclass
class CertifyOptions:
    backend: str = "local"
    context: str | None = None
    allow_contexts: list[str] = field(default_factory=list)
    profile: str = "local"
    manifests: str | None = None
    only: list[str] = field(default_factory=list)
    out: Path | None = None
    runtime: str = "process"
    fail_on_skip: bool = False
    html: bool = True
    command: list[str] = field(default_factory=list)


@dataclass
class Prepared:
    """Validated inputs of one run: everything a ScenarioContext needs."""

    profile: Profile
    bundle: ManifestBundle
    backend: BackendInfo
    manifests: ManifestsInfo
    backend_factory: BackendFactory
    scenarios: list[str]
    run_id: str
    run_dir: Path
    limits_enforced: bool | None = None


# inputs ------------------------------------------------------------------------------------
def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def resolve_scenarios(only: list[str] | tuple[str, ...]) -> list[str]:
    """SCENARIOS order, restricted to `only` (accepts cold_start for cold-start)."""
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
                    f"unknown scenario {name.strip()!r}", field="--only",
                    fix=f"use one of {', '.join(known)}",
                )
            wanted.add(norm)
    return [n for n in known if n in wanted]


def resolve_manifests_path(manifests: str | None) -> Path:
    raw = manifests or DEFAULT_MANIFESTS
    path = Path(raw)
    if not path.exists() and not path.is_absolute() and (REPO_ROOT / raw).exists():
        path = REPO_ROOT / raw  # the embedded default, from any working directory
    if not path.exists():
        raise InputError(
            "manifests not found", file=path, field="--manifests",
            fix="give a kustomize directory or a YAML file of Kubernetes objects",
        )
    return path


def load_manifests(path: Path) -> ManifestBundle:
    """Render with the manifests engine; a plain YAML file still works without it."""
    try:
        render: Callable[[Path], ManifestBundle] = importlib.import_module("harness.manifests.render").render
    except ModuleNotFoundError as err:
        if err.name != "harness.manifests.render":
            raise
        if path.is_file():
            return ManifestBundle.from_yaml(path.read_text(), source=str(path))
        raise SetupError(
            f"cannot render {path}: the manifest renderer is not available in this build "
            "(give a rendered YAML file instead)"
        ) from None
    bundle = render(path)
    if not bundle.source:
        bundle.source = str(path)
    return bundle


def backend_options(opts: CertifyOptions, profile: Profile) -> dict[str, Any]:
    """What get_backend(name, workdir, **options) receives for each backend type."""
    if opts.backend not in BACKENDS:
        raise InputError(f"unknown backend {opts.backend!r}", field="--backend", fix=f"use one of {', '.join(BACKENDS)}")
    if opts.runtime not in RUNTIMES:
        raise InputError(f"unknown runtime {opts.runtime!r}", field="--runtime", fix=f"use one of {', '.join(RUNTIMES)}")
    if opts.backend == "local":
        if opts.context:
            raise InputError("--context applies to the kube backend", field="--context",
                             fix="add --backend kube, or drop --context")
        return {"zones": list(profile.zones.zones), "nodes_per_zone": profile.zones.nodes_per_zone,
                "runtime": opts.runtime}
    if opts.backend == "kind":
        if opts.context:
            raise InputError("the kind backend makes its own context (kind-gauntlet)", field="--context",
                             fix="drop --context, or use --backend kube --context NAME")
        # one cluster for the whole run: each scenario's backend reuses it instead of recreating it
        return {"chaos_allowed": profile.kube.chaos_allowed, "keep_cluster": True}
    if not opts.context:
        raise InputError("the kube backend needs a context", field="--context",
                         fix="give --context NAME (and allow it with --allow-context NAME or in the profile)")
    allowed = list(dict.fromkeys([*profile.kube.allowed_contexts, *opts.allow_contexts]))
    return {"context": opts.context, "allowed_contexts": allowed, "chaos_allowed": profile.kube.chaos_allowed}


def make_backend_factory(name: str, options: dict[str, Any]) -> BackendFactory:
    try:
        get_backend = importlib.import_module("harness.backends").get_backend
    except (ModuleNotFoundError, AttributeError):
        raise SetupError(f"the {name} backend is not available in this build (harness.backends.get_backend)") from None

    def factory(workdir: Path) -> Backend:
        backend: Backend = get_backend(name, workdir, **options)
        return backend

    return factory


def preflight(name: str, factory: BackendFactory, workdir: Path) -> bool | None:
    """Build (never deploy) one backend so bad contexts or a missing runtime fail before any scenario.

    kind is only checked for its prerequisites: building it would create a cluster.
    """
    if name == "kind":
        check = getattr(importlib.import_module("harness.backends.kind"), "check_prerequisites", None)
        if check is not None:
            check()
        return True
    try:
        backend = factory(workdir)
    except (InputError, SetupError):
        raise
    except Exception as err:
        raise SetupError(f"backend could not start: {type(err).__name__}: {err}") from err
    try:
        return bool(getattr(backend, "limits_enforced", False))
    finally:
        with contextlib.suppress(Exception):
            backend.teardown()
        shutil.rmtree(workdir, ignore_errors=True)


def prepare(opts: CertifyOptions, run_dir_default: Path | None = None, check_backend: bool = True) -> Prepared:
    scenarios = resolve_scenarios(opts.only)
    profile = load_profile(opts.profile)
    manifests_path = resolve_manifests_path(opts.manifests)
    bundle = load_manifests(manifests_path)
    _ = bundle.deployment  # InputError now, not inside every scenario
    options = backend_options(opts, profile)
    run_id = new_run_id()
    run_dir = opts.out or run_dir_default or Path("reports") / run_id
    if (run_dir / "report.json").exists():
        raise InputError("already holds a report; a new run would mix evidence with it",
                         file=run_dir, field="--out", fix="choose a new or empty directory")
    factory = make_backend_factory(opts.backend, options)
    limits = None
    if check_backend:  # in a scratch dir: a run refused at setup leaves no empty run dir behind
        with tempfile.TemporaryDirectory(prefix="gauntlet-preflight-") as scratch:
            limits = preflight(opts.backend, factory, Path(scratch) / "backend")
    run_dir.mkdir(parents=True, exist_ok=True)
    return Prepared(
        profile=profile, bundle=bundle, backend=BackendInfo(name=opts.backend, options=options),
        manifests=ManifestsInfo(
            source=str(manifests_path),
            objects=[f"{o.get('kind')}/{(o.get('metadata') or {}).get('name', '?')}" for o in bundle],
        ),
        backend_factory=factory, scenarios=scenarios, run_id=run_id, run_dir=run_dir,
        limits_enforced=limits,
    )


def new_report(prep: Prepared, command: list[str]) -> Report:
    return Report(
        run_id=prep.run_id, started_at=time.time(), result="pass", requested=list(prep.scenarios),
        profile=ProfileInfo(name=prep.profile.name, source=prep.profile.source,
                            content=prep.profile.model_dump(mode="json")),
        backend=prep.backend, manifests=prep.manifests,
        environment=collect_environment(prep.limits_enforced), command=command,
    )


def exit_code(report: Report, fail_on_skip: bool = False) -> int:
    if report.interrupted:
        return EXIT_INTERRUPTED
    if any(r.verdict == "error" and r.reason.startswith(("InputError", "SetupError")) for r in report.scenarios):
        return EXIT_INPUT
    if report.summary.failed or report.summary.errors:
        return EXIT_FAIL
    if report.summary.inconclusive:
        return EXIT_INCONCLUSIVE
    if report.result == "nothing-measured":
        return EXIT_NOTHING_MEASURED
    if fail_on_skip and report.summary.skipped:
        return EXIT_FAIL
    return EXIT_PASS


# signals -----------------------------------------------------------------------------------
@contextlib.contextmanager
def interrupts_as_keyboard_interrupt(console: Console) -> Iterator[list[str]]:
    """SIGTERM behaves like Ctrl-C; a second signal during clean-up is ignored, a third forces.

    Yields the names of the signals received so far. Every signal first asks the running load
    runs to stop (gracefully, records kept), so the clean-up the interrupt unwinds through finds
    them ending instead of waiting out their schedule."""
    received: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signal.Signals(signum).name)
        runner = sys.modules.get("harness.load.runner")  # loaded iff a load may be running
        if runner is not None:
            with contextlib.suppress(Exception):
                runner.request_stop_all()  # no lock, no wait: safe here
        if len(received) == 2:
            console.print("[yellow]stopping: tearing down backends, writing the partial report[/]")
            return
        if interrupts.deferring() and len(received) < 3:  # mid-teardown: raised when it ends
            interrupts.defer(received[-1])
            return
        raise KeyboardInterrupt(received[-1])

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


# progress ----------------------------------------------------------------------------------
class Progress:
    """The live table: one row per scenario, the running one with its elapsed time and last log."""

    def __init__(self, names: list[str], title: str) -> None:
        self.title = title
        self.rows: dict[str, dict[str, Any]] = {n: {"status": "pending", "reason": "", "t0": None, "dur": None} for n in names}
        self.last_log = ""

    def start(self, name: str) -> None:
        self.rows[name].update(status="running", t0=time.monotonic())

    def finish(self, name: str, result: ScenarioResult) -> None:
        self.rows[name].update(status=result.verdict, reason=result.reason, dur=result.duration_s)

    def mark(self, name: str, status: str, reason: str) -> None:
        self.rows[name].update(status=status, reason=reason)

    def __rich__(self) -> Group:
        table = Table(title=self.title, expand=False)
        table.add_column("scenario")
        table.add_column("status")
        table.add_column("time", justify="right")
        table.add_column("reason", overflow="fold", max_width=80)
        for name, row in self.rows.items():
            if row["dur"] is not None:
                t = f"{row['dur']:.1f}s"
            elif row["t0"] is not None:
                t = f"{time.monotonic() - row['t0']:.0f}s"
            else:
                t = ""
            table.add_row(name, f"[{STYLE.get(row['status'], 'white')}]{row['status']}[/]", t, row["reason"])
        return Group(table, Text(self.last_log, style="dim", overflow="ellipsis", no_wrap=True))


# the run -----------------------------------------------------------------------------------
class Certification:
    def __init__(self, prep: Prepared, console: Console | None = None, command: list[str] | None = None,
                 html: bool = True) -> None:
        self.prep = prep
        self.console = console or Console(stderr=True)
        self.html = html
        self.report = new_report(prep, command or [])
        self.measured: dict[str, Any] = {}
        self._log_lock = threading.Lock()
        self._log_path = prep.run_dir / "certify.log"

    def _logger(self, name: str, progress: Progress) -> Callable[[str], None]:
        def log(message: str) -> None:
            line = f"{datetime.now(UTC).strftime('%H:%M:%S')} [{name}] {message}"
            with self._log_lock, self._log_path.open("a") as f:
                f.write(line + "\n")
            progress.last_log = line
            self.console.print(line, markup=False, highlight=False)  # scrolls above the live table

        return log

    def _save(self) -> None:
        self.report.finished_at = time.time()
        self.report.finalize().write(self.prep.run_dir / "report.json")

    def run(self) -> Report:
        prep = self.prep
        title = f"gauntlet certify: {prep.profile.name} on {prep.backend.name} → {prep.run_dir}"
        progress = Progress(prep.scenarios, title)
        live = Live(progress, console=self.console, refresh_per_second=4, transient=False,
                    redirect_stdout=False, redirect_stderr=False)

        def mark_interrupted() -> None:
            done = {r.name for r in self.report.scenarios}
            remaining = [n for n in prep.scenarios if n not in done]
            self.report.interrupted = True
            self.report.interrupted_during = remaining[0] if remaining else None
            self.report.not_run = remaining
            for n in remaining:
                progress.mark(n, "not run", "interrupted")

        # the handler stays installed over the clean-up too (partial report, rendering): a
        # second signal there is ignored instead of killing the process (SIGTERM's default)
        with interrupts_as_keyboard_interrupt(self.console) as received:
            try:
                prep.bundle.write(prep.run_dir / "manifests.yaml")  # the exact objects certified
                self._save()
                with live:
                    for name in prep.scenarios:
                        self._run_one(name, progress)
                    progress.last_log = ""  # the final table stands alone
            except KeyboardInterrupt:
                mark_interrupted()
            try:
                self._save()
            except KeyboardInterrupt:  # the first signal came only now: still an interrupted run
                mark_interrupted()
                self._save()
            self._write_outputs()
            if received and not self.report.interrupted:  # a signal cut the rendering short
                mark_interrupted()
                self._save()
        return self.report

    def _run_one(self, name: str, progress: Progress) -> None:
        ctx = ScenarioContext(
            profile=self.prep.profile, bundle=self.prep.bundle.copy(),
            backend_factory=self.prep.backend_factory, backend_name=self.prep.backend.name,
            out_dir=self.prep.run_dir / name, measured=self.measured,
            log=self._logger(name, progress),
        )
        ctx.out_dir.mkdir(parents=True, exist_ok=True)
        progress.start(name)
        started = time.time()
        try:
            verdict = scenarios_base.run_scenario(name, ctx)
        except KeyboardInterrupt:
            # the signal handler asked its loads to stop; wait (bounded) for them so their
            # partial output (load.json, records.npy) lands and no locust worker outlives the run
            runner = sys.modules.get("harness.load.runner")
            try:
                if runner is not None:
                    runner.stop_all()
            finally:
                with contextlib.suppress(Exception):
                    kept = sorted(p.name for p in ctx.out_dir.iterdir())
                    ctx.log(f"interrupted; partial evidence kept in {ctx.relative(ctx.out_dir)}/: "
                            + (", ".join(kept) or "nothing"))
            raise
        result = ScenarioResult.from_verdict(verdict, started, time.time())
        self.report.scenarios.append(result)
        progress.finish(name, result)
        self._save()

    def _write_outputs(self) -> None:
        try:
            write_outputs(self.report, self.prep.run_dir, html=self.html)
        except KeyboardInterrupt:
            self.console.print("[yellow]interrupted while rendering; report.json and junit.xml are written[/]")
        except Exception as err:  # the JSON record is already on disk; say what is missing
            self.console.print(f"[red]could not render the HTML report:[/] {type(err).__name__}: {err}")


def certify(opts: CertifyOptions, console: Console | None = None) -> tuple[Report, Path]:
    """Prepare, run, write; returns the report and the run dir (exit code: `exit_code`)."""
    prep = prepare(opts)
    run = Certification(prep, console=console, command=opts.command or sys.argv, html=opts.html)
    return run.run(), prep.run_dir
