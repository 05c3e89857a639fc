"""The `gauntlet` command. Subcommands are imported lazily so `--help` never imports torch."""

from __future__ import annotations

import importlib
import sys

import click

from harness.errors import InputError, SetupError

# name -> "module:attribute" of a click.Command; each command lives in its own module.
COMMANDS: dict[str, str] = {
    "serve": "harness.cli.serve:serve",
    "build-model": "harness.cli.serve:build_model",
    "model": "harness.cli.model:model",
    "load": "harness.cli.load:load",
    "check": "harness.cli.check:check",
    "certify": "harness.cli.certify:certify",
    "report": "harness.cli.report:report",
    "compare": "harness.cli.report:compare",
    "gameday": "harness.cli.gameday:gameday",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        cmd = getattr(importlib.import_module(module_name), attr)
        assert isinstance(cmd, click.Command)
        return cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gauntlet")
def cli() -> None:
    """Gauntlet: certify inference deployments against SLO profiles."""


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="gauntlet", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except (InputError, SetupError) as err:
        click.secho(f"error: {err}", fg="red", err=True)
        sys.exit(2)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
