"""Regressions between two certification reports (e.g. last release vs this one).

A verdict that stops passing is a regression. A numeric measurement regresses when it moves in
its *worse* direction by more than the allowed percentage. The direction comes from the name
(latency, cold start, memory, breach seconds up = worse; capacity, availability down = worse)
or, failing that, from its check (measured <= target means an upper bound).
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import BaseModel, Field

from harness.report.schema import Report, ScenarioResult

Direction = Literal["lower-is-better", "higher-is-better", "unknown"]

# checked in this order: the first family whose pattern matches the name wins, so
# "error_rate" is lower-is-better and "memory_headroom" higher-is-better.
_FAMILIES: list[tuple[re.Pattern[str], Direction]] = [
    (
        re.compile(r"^(?!.*(capacity|rps|_s$|_ms$|seconds)).*replica"),
        "unknown",
    ),  # more replicas: neither better nor worse
    (re.compile(r"headroom|budget_left|budget_remaining|margin"), "higher-is-better"),
    (
        re.compile(
            r"error|fail|drop|breach|burn|oom|kill|restart|flap|unready|stranded|lost|delay|shed_miss"
        ),
        "lower-is-better",
    ),
    (
        re.compile(r"availab|capacity|goodput|success|throughput|achieved|rps|qps|rate|spread"),
        "higher-is-better",
    ),
    (
        re.compile(
            r"latency|(?<![a-z])p\d+(\.\d+)?(?![a-z])|(?<![a-z])max(?![a-z])|cold|start|memory|"
            r"bytes|mib|recover|seconds|time_to|duration|_ms$|_ms[._]|_s$|_s[._]"
        ),
        "lower-is-better",
    ),
]

VERDICT_RANK = {"pass": 0, "skip": 1, "inconclusive": 1, "fail": 2, "error": 2}


class VerdictChange(BaseModel):
    scenario: str
    before: str
    after: str
    regression: bool


class MeasurementChange(BaseModel):
    scenario: str
    measurement: str
    before: float
    after: float
    change_pct: float | None = Field(description="signed, after vs before; None from zero")
    direction: Direction
    worse_pct: float | None = Field(description="how much worse (positive) in its direction")
    regression: bool


class Comparison(BaseModel):
    baseline: str
    candidate: str
    baseline_run: str
    candidate_run: str
    max_regression_pct: float
    warnings: list[str] = Field(default_factory=list)
    verdicts: list[VerdictChange] = Field(default_factory=list)
    measurements: list[MeasurementChange] = Field(default_factory=list)

    @property
    def regressions(self) -> int:
        return sum(v.regression for v in self.verdicts) + sum(
            m.regression for m in self.measurements
        )

    @property
    def ok(self) -> bool:
        return self.regressions == 0


def direction_of(name: str, result: ScenarioResult | None = None) -> Direction:
    key = name.lower()
    leaf = key.rsplit(".", 1)[-1]
    found: Direction = "unknown"
    for text in (leaf, key):
        found = next((d for pattern, d in _FAMILIES if pattern.search(text)), "unknown")
        if found != "unknown" or any(p.search(text) for p, _ in _FAMILIES[:1]):
            break
    if found != "unknown":
        return found
    if result is not None:
        check = next((c for c in result.checks if c.name == name.split(".")[0] and c.ok), None)
        measured, target = (
            _number(check.measured) if check else None,
            _number(check.target) if check else None,
        )
        if measured is not None and target is not None and measured != target:
            return "lower-is-better" if measured < target else "higher-is-better"
    return "unknown"


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return None if math.isnan(v) else float(v)


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves as dotted names: {"latency_ms": {"p90": 1}} -> {"latency_ms.p90": 1.0}."""
    out: dict[str, float] = {}
    for k, v in data.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, f"{name}."))
        elif (n := _number(v)) is not None:
            out[name] = n
    return out


def _measurement_change(
    scenario: ScenarioResult, name: str, before: float, after: float, max_pct: float
) -> MeasurementChange:
    direction = direction_of(name, scenario)
    change = None if before == 0 else (after - before) / abs(before) * 100
    if direction == "unknown" or after == before:
        worse: float | None = 0.0 if after == before else None
    else:
        sign = 1 if direction == "lower-is-better" else -1
        delta = sign * (after - before)
        worse = (
            math.inf
            if before == 0 and delta > 0
            else (delta / abs(before) * 100 if before else 0.0)
        )
    regression = worse is not None and worse > max_pct
    return MeasurementChange(
        scenario=scenario.name,
        measurement=name,
        before=before,
        after=after,
        change_pct=None if change is None else round(change, 2),
        direction=direction,
        worse_pct=None if worse is None else (worse if math.isinf(worse) else round(worse, 2)),
        regression=regression,
    )


def compare_reports(
    baseline: Report,
    candidate: Report,
    max_regression_pct: float = 10.0,
    baseline_name: str = "A",
    candidate_name: str = "B",
) -> Comparison:
    cmp = Comparison(
        baseline=baseline_name,
        candidate=candidate_name,
        baseline_run=baseline.run_id,
        candidate_run=candidate.run_id,
        max_regression_pct=max_regression_pct,
    )
    if baseline.profile.name != candidate.profile.name:
        cmp.warnings.append(
            f"profiles differ ({baseline.profile.name} vs {candidate.profile.name}): "
            "numbers may not be comparable"
        )
    if baseline.backend.name != candidate.backend.name:
        cmp.warnings.append(
            f"backends differ ({baseline.backend.name} vs {candidate.backend.name})"
        )
    if candidate.interrupted:
        cmp.warnings.append("the candidate run was interrupted: its report is partial")
    for before in baseline.scenarios:
        after = candidate.scenario(before.name)
        if after is None:
            regression = before.verdict == "pass"
            cmp.verdicts.append(
                VerdictChange(
                    scenario=before.name,
                    before=before.verdict,
                    after="not run",
                    regression=regression,
                )
            )
            continue
        if after.verdict != before.verdict:
            cmp.verdicts.append(
                VerdictChange(
                    scenario=before.name,
                    before=before.verdict,
                    after=after.verdict,
                    regression=VERDICT_RANK[after.verdict] > VERDICT_RANK[before.verdict],
                )
            )
        old, new = flatten(before.measurements), flatten(after.measurements)
        for name in sorted(old.keys() & new.keys()):
            cmp.measurements.append(
                _measurement_change(after, name, old[name], new[name], max_regression_pct)
            )
    for after in candidate.scenarios:
        if baseline.scenario(after.name) is None:
            cmp.verdicts.append(
                VerdictChange(
                    scenario=after.name, before="not run", after=after.verdict, regression=False
                )
            )
    return cmp
