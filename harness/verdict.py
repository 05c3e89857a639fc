"""A scenario's outcome: pass / fail / inconclusive / skip(reason) / error, with measured values
beside targets.

A check either met its target, missed it, or could not observe what it claims (`inconclusive`:
no sample, a stimulus that did not exercise the behaviour, a limit the backend does not
enforce). An inconclusive check is never a pass: a verdict with one is `inconclusive` unless
another check failed.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

Status = Literal["pass", "fail", "inconclusive", "skip", "error"]


class Check(BaseModel):
    """One measured-vs-target comparison inside a verdict."""

    name: str
    measured: Any
    target: Any
    ok: bool
    unit: str = ""
    note: str = ""
    inconclusive: bool = Field(False, description="the run could not observe this (never ok)")
    skipped: str = Field(
        "", description="why this check does not apply here (e.g. the server lacks the evidence)"
    )

    @model_validator(mode="after")
    def _inconclusive_is_not_ok(self) -> Check:
        if self.inconclusive or self.skipped:
            self.ok = False
        return self

    @classmethod
    def skip(cls, name: str, target: Any, why: str) -> Check:
        return cls(name=name, measured=None, target=target, ok=False, skipped=why, note=why)

    @property
    def failed(self) -> bool:
        return not self.ok and not self.inconclusive and not self.skipped

    @property
    def outcome(self) -> str:
        if self.skipped:
            return "skipped"
        return "met" if self.ok else ("inconclusive" if self.inconclusive else "failed")


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
    caveats: list[str] = Field(default_factory=list, description="e.g. a sidecar not reproduced")
    duration_s: float = 0.0

    @classmethod
    def from_checks(cls, name: str, profile: str, checks: list[Check], **kw: Any) -> Verdict:
        """fail when a check failed, else inconclusive when one could not be observed, else pass;
        the reason lists the checks that decided it."""
        failed = [c for c in checks if c.failed]
        unobserved = [c for c in checks if c.inconclusive]
        skipped = [c for c in checks if c.skipped]
        if failed:
            status: Status = "fail"
            reason = "; ".join(_describe(c) for c in failed)
            if unobserved:
                reason += "; inconclusive: " + ", ".join(c.name for c in unobserved)
        elif unobserved:
            status = "inconclusive"
            reason = "could not observe: " + "; ".join(_describe(c) for c in unobserved)
        else:
            status = "pass"
            reason = f"all {len(checks) - len(skipped)} checks met"
        if skipped:
            reason += "; skipped: " + "; ".join(f"{c.name} ({c.skipped})" for c in skipped)
        kw.setdefault("measurements", {c.name: c.measured for c in checks})
        kw.setdefault("targets", {c.name: c.target for c in checks})
        return cls(name=name, profile=profile, status=status, reason=reason, checks=checks, **kw)


def _describe(c: Check) -> str:
    return f"{c.name}: measured {c.measured}{c.unit} vs target {c.target}{c.unit}" + (
        f" ({c.note})" if c.note else ""
    )
