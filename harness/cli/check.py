"""`gauntlet check`: static and model-based checks of manifests against an SLO profile."""

from __future__ import annotations

import sys

import click


@click.command("check")
@click.option(
    "--manifests",
    "manifests",
    required=True,
    multiple=True,
    type=click.Path(path_type=str),
    help="kustomize directory, folder of YAML files, or YAML file (repeatable)",
)
@click.option(
    "--profile",
    default="local",
    show_default=True,
    help="bundled SLO profile (local, seed) or a YAML file",
)
@click.option(
    "--measured",
    type=click.Path(path_type=str),
    default=None,
    help="certification report.json (or JSON with `measured: {...}`) whose values "
    "replace the profile's declared ones",
)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def check(manifests: tuple[str, ...], profile: str, measured: str | None, fmt: str) -> None:
    """Check manifests against a profile. Exit 0: no errors; 1: error findings; 2: bad input."""
    from harness.check.evaluate import has_errors, run_checks
    from harness.check.output import dumps, print_text, to_json
    from harness.check.targets import load_measured, targets_for
    from harness.manifests.render import render
    from harness.manifests.validate import validate_bundle
    from harness.profile import load_profile

    prof = load_profile(profile)
    values = load_measured(measured) if measured else None
    bundle = render(list(manifests))
    unvalidated = validate_bundle(bundle)
    targets = targets_for(prof, values, measured_source=measured or "")
    findings = run_checks(bundle, targets)
    notes = [f"{u.resource}: {u.reason}; not schema-validated" for u in unvalidated]
    source = ", ".join(manifests)
    if fmt == "json":
        click.echo(dumps(to_json(findings, targets, source, notes)))
    else:
        print_text(findings, targets, source, notes)
    if has_errors(findings):
        sys.exit(1)
