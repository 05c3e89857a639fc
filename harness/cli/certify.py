"""`gauntlet certify`: all (or some) scenarios on one backend and profile, with a report."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

from harness.backends import BACKENDS, RUNTIMES
from harness.run.engine import certify as run_certify
from harness.run.engine import exit_code
from harness.run.options import CertifyOptions


@click.command("certify")
@click.option(
    "--backend",
    type=click.Choice(list(BACKENDS)),
    default="local",
    show_default=True,
    help="where the deployment runs",
)
@click.option("--context", default=None, help="kubeconfig context (kube backend)")
@click.option(
    "--allow-context",
    "allow_contexts",
    multiple=True,
    help="allow this context besides the profile's kube.allowed_contexts (repeatable)",
)
@click.option("--profile", default="local", show_default=True, help="SLO profile name or YAML file")
@click.option(
    "--manifests",
    default=None,
    help="kustomize dir or YAML file  "
    "[default: the packaged overlays/local; overlays/kind with --backend kind]",
)
@click.option(
    "--only",
    multiple=True,
    metavar="SCENARIO",
    help="run only these scenarios (repeatable or comma-separated)",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="run directory  [default: reports/<run-id>/]",
)
@click.option(
    "--runtime",
    type=click.Choice(list(RUNTIMES)),
    default="process",
    show_default=True,
    help="local backend: replicas as host processes or docker containers",
)
@click.option("--fail-on-skip", is_flag=True, help="exit 1 when a scenario is skipped")
@click.option("--no-html", is_flag=True, help="write report.json and junit.xml only")
def certify(
    backend: str,
    context: str | None,
    allow_contexts: tuple[str, ...],
    profile: str,
    manifests: str | None,
    only: tuple[str, ...],
    out: Path | None,
    runtime: str,
    fail_on_skip: bool,
    no_html: bool,
) -> None:
    """Certify a deployment against an SLO profile.

    Runs cold-start, capacity, probe-timing, oom-headroom, zone-failure and hpa (in that order),
    and writes report.json, junit.xml and report.html to the run directory. Exit 0 when all
    pass, 1 when any fails or errors, 2 on bad input or a missing prerequisite, 3 when nothing
    failed but a scenario was inconclusive (it could not observe what it checks), 4 when every
    scenario was skipped (nothing measured), 130 when interrupted (a partial report is still
    written).
    """
    console = Console(stderr=True)
    opts = CertifyOptions(
        backend=backend,
        context=context,
        allow_contexts=list(allow_contexts),
        profile=profile,
        manifests=manifests,
        only=list(only),
        out=out,
        runtime=runtime,
        fail_on_skip=fail_on_skip,
        html=not no_html,
        command=["gauntlet", *sys.argv[1:]],
    )
    report, run_dir = run_certify(opts, console=console)
    from harness.report.summary import print_report
    from harness.run import evidence

    print_report(report, console)
    console.print(
        f"report: {run_dir / evidence.HTML}  (json: {run_dir / evidence.REPORT}, "
        f"junit: {run_dir / evidence.JUNIT})"
    )
    sys.exit(exit_code(report, fail_on_skip))
