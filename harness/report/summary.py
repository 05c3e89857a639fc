"""Rich tables for the terminal: a report's verdicts and a comparison's regressions."""

from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table

from harness.report.compare import Comparison
from harness.report.schema import Report

STYLE = {
    "pass": "green",
    "fail": "red",
    "error": "magenta",
    "skip": "yellow",
    "inconclusive": "orange3",
    "nothing-measured": "yellow",
    "interrupted": "dark_orange",
    "not run": "dim",
    "running": "cyan",
    "pending": "dim",
}


def verdict_text(status: str) -> str:
    return f"[{STYLE.get(status, 'white')}]{status}[/]"


def report_table(report: Report) -> Table:
    table = Table(title=f"{report.profile.name} on {report.backend.name} — run {report.run_id}")
    table.add_column("scenario")
    table.add_column("verdict")
    table.add_column("reason", overflow="fold")
    table.add_column("time", justify="right")
    for r in report.scenarios:
        table.add_row(r.name, verdict_text(r.verdict), r.reason, f"{r.duration_s:.1f}s")
    for name in report.not_run:
        table.add_row(name, verdict_text("not run"), "certification interrupted", "—")
    return table


def print_report(report: Report, console: Console) -> None:
    console.print(report_table(report))
    s = report.summary
    console.print(
        f"Result: {verdict_text(report.result)} — {s.passed} passed, {s.failed} failed, "
        f"{s.errors} errors, {s.inconclusive} inconclusive, {s.skipped} skipped"
        + (f", {s.not_run} not run" if s.not_run else "")
    )
    if not report.environment.cgroup.limits_enforced:
        console.print(f"[yellow]caveat:[/] {report.environment.cgroup.note}")


def _pct(v: float | None) -> str:
    if v is None:
        return "—"
    return "from 0" if math.isinf(v) else f"{v:+.1f}%"


def print_comparison(cmp: Comparison, console: Console, show_all: bool = False) -> None:
    for w in cmp.warnings:
        console.print(f"[yellow]warning:[/] {w}")
    if cmp.verdicts:
        t = Table(title=f"Verdict changes ({cmp.baseline} → {cmp.candidate})")
        for col in ("scenario", "before", "after", ""):
            t.add_column(col)
        for v in cmp.verdicts:
            t.add_row(
                v.scenario,
                verdict_text(v.before),
                verdict_text(v.after),
                "[red]REGRESSION[/]" if v.regression else "[green]ok[/]",
            )
        console.print(t)
    rows = [m for m in cmp.measurements if show_all or m.regression or (m.worse_pct or 0) < 0]
    if rows:
        t = Table(title=f"Measurements (allowed regression {cmp.max_regression_pct:g}%)")
        for col in ("scenario", "measurement", "before", "after", "change", "better is", ""):
            t.add_column(col, justify="right" if col in ("before", "after", "change") else "left")
        for m in rows:
            mark = (
                "[red]REGRESSION[/]"
                if m.regression
                else ("[green]improved[/]" if (m.worse_pct or 0) < 0 else "")
            )
            better = {"lower-is-better": "lower", "higher-is-better": "higher"}.get(
                m.direction, "?"
            )
            t.add_row(
                m.scenario,
                m.measurement,
                f"{m.before:.4g}",
                f"{m.after:.4g}",
                _pct(m.change_pct),
                better,
                mark,
            )
        console.print(t)
    n = cmp.regressions
    console.print(f"[red]{n} regression(s)[/]" if n else "[green]no regressions[/]")
