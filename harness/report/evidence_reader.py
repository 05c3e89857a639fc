"""Readers for the evidence files a scenario leaves in its folder (`<run-dir>/<scenario>/`).

The file names are `harness.run.evidence`'s; names and shapes are the contract with the
scenarios (see docs/certify.md). Readers are tolerant: a missing or malformed file means "no
plot", never a failed report, and the reason is kept so the report can say why a plot is absent.
"""

from __future__ import annotations

import datetime
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.run import evidence as names

#: Evidence attribute -> the file it is read from
RECORD_FILES = {
    "faults": names.FAULTS,
    "pods": names.PODS,
    "events": names.EVENTS,
    "hpa": names.HPA_HISTORY,
    "resources": names.RESOURCES,
    "nodes": names.NODES,
}


@dataclass
class LoadSeries:
    """A load run's per-second timeline on absolute (epoch) time."""

    label: str
    time: list[float] = field(default_factory=list)
    requests: list[float] = field(default_factory=list)  # achieved: requests sent per second
    offered: list[float | None] = field(default_factory=list)  # the schedule's rate
    errors: list[float] = field(default_factory=list)
    latency: dict[str, list[float | None]] = field(default_factory=dict)  # p50/p90/p99 -> ms
    ttft: dict[str, list[float | None]] = field(default_factory=dict)  # streams only
    tpot: dict[str, list[float | None]] = field(default_factory=dict)
    itl: dict[str, list[float | None]] = field(default_factory=dict)


@dataclass
class Evidence:
    """Everything plottable found in one scenario folder."""

    dir: Path
    loads: list[LoadSeries] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)
    pods: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    hpa: list[dict[str, Any]] = field(default_factory=list)  # HPA status history
    resources: list[dict[str, Any]] = field(default_factory=list)
    nodes: list[dict[str, Any]] = field(default_factory=list)
    cold_start: dict[str, Any] | None = None
    capacity_sweep: list[dict[str, Any]] = field(default_factory=list)  # checks.json measurement
    service_sweep: list[dict[str, Any]] = field(default_factory=list)  # capacity's Service sweep
    problems: list[str] = field(default_factory=list)

    @property
    def files(self) -> list[str]:
        return (
            sorted(p.name for p in self.dir.glob("*") if p.is_file()) if self.dir.is_dir() else []
        )


def _read_json(path: Path, problems: list[str]) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        problems.append(f"{path.name}: unreadable ({err})")
        return None


def _records(
    data: Any, path: Path, problems: list[str], key: str = "items"
) -> list[dict[str, Any]]:
    """A list of objects, or {"items": [...]} (as `kubectl get -o json` gives)."""
    if data is None:
        return []
    if isinstance(data, dict):
        data = data.get(key, data.get("records"))
    if not isinstance(data, list):
        problems.append(f"{path.name}: expected a list of objects")
        return []
    return [d for d in data if isinstance(d, dict)]


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int | float):
        return None if math.isnan(v) else float(v)
    return None


def _count(v: Any) -> float:
    """An error count, or a {status: count} mapping summed."""
    if isinstance(v, dict):
        return float(sum(_num(x) or 0 for x in v.values()))
    return _num(v) or 0.0


_TIME_KEYS = ("t", "second", "elapsed_s", "t_s", "offset_s")
_EPOCH_KEYS = ("time", "timestamp", "start")


def parse_load(data: Any, label: str) -> LoadSeries | None:
    """load.json (the load engine's output) -> a series; None when it has no timeline."""
    if not isinstance(data, dict):
        return None
    timeline = data.get("timeline")
    if not isinstance(timeline, list) or not timeline:
        return None
    started = _num(data.get("started_at")) or 0.0
    series = LoadSeries(label=label)
    for row in timeline:
        if not isinstance(row, dict):
            continue
        t = next((_num(row[k]) for k in _TIME_KEYS if k in row), None)
        if t is not None:
            t += started
        else:
            t = next((_num(row[k]) for k in _EPOCH_KEYS if k in row), None)
        if t is None:
            continue
        series.time.append(t)
        achieved = next((row[k] for k in ("rate_rps", "sent", "requests", "count") if k in row), 0)
        series.requests.append(_count(achieved))
        series.offered.append(_num(row.get("requested_rps")))
        series.errors.append(_count(row.get("errors", 0)))
        lat = row.get("latency_ms")
        for p in ("p50", "p90", "p99"):
            value = lat.get(p) if isinstance(lat, dict) else row.get(f"{p}_ms", row.get(p))
            series.latency.setdefault(p, []).append(_num(value))
        for key, into in (
            ("ttft_ms", series.ttft),
            ("tpot_ms", series.tpot),
            ("itl_ms", series.itl),
        ):
            pct = row.get(key)
            for p in ("p50", "p90"):
                into.setdefault(p, []).append(_num(pct.get(p)) if isinstance(pct, dict) else None)
    for into in (series.ttft, series.tpot, series.itl):  # an unstreamed run has no stream series
        for p in [p for p, values in into.items() if all(v is None for v in values)]:
            del into[p]
    return series if series.time else None


def load_path_note(data: Any, name: str) -> str | None:
    """A load that did not go through the Service says so (load.json's `load_path`)."""
    from harness.load.result import LOAD_PATHS

    path = data.get("load_path") if isinstance(data, dict) else None
    if path is None or path == "service":
        return None
    return f"{name}: load went {LOAD_PATHS.get(str(path), str(path))}"


def wall_clock(epoch: float) -> str:
    """An epoch time as the UTC wall-clock time a person reads (date, time, zone)."""
    when = datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


def metrics_gap_notes(gaps: Any) -> list[str]:
    """One note per span the metrics API was away (metrics_gaps.json): no resource samples
    then, which is not the same as no use."""
    out = []
    for g in gaps if isinstance(gaps, list) else []:
        if not isinstance(g, dict) or "first_failure" not in g:
            continue
        end = g.get("recovered_at")
        span = (
            f"for {float(end) - float(g['first_failure']):.0f} s"
            if end is not None
            else "until the end"
        )
        statuses = ", ".join(str(s) for s in g.get("statuses") or []) or "no answer"
        out.append(
            f"metrics API away {span} from {wall_clock(float(g['first_failure']))} "
            f"({g.get('failures', 0)} failed polls: {statuses}): no resource samples then"
        )
    return out


def read_evidence(scenario_dir: Path) -> Evidence:
    ev = Evidence(dir=scenario_dir)
    if not scenario_dir.is_dir():
        return ev
    for path in sorted(scenario_dir.glob(names.PLOTTED_LOADS)):
        data = _read_json(path, ev.problems)
        series = parse_load(data, path.stem)
        if series is None and data is not None:
            ev.problems.append(f"{path.name}: no per-second `timeline`")
        note = load_path_note(data, path.name)
        if note:
            ev.problems.append(note)
        if series is not None:
            ev.loads.append(series)
    for attr, file in RECORD_FILES.items():
        path = scenario_dir / file
        if not path.exists() and file in names.LEGACY:  # a run dir of an older Gauntlet
            path = scenario_dir / names.LEGACY[file]
        setattr(ev, attr, _records(_read_json(path, ev.problems), path, ev.problems))
    ev.problems.extend(
        metrics_gap_notes(_read_json(scenario_dir / names.METRICS_GAPS, ev.problems))
    )
    cold = _read_json(scenario_dir / names.COLD_START, ev.problems)
    if isinstance(cold, list):
        cold = {"starts": cold}
    ev.cold_start = cold if isinstance(cold, dict) else None
    checks = _read_json(scenario_dir / names.CHECKS, ev.problems)
    if isinstance(checks, dict):
        for attr in ("capacity_sweep", "service_sweep"):
            sweep = (checks.get("measurements") or {}).get(attr)
            if isinstance(sweep, list):
                setattr(ev, attr, [r for r in sweep if isinstance(r, dict)])
    return ev
