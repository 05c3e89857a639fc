"""The run engine: every entry point (certify, the pytest suites, game days) runs through it.

A `Run` makes each scenario's context, logs to `certify.log` in one format, runs the scenario
(an exception becomes an `error` verdict, an interrupt stays an interrupt), and rewrites
report.json after every scenario, so an interrupt (Ctrl-C, SIGTERM) or even a crash leaves the
scenarios done so far. `Run.close` is the one place a run is marked interrupted; it then writes
report.json, junit.xml and report.html. `certify` drives a Run over the scenarios in SCENARIOS
order (cold-start feeds probe-timing) under a live table, with signals turned into
KeyboardInterrupt (`SignalGuard`). Backends tear themselves down through their context managers.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console

from harness import interrupts
from harness.backends import close_run
from harness.report.environment import collect_environment, machine_speed_info
from harness.report.junit import write_junit
from harness.report.schema import ProfileInfo, Report, ScenarioResult
from harness.run import evidence
from harness.run.live_table import LiveTable
from harness.run.options import CertifyOptions, Inputs, Prepared, prepare
from harness.scenarios.base import ScenarioContext, run_scenario

#: exit codes (docs/certify.md): 3 = nothing failed but something could not be observed;
#: 4 = every scenario was skipped, nothing was measured; 130 = interrupted (SIGINT/SIGTERM)
EXIT_PASS, EXIT_FAIL, EXIT_INPUT, EXIT_INCONCLUSIVE, EXIT_NOTHING_MEASURED, EXIT_INTERRUPTED = (
    0,
    1,
    2,
    3,
    4,
    130,
)

Echo = Callable[[str], None]


def exit_code(report: Report, fail_on_skip: bool = False) -> int:
    if report.interrupted:
        return EXIT_INTERRUPTED
    if any(
        r.verdict == "error" and r.reason.startswith(("InputError", "SetupError"))
        for r in report.scenarios
    ):
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


def new_report(
    inputs: Inputs,
    run_id: str,
    requested: list[str],
    command: list[str],
    limits_enforced: bool | None,
) -> Report:
    return Report(
        run_id=run_id,
        started_at=time.time(),
        result="pass",
        requested=list(requested),
        profile=ProfileInfo(
            name=inputs.profile.name,
            source=inputs.profile.source,
            content=inputs.profile.model_dump(mode="json"),
        ),
        backend=inputs.backend,
        manifests=inputs.manifests,
        environment=collect_environment(limits_enforced),
        command=command,
    )


# logging -------------------------------------------------------------------------------------
class RunLog:
    """`<run-dir>/certify.log`: `HH:MM:SS [scenario] message`, every line also echoed."""

    def __init__(self, path: Path, echo: Echo) -> None:
        self.path = path
        self.echo = echo
        self._lock = threading.Lock()

    def scenario(self, name: str) -> Echo:
        def log(message: str) -> None:
            line = f"{datetime.now(UTC).strftime('%H:%M:%S')} [{name}] {message}"
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a") as f:
                    f.write(line + "\n")
            self.echo(line)

        return log


# signals -------------------------------------------------------------------------------------
class SignalGuard:
    """SIGINT and SIGTERM raise KeyboardInterrupt; a second signal is ignored (clean-up runs to
    its end), a third forces. A signal during a shielded teardown is held until it ends
    (`harness.interrupts`). Once `closing` is set (the scenarios are over and the report is being
    written), signals are only recorded. Every signal first asks the running load runs to stop
    (gracefully, records kept), so the clean-up an interrupt unwinds through finds them ending."""

    def __init__(self, echo: Echo) -> None:
        self.echo = echo
        self.received: list[str] = []
        self.closing = False
        self.active = False
        self._previous: dict[signal.Signals, Any] = {}

    def __enter__(self) -> SignalGuard:
        if threading.current_thread() is threading.main_thread():
            self._previous = {
                s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)
            }
        self.active = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.active = False
        for s, h in self._previous.items():
            signal.signal(s, h)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if not self.active:  # reached through a handler that chained to us after we ended
            raise KeyboardInterrupt(name)
        self.received.append(name)
        runner = sys.modules.get("harness.load.runner")  # loaded iff a load may be running
        if runner is not None:
            with contextlib.suppress(Exception):
                runner.request_stop_all()  # no lock, no wait: safe here
        n = len(self.received)
        if n >= 3:
            raise KeyboardInterrupt(name)
        if n == 2 or self.closing:
            self.echo(
                "stopping: tearing down backends, writing the partial report"
                if n == 2
                else "writing the report; a third signal stops at once"
            )
            return
        if interrupts.deferring():  # mid-teardown: raised when it ends
            interrupts.defer(name)
            return
        raise KeyboardInterrupt(name)


# the run -------------------------------------------------------------------------------------
class Run:
    """One run over prepared inputs: contexts, log, the report rewritten after every scenario."""

    def __init__(
        self, prep: Prepared, command: list[str], echo: Echo = print, html: bool = True
    ) -> None:
        self.prep = prep
        self.html = html
        self.report = new_report(prep, prep.run_id, prep.scenarios, command, prep.limits_enforced)
        self.measured: dict[
            str, object
        ] = {}  # shared by the scenarios (cold-start -> probe-timing)
        self.log = RunLog(prep.run_dir / evidence.RUN_LOG, echo)

    @property
    def run_dir(self) -> Path:
        return self.prep.run_dir

    def start(self) -> None:
        self.prep.bundle.write(self.run_dir / evidence.MANIFESTS)  # the exact objects certified
        self.report.environment.machine_speed = machine_speed_info(self.prep.profile)
        self.save()

    def context(self, name: str) -> ScenarioContext:
        ctx = ScenarioContext(
            profile=self.prep.profile,
            bundle=self.prep.bundle.copy(),
            backend_factory=self.prep.backend_factory,
            backend_name=self.prep.backend.name,
            out_dir=self.run_dir / name,
            measured=self.measured,
            log=self.log.scenario(name),
        )
        ctx.out_dir.mkdir(parents=True, exist_ok=True)
        return ctx

    def run_scenario(self, name: str) -> ScenarioResult:
        """Run one scenario, record its result, save the report. An interrupt propagates once
        the running loads are stopped (their partial output kept)."""
        ctx = self.context(name)
        started = time.time()
        try:
            verdict = run_scenario(name, ctx)
        except KeyboardInterrupt:
            # the signal asked the loads to stop; wait (bounded) for them so their partial
            # output (load.json, records.npy) lands and no locust worker outlives the run
            runner = sys.modules.get("harness.load.runner")
            try:
                if runner is not None:
                    runner.stop_all()
            finally:
                with contextlib.suppress(Exception):
                    kept = sorted(p.name for p in ctx.out_dir.iterdir())
                    ctx.log(
                        f"interrupted; partial evidence kept in {ctx.relative(ctx.out_dir)}/: "
                        + (", ".join(kept) or "nothing")
                    )
            raise
        result = ScenarioResult.from_verdict(verdict, started, time.time())
        speed = self.report.environment.machine_speed
        if speed is not None and speed.too_slow:
            result.caveats.append(speed.caveat())
        self.report.scenarios[:] = [s for s in self.report.scenarios if s.name != name] + [result]
        self.save()
        return result

    def save(self) -> None:
        self.report.finished_at = time.time()
        self.report.finalize().write(self.run_dir / evidence.REPORT)

    def close(self, interrupted: bool, console: Console | None = None) -> Report:
        """The end of a run: interrupted, the requested scenarios not run are `not_run`; else
        the run requested what it ran. Then report.json, junit.xml, report.html."""
        done = {r.name for r in self.report.scenarios}
        if interrupted:
            self.report.interrupted = True
            self.report.not_run = [n for n in self.report.requested if n not in done]
            self.report.interrupted_during = self.report.not_run[0] if self.report.not_run else None
        else:
            self.report.requested = [n for n in self.report.requested if n in done]
        say = (console or Console(stderr=True)).print
        try:
            self.save()
            write_junit(self.report, self.run_dir / evidence.JUNIT)
            if self.html:
                try:
                    from harness.report.html import write_html  # matplotlib: only when rendering

                    write_html(self.report, self.run_dir)
                except Exception as err:  # the JSON record is on disk; say what is missing
                    say(f"[red]could not render the HTML report:[/] {type(err).__name__}: {err}")
        except KeyboardInterrupt:  # a third signal
            say("[yellow]stopped while writing the report; report.json holds the last save[/]")
        return self.report


def certify(opts: CertifyOptions, console: Console | None = None) -> tuple[Report, Path]:
    """Prepare, run every scenario under a live table, write; returns the report and the run dir
    (exit code: `exit_code`)."""
    console = console or Console(stderr=True)
    prep = prepare(opts)
    table = LiveTable(
        prep.scenarios,
        f"gauntlet certify: {prep.profile.name} on {prep.backend.name} → {prep.run_dir}",
    )

    def echo(line: str) -> None:
        table.last_log = line
        console.print(line, markup=False, highlight=False)  # scrolls above the live table

    run = Run(prep, command=opts.command or sys.argv, echo=echo, html=opts.html)
    interrupted = False
    # the guard stays over the clean-up too (the report, rendering): a signal there is
    # recorded instead of killing the process (SIGTERM's default)
    with SignalGuard(lambda m: console.print(f"[yellow]{m}[/]")) as guard:
        try:
            run.start()
            with table.live(console):
                for name in prep.scenarios:
                    table.start(name)
                    table.finish(name, run.run_scenario(name))
                table.last_log = ""  # the final table stands alone
            guard.closing = True
        except KeyboardInterrupt:
            guard.closing = interrupted = True
        try:
            run.close(interrupted, console)
        finally:
            try:  # one kind cluster per run: deleted here, after every scenario, unless kept
                close_run()
            except Exception as err:
                console.print(f"[red]run clean-up:[/] {err}")
    return run.report, prep.run_dir


__all__ = [
    "EXIT_FAIL",
    "EXIT_INCONCLUSIVE",
    "EXIT_INPUT",
    "EXIT_INTERRUPTED",
    "EXIT_NOTHING_MEASURED",
    "EXIT_PASS",
    "Run",
    "RunLog",
    "SignalGuard",
    "certify",
    "exit_code",
    "new_report",
]
