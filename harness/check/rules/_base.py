"""Finding construction shared by the rule modules."""

from __future__ import annotations

from harness.check.findings import Finding, Severity
from harness.check.workload import Workload


def finding(
    w: Workload,
    rule: str,
    severity: str,
    field: str,
    message: str,
    *,
    measured: str = "",
    required: str = "",
    fix: str = "",
    basis: str = "",
    resource: str | None = None,
) -> Finding:
    return Finding(
        rule=rule,
        severity=Severity(severity),
        resource=resource or w.resource,
        field=field,
        message=message,
        measured=measured,
        required=required,
        fix=fix,
        basis=basis,
        file=w.file,
    )


def secs(x: float | None) -> str:
    return "never" if x is None else f"{x:g} s"
