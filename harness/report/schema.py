"""`report.json`, schema version 1: everything a certification run found, in one validated file.

The schema is versioned so that `gauntlet compare` can read last release's report next to this
one; a change that breaks readers bumps `SCHEMA_VERSION`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.errors import InputError, from_validation_error
from harness.run import evidence as names
from harness.verdict import Check, Status, Verdict

SCHEMA_VERSION: Literal[1] = 1

#: `inconclusive`: nothing failed but some scenario could not observe what it checks;
#: `nothing-measured`: every scenario was skipped, so the run certifies nothing.
RunResult = Literal["pass", "fail", "error", "inconclusive", "nothing-measured", "interrupted"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProfileInfo(_Model):
    name: str
    source: str | None = None
    content: dict[str, Any] = Field(description="the full validated profile")


class BackendInfo(_Model):
    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class ManifestsInfo(_Model):
    source: str
    objects: list[str] = Field(default_factory=list, description="Kind/name of each object")


class CgroupInfo(_Model):
    memory_controller: str | None = Field(None, description="mount point, or None when absent")
    root: bool = False
    limits_enforced: bool = Field(description="an over-limit replica is killed by the kernel")
    note: str = ""


class MachineSpeedInfo(_Model):
    """This machine's decode step vs the one the profile was sized at (harness.machine_speed)."""

    preset: str
    decode_step_ms: float | None = Field(description="measured here; None: the probe failed")
    sized_at_ms: float = Field(description="the profile's machine.decode_step_ms")
    slower_by: float | None = None
    slower_allowed: float
    how: str = ""

    @property
    def too_slow(self) -> bool:
        return self.slower_by is not None and self.slower_by > self.slower_allowed

    def caveat(self) -> str:
        return (
            f"this machine ran the {self.preset} model's decode step {self.slower_by:.2g}x "
            f"slower than the profile was sized at ({self.decode_step_ms:g} vs "
            f"{self.sized_at_ms:g} ms, {self.slower_allowed:g}x allowed): rates and latencies "
            "here may measure the machine, not the manifests"
        )


class EnvironmentInfo(_Model):
    host: str
    platform: str
    cpu_cores: int
    memory_bytes: int
    python: str
    torch: str | None = None
    gauntlet: str
    git_commit: str | None = None
    git_dirty: bool | None = None
    cgroup: CgroupInfo
    machine_speed: MachineSpeedInfo | None = None


class ScenarioResult(_Model):
    """One scenario's verdict as the report stores it (the Verdict's fields, status as
    `verdict`)."""

    name: str
    verdict: Status
    reason: str
    profile: str = ""
    backend: str = ""
    measurements: dict[str, Any] = Field(default_factory=dict)
    targets: dict[str, Any] = Field(default_factory=dict)
    checks: list[Check] = Field(default_factory=list)
    evidence: list[str] = Field(default_factory=list, description="paths relative to the run dir")
    caveats: list[str] = Field(default_factory=list)
    duration_s: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None

    @classmethod
    def from_verdict(
        cls, verdict: Verdict, started_at: float | None = None, finished_at: float | None = None
    ) -> ScenarioResult:
        data = _jsonable(verdict.model_dump(mode="json", fallback=str))
        data["verdict"] = data.pop("status")
        return cls.model_validate({**data, "started_at": started_at, "finished_at": finished_at})

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"


class Summary(_Model):
    total: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    inconclusive: int = 0
    skipped: int = 0
    not_run: int = 0


class Report(_Model):
    schema_version: Literal[1] = SCHEMA_VERSION
    run_id: str
    started_at: float
    finished_at: float | None = None
    result: RunResult
    interrupted: bool = False
    interrupted_during: str | None = None
    requested: list[str] = Field(default_factory=list, description="scenarios asked for, in order")
    not_run: list[str] = Field(
        default_factory=list, description="requested but not run (interrupt)"
    )
    profile: ProfileInfo
    backend: BackendInfo
    manifests: ManifestsInfo
    environment: EnvironmentInfo
    scenarios: list[ScenarioResult] = Field(default_factory=list)
    summary: Summary = Field(default_factory=Summary)
    command: list[str] = Field(default_factory=list)

    def scenario(self, name: str) -> ScenarioResult | None:
        return next((s for s in self.scenarios if s.name == name), None)

    def finalize(self) -> Report:
        """Recompute summary and result from the scenarios (call after adding results)."""
        s = Summary(total=len(self.requested) or len(self.scenarios), not_run=len(self.not_run))
        for r in self.scenarios:
            if r.verdict == "pass":
                s.passed += 1
            elif r.verdict == "fail":
                s.failed += 1
            elif r.verdict == "error":
                s.errors += 1
            elif r.verdict == "inconclusive":
                s.inconclusive += 1
            else:
                s.skipped += 1
        self.summary = s
        if self.interrupted:
            self.result = "interrupted"
        elif s.errors:
            self.result = "error"
        elif s.failed:
            self.result = "fail"
        elif s.inconclusive:
            self.result = "inconclusive"
        elif self.scenarios and not s.passed:
            self.result = "nothing-measured"
        else:
            self.result = "pass"
        return self

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(self.model_dump_json(indent=2))
        tmp.replace(path)  # a reader (or an interrupt) never sees half a file
        return path


def load_report(path: str | Path) -> Report:
    """Read a report.json (or a run dir holding one); errors name the file and the field."""
    p = Path(path)
    if p.is_dir():
        p = p / names.REPORT
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise InputError(
            "file not found", file=p, fix="give a report.json or the run dir holding it"
        ) from None
    except json.JSONDecodeError as err:
        raise InputError(f"not valid JSON: {err}", file=p) from None
    if not isinstance(data, dict):
        raise InputError("a report must be a JSON object", file=p)
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise InputError(
            f"schema_version {version!r} is not supported (this gauntlet reads {SCHEMA_VERSION})",
            file=p,
            field="schema_version",
            fix="re-run `gauntlet certify` with this version",
        )
    try:
        return Report.model_validate(data)
    except ValidationError as err:
        raise from_validation_error(err, p) from None


def _jsonable(data: Any) -> Any:
    """Measurements may hold anything a scenario put there; the report keeps what JSON can."""
    return json.loads(json.dumps(data, default=str, allow_nan=True))
