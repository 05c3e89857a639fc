"""A scenario's outcome: pass / fail / skip(reason) with measured values beside targets."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Status = Literal["pass", "fail", "skip", "error"]


class Check(BaseModel):
    """One measured-vs-target comparison inside a verdict."""

    name: str
    measured: Any
    target: Any
    ok: bool
    unit: str = ""
    note: str = ""


class Verdict(BaseModel):
    name: str
    status: Status
    reason: str
    profile: str
    backend: str = ""
    measurements: dict[str, Any] = Field(default_factory=dict)
    targets: dict[str, Any] = Field(default_factory=dict)
    checks: list[Check] = Field(default_factory=list)
    evidence: list[str] = Field(default_factory=list, description="paths relative to the run dir")
    caveats: list[str] = Field(default_factory=list, description="e.g. limits monitored, not enforced")
    duration_s: float = 0.0

    @classmethod
    def from_checks(
        cls, name: str, profile: str, checks: list[Check], **kw: Any
    ) -> Verdict:
        """pass when every check is ok; the reason lists the failed checks."""
        failed = [c for c in checks if not c.ok]
        if failed:
            reason = "; ".join(
                f"{c.name}: measured {c.measured}{c.unit} vs target {c.target}{c.unit}"
                + (f" ({c.note})" if c.note else "")
                for c in failed
            )
            status: Status = "fail"
        else:
            reason = f"all {len(checks)} checks met"
            status = "pass"
        kw.setdefault("measurements", {c.name: c.measured for c in checks})
        kw.setdefault("targets", {c.name: c.target for c in checks})
        return cls(name=name, profile=profile, status=status, reason=reason, checks=checks, **kw)
