"""compare: verdict regressions, direction-aware measurement regressions, exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.errors import InputError
from harness.report import load_report
from harness.report.compare import compare_reports, direction_of
from harness.report.environment import collect_environment
from harness.report.schema import BackendInfo, ManifestsInfo, ProfileInfo, Report, ScenarioResult
from harness.verdict import Check


def make_report(run_id: str, **scenarios: tuple[str, dict]) -> Report:
    results = []
    for name, (verdict, measurements) in scenarios.items():
        name = name.replace("_", "-")
        checks = (
            [
                Check(
                    name="capacity_per_replica",
                    measured=measurements.get("capacity_per_replica", 0),
                    target=5,
                    ok=True,
                )
            ]
            if "capacity_per_replica" in measurements
            else []
        )
        results.append(
            ScenarioResult(
                name=name, verdict=verdict, reason=verdict, measurements=measurements, checks=checks
            )
        )
    return Report(
        run_id=run_id,
        started_at=1.0,
        finished_at=2.0,
        result="pass",
        requested=[r.name for r in results],
        profile=ProfileInfo(name="local", content={}),
        backend=BackendInfo(name="local"),
        manifests=ManifestsInfo(source="m"),
        environment=collect_environment(),
        scenarios=results,
    ).finalize()


BASE: dict[str, tuple[str, dict[str, Any]]] = {
    "cold_start": ("pass", {"cold_start_p95_s": 10.0, "phases": {"weights_s": 4.0}}),
    "hpa": ("pass", {"breach_s": 5.0, "max_replicas_reached": 4, "capacity_per_replica": 10.0}),
    "zone_failure": ("pass", {"latency_ms": {"p90": 200.0}, "availability": 0.999, "errors": 0}),
}


def write(tmp_path: Path, name: str, report: Report) -> Path:
    return report.write(tmp_path / name / "report.json")


def test_directions():
    assert direction_of("latency_ms.p90") == "lower-is-better"
    assert direction_of("cold_start_p95_s") == "lower-is-better"
    assert direction_of("peak_memory_bytes") == "lower-is-better"
    assert direction_of("breach_s") == "lower-is-better"
    assert direction_of("error_rate") == "lower-is-better"
    assert direction_of("availability") == "higher-is-better"
    assert direction_of("capacity_rps_per_replica") == "higher-is-better"
    assert direction_of("memory_headroom") == "higher-is-better"
    assert direction_of("max_replicas_reached") == "unknown"


def test_latency_regression_is_caught(tmp_path):
    after = json.loads(json.dumps(BASE))
    after["zone_failure"][1]["latency_ms"]["p90"] = 260.0  # +30 %
    cmp = compare_reports(make_report("a", **BASE), make_report("b", **after), 10.0)
    bad = [m for m in cmp.measurements if m.regression]
    assert [(m.scenario, m.measurement, m.worse_pct) for m in bad] == [
        ("zone-failure", "latency_ms.p90", 30.0)
    ]
    assert not cmp.ok
    # within the allowed regression it passes
    assert compare_reports(make_report("a", **BASE), make_report("b", **after), 50.0).ok


def test_improvement_passes_and_capacity_drop_fails(tmp_path):
    better = json.loads(json.dumps(BASE))
    better["zone_failure"][1]["latency_ms"]["p90"] = 100.0
    better["zone_failure"][1]["availability"] = 0.9999
    better["cold_start"][1]["cold_start_p95_s"] = 5.0
    better["hpa"][1]["max_replicas_reached"] = 9  # unknown direction: reported, never gated
    cmp = compare_reports(make_report("a", **BASE), make_report("b", **better), 0.0)
    assert cmp.ok, cmp
    improved = {m.measurement for m in cmp.measurements if (m.worse_pct or 0) < 0}
    assert improved == {"latency_ms.p90", "availability", "cold_start_p95_s"}

    worse = json.loads(json.dumps(BASE))
    worse["hpa"][1]["capacity_per_replica"] = 7.0  # -30 %: higher is better
    worse["zone_failure"][1]["errors"] = 3  # from zero
    cmp = compare_reports(make_report("a", **BASE), make_report("b", **worse), 10.0)
    assert {m.measurement for m in cmp.measurements if m.regression} == {
        "capacity_per_replica",
        "errors",
    }


def test_verdict_regressions(tmp_path):
    after = json.loads(json.dumps(BASE))
    after["hpa"] = ("fail", BASE["hpa"][1])
    del after["cold_start"]
    cmp = compare_reports(make_report("a", **BASE), make_report("b", **after), 100.0)
    changes = {(v.scenario, v.before, v.after, v.regression) for v in cmp.verdicts}
    assert changes == {("hpa", "pass", "fail", True), ("cold-start", "pass", "not run", True)}
    # fail -> pass is an improvement
    cmp = compare_reports(make_report("b", **after), make_report("a", **BASE), 0.0)
    assert cmp.ok


def test_compare_cli_exit_codes_and_json(tmp_path, capsys):
    a = write(tmp_path, "a", make_report("a", **BASE))
    after = json.loads(json.dumps(BASE))
    after["cold_start"][1]["cold_start_p95_s"] = 12.0  # +20 %
    b = write(tmp_path, "b", make_report("b", **after))
    with pytest.raises(SystemExit) as exc:
        main(["compare", str(a), str(b)])
    assert exc.value.code == 1
    assert "REGRESSION" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["compare", str(a), str(b.parent), "--max-regression", "25", "--format", "json"])
    assert exc.value.code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["max_regression_pct"] == 25 and any(
        m["measurement"] == "cold_start_p95_s" for m in data["measurements"]
    )
    with pytest.raises(SystemExit) as exc:
        main(["compare", str(a), str(tmp_path / "missing.json")])
    assert exc.value.code == 2


def test_load_report_rejects_other_schema_versions(tmp_path):
    path = write(tmp_path, "a", make_report("a", **BASE))
    data = json.loads(path.read_text())
    data["schema_version"] = 2
    path.write_text(json.dumps(data))
    with pytest.raises(InputError) as exc:
        load_report(path)
    assert exc.value.field == "schema_version"
    data["schema_version"] = 1
    data["scenarios"][0]["verdict"] = "maybe"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError) as exc:
        load_report(path)
    assert "scenarios.0.verdict" in str(exc.value)
