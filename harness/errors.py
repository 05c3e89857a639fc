"""Errors a user can fix, reported as one clear message and exit code 2 (never a traceback)."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError


class InputError(Exception):
    """Bad input: names the file, the field and how to fix it."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        field: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.field = field
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        where = ": ".join(p for p in (self.file, self.field) if p)
        text = f"{where}: {self.message}" if where else self.message
        if self.fix:
            text += f" (fix: {self.fix})"
        return text


class SetupError(Exception):
    """A prerequisite is missing (docker, kind, cgroups...): says what and how to get it."""

    exit_code = 2


def from_validation_error(err: ValidationError, file: str | Path | None) -> InputError:
    """Turn a pydantic error into an InputError naming the first bad field (all are listed)."""
    errors = err.errors()
    parts = []
    for e in errors:
        loc = ".".join(str(x) for x in e["loc"]) or "<root>"
        msg = str(e["msg"]).removeprefix("Value error, ")
        parts.append(msg if len(errors) == 1 else f"{loc}: {msg}")  # one error: `field` names it
    field = ".".join(str(x) for x in errors[0]["loc"]) or None
    return InputError(
        "; ".join(parts), file=file, field=field, fix="correct the field(s) named above"
    )
