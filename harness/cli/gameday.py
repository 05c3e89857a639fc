"""`gauntlet gameday EXPERIMENT`: run a chaostoolkit experiment against a Gauntlet deployment."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from harness.backends import BACKENDS, RUNTIMES
from harness.errors import InputError

CONTROL: dict[str, Any] = {
    "name": "gauntlet",
    "provider": {"type": "python", "module": "harness.chaos.control"},
}


def _parse_vars(values: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InputError(
                f"--var {item!r} is not KEY=VALUE",
                field="--var",
                fix="e.g. --var gauntlet_slo_window_s=5",
            )
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


@click.command()
@click.argument("experiment", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--backend",
    type=click.Choice(list(BACKENDS)),
    default=None,
    help="where to deploy (default: the experiment's gauntlet_backend, else local)",
)
@click.option("--profile", default=None, help="SLO profile name or YAML file (default: local)")
@click.option(
    "--manifests",
    default=None,
    help="kustomize dir or YAML file (default: overlays/local; overlays/kind on kind)",
)
@click.option("--context", default=None, help="kube context (kube backend)")
@click.option(
    "--runtime", type=click.Choice(list(RUNTIMES)), default=None, help="local backend runtime"
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="run directory (default: reports/gameday-<experiment>-<time>)",
)
@click.option(
    "--var",
    "variables",
    multiple=True,
    metavar="KEY=VALUE",
    help="override an experiment configuration key (JSON value), e.g. gauntlet_slo_window_s=5",
)
@click.option("--dry-run", is_flag=True, help="list what would be touched; deploy nothing")
def gameday(
    experiment: Path,
    backend: str | None,
    profile: str | None,
    manifests: str | None,
    context: str | None,
    runtime: str | None,
    out: Path | None,
    variables: tuple[str, ...],
    dry_run: bool,
) -> None:
    """Run EXPERIMENT (a chaostoolkit JSON/YAML file, or the name of a bundled one: zone-outage,
    replica-kill, ...). Rollbacks always run; exit 1 if it deviated or failed, 2 on bad input,
    130 when interrupted."""
    from chaoslib.configuration import load_configuration
    from chaoslib.exceptions import ChaosException
    from chaoslib.experiment import ensure_experiment_is_valid, run_experiment
    from chaoslib.loader import load_experiment

    from harness import resources
    from harness.chaos import session
    from harness.chaos.plan import describe
    from harness.run import evidence
    from harness.run.engine import SignalGuard
    from harness.run.options import new_run_id, resolve_manifests_path

    console = Console(stderr=False)
    bundled = experiment.stem if experiment.suffix == ".json" else experiment.name
    if not experiment.exists() and bundled in resources.experiment_names():
        experiment = resources.experiment_file(bundled)
    if not experiment.exists():
        raise InputError(
            "file not found",
            file=experiment,
            fix="give the path of a chaostoolkit experiment, or "
            f"the name of a bundled one ({', '.join(resources.experiment_names())})",
        )
    try:
        exp = load_experiment(str(experiment))
        ensure_experiment_is_valid(exp)
    except ChaosException as err:
        raise InputError(
            f"invalid experiment: {err}",
            file=experiment,
            fix="check it with `chaos validate` (see docs/gameday.md)",
        ) from None
    out_dir = out or Path("reports") / f"gameday-{experiment.stem}-{new_run_id()}"
    overrides: dict[str, Any] = {
        "gauntlet_backend": backend,
        "gauntlet_profile": profile,
        "gauntlet_manifests": manifests,
        "gauntlet_context": context,
        "gauntlet_runtime": runtime,
        "gauntlet_out": str(out_dir),
        "gauntlet_report": False,  # written here, with the final journal
        **_parse_vars(variables),
    }
    conf = exp.setdefault("configuration", {})
    for key, value in overrides.items():
        if value is not None:
            conf[key] = value
    if not any(
        c.get("provider", {}).get("module") == "harness.chaos.control"
        for c in exp.get("controls", [])
    ):
        exp.setdefault("controls", []).append(dict(CONTROL))

    try:
        resolved_conf = load_configuration(dict(conf))
    except ChaosException as err:
        raise InputError(
            f"configuration: {err}",
            file=experiment,
            field="configuration",
            fix="set the environment variable or pass --var KEY=VALUE",
        ) from None
    resolved = session.settings_from(resolved_conf)
    resolve_manifests_path(resolved["gauntlet_manifests"] or None)  # the real run renders them
    table = Table(title=f"{exp.get('title')} — what it touches")
    for col in ("phase", "activity", "touches"):
        table.add_column(col)
    for row in describe(exp, resolved, resolved_conf):
        table.add_row(row["phase"], row["activity"], row["touches"])
    console.print(table)
    if dry_run:
        if resolved["gauntlet_backend"] == "kube":
            _print_zone_plans(console, exp, resolved, resolved_conf)
        console.print("[bold]dry run[/]: nothing deployed, nothing touched")
        return
    session.resolve(resolved)  # bad inputs stop here (exit 2), before any activity

    _log_to(console)
    settings: dict[str, Any] = {"runtime": {"rollbacks": {"strategy": "always"}}}
    # SIGTERM like Ctrl-C: KeyboardInterrupt, and chaostoolkit runs the rollbacks; a second
    # signal does not cut them short
    with SignalGuard(lambda m: console.print(f"[yellow]{m}[/]")) as guard:
        try:
            journal = run_experiment(exp, settings=settings)
        finally:
            guard.closing = True
            session.close_gameday()  # no-op when the control already tore down
        evidence.write_json(out_dir / evidence.JOURNAL, journal)

        from harness.chaos.journal import write_report

        verdict = write_report(journal, exp, resolved, out_dir)
    colour = {"pass": "green", "fail": "red"}.get(verdict.status, "yellow")
    console.print(f"[bold {colour}]{verdict.status.upper()}[/]: {verdict.reason}")
    console.print(f"journal: {out_dir / evidence.JOURNAL}  report: {out_dir / evidence.HTML}")
    raise SystemExit(
        0 if verdict.status == "pass" else 130 if journal.get("status") == "interrupted" else 1
    )


def _print_zone_plans(
    console: Console, exp: dict[str, Any], settings: dict[str, Any], conf: dict[str, Any]
) -> None:
    """On a real cluster, list every pod of any namespace the zone faults would touch (read
    only: nodes and pods are listed, nothing is created)."""
    import tempfile

    from chaoslib import substitute

    from harness.backends.kube.faults import dry_run_lines
    from harness.chaos import session
    from harness.chaos.plan import activities

    asked = [
        substitute(dict(a["provider"].get("arguments") or {}), conf, {}).get("zone")
        for _, a in activities(exp)
        if (a.get("provider") or {}).get("func") == "zone_outage"
    ]
    if not asked:
        return
    inputs = session.resolve(settings)
    with tempfile.TemporaryDirectory(prefix="gauntlet-dry-run-") as tmp:
        backend = inputs.backend_factory(Path(tmp))
        try:
            console.print("[bold]zone fault plan[/] (read from the cluster):")
            for line in dry_run_lines(backend, asked):  # type: ignore[arg-type]
                console.print(line, markup=False, highlight=False)
        finally:
            backend.teardown()


def _log_to(console: Console) -> None:
    """Show chaostoolkit's progress (activities, pauses, rollbacks) like `chaos run` does."""
    from rich.logging import RichHandler

    logger = logging.getLogger("chaostoolkit")
    if not any(isinstance(h, RichHandler) for h in logger.handlers):
        handler = RichHandler(console=console, show_path=False, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
