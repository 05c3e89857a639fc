"""What the checks compare against: measured values from a report, else the profile's declared ones.

A measured file is JSON with either a top-level
`measured: {cold_start_p95_s, peak_memory_bytes, capacity_rps_per_replica}`, or scenarios
(a list, as in report.json, or a name -> scenario mapping) whose `measurements` hold any of
those keys. Several scenarios: the most conservative value wins (largest cold start and peak,
smallest capacity).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import InputError
from harness.profile import Profile

KEYS = ("cold_start_p95_s", "peak_memory_bytes", "capacity_rps_per_replica")


@dataclass(frozen=True)
class Value:
    value: float
    basis: str  # "measured (report.json)", "declared (profile local: cold_start.declared_p95_s)"

    def __str__(self) -> str:
        return f"{self.value:g}"


@dataclass(frozen=True)
class Targets:
    profile: Profile
    cold_start_p95_s: Value | None
    peak_memory_bytes: Value | None
    capacity_rps_per_replica: Value | None


def load_measured(path: str | Path) -> dict[str, float]:
    """Read measured values from a report JSON; InputError names the bad field."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise InputError("file not found", file=p, fix="pass a certification report.json") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read: {err}", file=p) from None
    except json.JSONDecodeError as err:
        raise InputError(f"not valid JSON: {err.msg} (line {err.lineno})", file=p) from None
    if not isinstance(data, dict):
        raise InputError("must be a JSON object", file=p, fix="see docs/check.md, --measured")
    found: dict[str, list[float]] = {k: [] for k in KEYS}
    sources: list[tuple[str, Any]] = []
    if "measured" in data:
        sources.append(("measured", data["measured"]))
    scenarios = data.get("scenarios")
    if isinstance(scenarios, dict):
        sources += [
            (f"scenarios.{k}.measurements", (v or {}).get("measurements"))
            for k, v in scenarios.items()
            if isinstance(v, dict)
        ]
    elif isinstance(scenarios, list):
        sources += [
            (f"scenarios[{i}].measurements", s.get("measurements"))
            for i, s in enumerate(scenarios)
            if isinstance(s, dict)
        ]
    for where, block in sources:
        if block is None:
            continue
        if not isinstance(block, dict):
            raise InputError("must be an object", file=p, field=where)
        for key in KEYS:
            if block.get(key) is None:
                continue
            v = block[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise InputError(
                    f"must be a positive number, got {v!r}", file=p, field=f"{where}.{key}"
                )
            found[key].append(float(v))
    if not any(found.values()):
        raise InputError(
            f"no measured values found (looked for {', '.join(KEYS)})",
            file=p,
            field="measured",
            fix="add measured: {cold_start_p95_s: ..., peak_memory_bytes: ..., "
            "capacity_rps_per_replica: ...} or pass a certification report",
        )
    out: dict[str, float] = {}
    for key, values in found.items():
        if values:
            out[key] = min(values) if key == "capacity_rps_per_replica" else max(values)
    return out


def targets_for(
    profile: Profile, measured: dict[str, float] | None = None, measured_source: str = "report"
) -> Targets:
    measured = measured or {}
    m = f"measured ({measured_source})"
    d = f"declared (profile {profile.name})"

    def pick(key: str, declared: float | None, field: str) -> Value | None:
        if key in measured:
            return Value(measured[key], m)
        if declared is not None:
            return Value(float(declared), f"{d}: {field}")
        return None

    return Targets(
        profile=profile,
        cold_start_p95_s=pick(
            "cold_start_p95_s", profile.cold_start.declared_p95_s, "cold_start.declared_p95_s"
        ),
        peak_memory_bytes=pick("peak_memory_bytes", None, ""),
        capacity_rps_per_replica=pick(
            "capacity_rps_per_replica",
            profile.spike.capacity_rps_per_replica,
            "spike.capacity_rps_per_replica",
        ),
    )
