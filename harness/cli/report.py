"""`gauntlet report DIR` (re-render a run's HTML) and `gauntlet compare A B` (release gate)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console


@click.command("report")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--no-html", is_flag=True, help="only print the summary")
def report(run_dir: Path, no_html: bool) -> None:
    """Re-render RUN_DIR/report.html (and junit.xml) from report.json and the evidence files."""
    from harness.report import load_report, write_outputs
    from harness.report.summary import print_report

    if run_dir.is_file():
        run_dir = run_dir.parent
    rep = load_report(run_dir)
    console = Console()
    print_report(rep, console)
    if not no_html:
        paths = write_outputs(rep, run_dir)
        console.print(f"report: {paths['html']}")


@click.command("compare")
@click.argument("baseline", type=click.Path(path_type=Path))
@click.argument("candidate", type=click.Path(path_type=Path))
@click.option(
    "--max-regression",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    metavar="PCT",
    help="allowed worsening of a measurement, in percent",
)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option("--all", "show_all", is_flag=True, help="list unchanged measurements too")
def compare(
    baseline: Path, candidate: Path, max_regression: float, fmt: str, show_all: bool
) -> None:
    """Regressions from BASELINE to CANDIDATE (report.json files or run dirs).

    A verdict that stops passing is a regression; so is a measurement that got worse by more
    than --max-regression percent in its direction (latency up, capacity down...). Exit 1 when
    there is any regression, so a pipeline can gate a release on it.
    """
    from harness.report import load_report
    from harness.report.compare import compare_reports
    from harness.report.summary import print_comparison

    cmp = compare_reports(
        load_report(baseline),
        load_report(candidate),
        max_regression,
        baseline_name=str(baseline),
        candidate_name=str(candidate),
    )
    if fmt == "json":
        click.echo(cmp.model_dump_json(indent=2))
    else:
        print_comparison(cmp, Console(), show_all=show_all)
    sys.exit(0 if cmp.ok else 1)
