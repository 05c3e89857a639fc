"""`gauntlet gameday EXPERIMENT`: run a chaostoolkit experiment against a Gauntlet deployment."""

from __future__ import annotations

import json
import logging
import signal
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from harness.errors import InputError

CONTROL: dict[str, Any] = {"name": "gauntlet", "provider": {"type": "python", "module": "harness.chaos.control"}}


def _parse_vars(values: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InputError(f"--var {item!r} is not KEY=VALUE", field="--var",
                             fix="e.g. --var gauntlet_slo_window_s=5")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


@click.command()
@click.argument("experiment", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--backend", type=click.Choice(["local", "kind", "kube"]), default=None,
              help="where to deploy (default: the experiment's gauntlet_backend, else local)")
@click.option("--profile", default=None, help="SLO profile name or YAML file (default: local)")
@click.option("--manifests", default=None, help="kustomize dir or YAML file (default: manifests/overlays/local)")
@click.option("--context", default=None, help="kube context (kube backend)")
@click.option("--runtime", type=click.Choice(["process", "docker"]), default=None, help="local backend runtime")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="run directory (default: reports/gameday-<experiment>-<time>)")
@click.option("--var", "variables", multiple=True, metavar="KEY=VALUE",
              help="override an experiment configuration key (JSON value), e.g. gauntlet_slo_window_s=5")
@click.option("--dry-run", is_flag=True, help="list what would be touched; deploy nothing")
def gameday(
    experiment: Path, backend: str | None, profile: str | None, manifests: str | None,
    context: str | None, runtime: str | None, out: Path | None, variables: tuple[str, ...], dry_run: bool,
) -> None:
    """Run EXPERIMENT (chaostoolkit JSON/YAML). Rollbacks always run; exit 1 if it deviated or failed."""
    from chaoslib.configuration import load_configuration
    from chaoslib.exceptions import ChaosException
    from chaoslib.experiment import ensure_experiment_is_valid, run_experiment
    from chaoslib.loader import load_experiment

    from harness.chaos.plan import describe
    from harness.chaos.session import close_gameday, settings_from

    console = Console(stderr=False)
    if not experiment.exists():
        raise InputError("file not found", file=experiment, fix="give the path of a chaostoolkit experiment")
    try:
        exp = load_experiment(str(experiment))
        ensure_experiment_is_valid(exp)
    except ChaosException as err:
        raise InputError(f"invalid experiment: {err}", file=experiment,
                         fix="check it with `chaos validate` (see docs/gameday.md)") from None
    if manifests is not None and not Path(manifests).exists():
        raise InputError("manifests not found", file=manifests, field="--manifests",
                         fix="pass a kustomize directory or YAML file")

    run_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out_dir = out or Path("reports") / f"gameday-{experiment.stem}-{run_id}"
    overrides: dict[str, Any] = {
        "gauntlet_backend": backend, "gauntlet_profile": profile, "gauntlet_manifests": manifests,
        "gauntlet_context": context, "gauntlet_runtime": runtime, "gauntlet_out": str(out_dir),
        "gauntlet_report": False,  # written here, with the final journal
        **_parse_vars(variables),
    }
    conf = exp.setdefault("configuration", {})
    for key, value in overrides.items():
        if value is not None:
            conf[key] = value
    if not any(c.get("provider", {}).get("module") == "harness.chaos.control" for c in exp.get("controls", [])):
        exp.setdefault("controls", []).append(dict(CONTROL))

    try:
        resolved_conf = load_configuration(dict(conf))
    except ChaosException as err:
        raise InputError(f"configuration: {err}", file=experiment, field="configuration",
                         fix="set the environment variable or pass --var KEY=VALUE") from None
    resolved = settings_from(resolved_conf)
    table = Table(title=f"{exp.get('title')} — what it touches")
    for col in ("phase", "activity", "touches"):
        table.add_column(col)
    for row in describe(exp, resolved, resolved_conf):
        table.add_row(row["phase"], row["activity"], row["touches"])
    console.print(table)
    if dry_run:
        console.print("[bold]dry run[/]: nothing deployed, nothing touched")
        return

    _log_to(console)
    settings: dict[str, Any] = {"runtime": {"rollbacks": {"strategy": "always"}}}

    def _term(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")  # chaostoolkit then runs the rollbacks

    previous = signal.signal(signal.SIGTERM, _term)
    try:
        journal = run_experiment(exp, settings=settings)
    finally:
        close_gameday()  # no-op when the control already tore down
        signal.signal(signal.SIGTERM, previous)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "journal.json").write_text(json.dumps(journal, indent=2, default=str))

    from harness.chaos.journal import write_report

    verdict = write_report(journal, exp, resolved, out_dir)
    colour = {"pass": "green", "fail": "red"}.get(verdict.status, "yellow")
    console.print(f"[bold {colour}]{verdict.status.upper()}[/]: {verdict.reason}")
    console.print(f"journal: {out_dir / 'journal.json'}  report: {out_dir / 'report.html'}")
    raise SystemExit(0 if verdict.status == "pass" else 130 if journal.get("status") == "interrupted" else 1)


def _log_to(console: Console) -> None:
    """Show chaostoolkit's progress (activities, pauses, rollbacks) like `chaos run` does."""
    from rich.logging import RichHandler

    logger = logging.getLogger("chaostoolkit")
    if not any(isinstance(h, RichHandler) for h in logger.handlers):
        handler = RichHandler(console=console, show_path=False, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
