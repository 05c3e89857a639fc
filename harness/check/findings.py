"""One finding = one rule's verdict on one resource field, with measured vs required and a fix."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict


class Severity(StrEnum):
    error = "error"
    warning = "warning"
    info = "info"

    @property
    def rank(self) -> int:
        return {"error": 0, "warning": 1, "info": 2}[self.value]


class Finding(BaseModel):
    model_config = ConfigDict(frozen=True)

    rule: str
    severity: Severity
    resource: str  # Kind/name
    # field path inside the resource, e.g. spec.template.spec.containers[0].livenessProbe
    field: str
    message: str
    measured: str = ""  # what the manifests + measurements give
    required: str = ""  # what the profile needs
    fix: str = ""
    basis: str = ""  # where the number came from: measured / declared / manifest
    file: str = ""

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def sort_findings(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (f.severity.rank, f.resource, f.rule, f.field))
