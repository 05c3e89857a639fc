"""`gauntlet report DIR` re-renders from report.json + evidence; bad evidence never breaks it."""

from __future__ import annotations

from pathlib import Path

import fakes_report
import pytest
from fakes_report import quiet

from harness.cli import main
from harness.report import load_report
from harness.report.evidence_reader import parse_load, read_evidence
from harness.report.schema import ScenarioResult
from harness.run.engine import certify
from harness.run.options import CertifyOptions
from harness.verdict import Verdict


def test_report_command_rerenders_html_and_survives_bad_evidence(
    tmp_path, manifests_file, fake_env, capsys
):
    fake_env({"zone-failure": "zone_pass"})
    _, run_dir = certify(
        CertifyOptions(manifests=str(manifests_file), out=tmp_path / "run", html=False),
        console=quiet(),
    )
    assert not (run_dir / "report.html").exists()
    (run_dir / "zone-failure" / "hpa_history.json").write_text("{not json")
    main(["report", str(run_dir)])  # returns normally: exit 0
    out = capsys.readouterr().out
    assert "zone-failure" in out and "pass" in out
    html = (run_dir / "report.html").read_text()
    assert "hpa_history.json: unreadable" in html  # said why the replicas plot is missing
    plots = {p.name for p in (run_dir / "plots").glob("*.png")}
    assert "zone-failure-load.png" in plots and "zone-failure-replicas.png" not in plots
    assert "zone-outage: zone-a" in html or "zone-failure-load.png" in html
    with pytest.raises(SystemExit) as exc:
        main(["report", str(tmp_path / "nowhere")])
    assert exc.value.code == 2


def test_load_timeline_variants():
    flat = {
        "started_at": 100.0,
        "timeline": [
            {"t": 0, "requests": 5, "errors": 1, "p90_ms": 12.0},
            {"t": 1, "requests": 5, "errors": {"429": 2, "503": 1}},
        ],
    }
    s = parse_load(flat, "load")
    assert s is not None
    assert s.time == [100.0, 101.0] and s.errors == [1.0, 3.0] and s.latency["p90"] == [12.0, None]
    epoch = {"timeline": [{"time": 5.0, "requests": 1, "latency_ms": {"p50": 1.0}}]}
    s = parse_load(epoch, "load")
    assert s is not None and s.time == [5.0] and s.latency["p50"] == [1.0]
    assert parse_load({"requests": 3}, "load") is None


def test_evidence_reader_collects_all_files(tmp_path):
    d = tmp_path / "zone-failure"
    d.mkdir()
    (d / "load.json").write_text('{"started_at": 1, "timeline": [{"t": 0, "requests": 1}]}')
    (d / "load-drain.json").write_text('{"no": "timeline"}')
    (d / "faults.json").write_text(
        '[{"kind": "zone-outage", "target": "zone-a", "started_at": 2, "landed": false}]'
    )
    (d / "hpa.json").write_text(
        '{"items": [{"time": 1, "currentReplicas": 1, "desiredReplicas": 2}]}'
    )  # an older run's name
    ev = read_evidence(d)
    assert (
        len(ev.loads) == 1 and ev.faults[0]["landed"] is False and ev.hpa[0]["desiredReplicas"] == 2
    )
    assert ev.problems == ["load-drain.json: no per-second `timeline`"]
    (d / "hpa_history.json").write_text('[{"time": 1, "currentReplicas": 1, "desiredReplicas": 3}]')
    assert read_evidence(d).hpa[0]["desiredReplicas"] == 3  # today's name wins


def test_unserialisable_measurements_are_kept_as_text():
    v = fakes_report.nan_measurement(
        type("Ctx", (), {"profile": type("P", (), {"name": "local"})})()
    )
    assert isinstance(v, Verdict)
    r = ScenarioResult.from_verdict(v)
    assert r.measurements["breach_s"] is None  # JSON has no NaN: the report says "no value"
    assert isinstance(r.measurements["obj"], str)
    assert r.measurements["nested"] == {"p90": 1.0}


def test_report_file_argument_accepts_the_json_path(tmp_path, manifests_file, fake_env):
    fake_env({"oom-headroom": "skip"})
    _, run_dir = certify(
        CertifyOptions(manifests=str(manifests_file), out=tmp_path / "r", html=False),
        console=quiet(),
    )
    main(["report", str(run_dir / "report.json"), "--no-html"])
    assert load_report(Path(run_dir)).scenarios[0].verdict == "skip"


def test_the_load_engines_own_timeline_gives_offered_and_achieved_rates(tmp_path):
    """load.json as `gauntlet load` writes it (`rate_rps`, `requested_rps`, errors by status):
    both rates are drawn, not a flat zero, and the axis starts at 0."""
    from harness.report.plots import plot_load, wall_clock

    data = {
        "started_at": 1796143682.5,
        "timeline": [
            {"t": 0.0, "rate_rps": 9.0, "requested_rps": 14.0, "errors": {}},
            {"t": 1.0, "rate_rps": 13.0, "requested_rps": 14.0, "errors": {"429": 2}},
        ],
    }
    s = parse_load(data, "load")
    assert s is not None
    assert s.requests == [9.0, 13.0] and s.offered == [14.0, 14.0] and s.errors == [0.0, 2.0]
    ev = read_evidence(tmp_path)
    ev.loads = [s]
    assert plot_load(ev, s.time[0], tmp_path / "load.png", {}) is not None
    assert wall_clock(1796143682.5) == "2026-12-01 16:48:02 UTC"


def test_streamed_timelines_and_the_capacity_sweep_are_drawn(tmp_path):
    """TTFT / TPOT per second come from a streamed load.json (an unstreamed one draws no stream
    figure); the capacity sweep is read from the scenario's checks.json."""
    import json

    from harness.report.plots import scenario_plots

    row = {"t": 0.0, "rate_rps": 9.0, "errors": {}, "latency_ms": {"p90": 200.0}}
    streamed = {
        "started_at": 1796143682.5,
        "timeline": [
            {
                **row,
                "ttft_ms": {"p50": 50.0, "p90": 60.0},
                "tpot_ms": {"p50": 7.0, "p90": 9.0},
                "itl_ms": {"p50": 6.0, "p90": 8.0},
            },
            {**row, "t": 1.0, "ttft_ms": {}, "tpot_ms": {}},  # a second with no ok stream
        ],
    }
    s = parse_load(streamed, "load")
    assert s is not None and s.ttft == {"p50": [50.0, None], "p90": [60.0, None]}
    assert s.itl == {"p50": [6.0, None], "p90": [8.0, None]}
    plain = parse_load({"started_at": 1.0, "timeline": [row]}, "load")
    assert plain is not None and plain.ttft == {} and plain.tpot == {}

    (tmp_path / "load.json").write_text(json.dumps(streamed))
    sweep = [
        {"requested_rps": r, "achieved_rps": r, "goodput": 1.0, "slo_held": r < 30,
         "latency_ms": {"p90": 10 * r}, "ttft_ms": {"p90": 50.0}, "tpot_ms": {"p90": 8.0}}
        for r in (10.0, 20.0, 30.0)
    ]  # fmt: skip
    (tmp_path / "checks.json").write_text(json.dumps({"measurements": {"capacity_sweep": sweep}}))
    ev = read_evidence(tmp_path)
    assert len(ev.capacity_sweep) == 3
    slo = {"latency_ms": {"p90": 300}, "ttft_ms": {"p90": 200}, "tpot_ms": {"p90": 25}}
    kinds = {p.kind for p in scenario_plots("capacity", ev, tmp_path / "plots", slo=slo)}
    assert {"load", "stream", "capacity"} <= kinds, ev.problems


def test_a_metrics_gap_is_a_note_not_silence(tmp_path: Path) -> None:
    """kube's metrics API away for a while (metrics_gaps.json) shows as a note in the report's
    evidence: no samples then is not no use."""
    import json

    from harness.report.evidence_reader import read_evidence

    (tmp_path / "metrics_gaps.json").write_text(
        json.dumps(
            [
                {
                    "first_failure": 1796143682.5,
                    "last_failure": 1796143712.5,
                    "failures": 4,
                    "statuses": [503],
                    "message": "service unavailable",
                    "recovered_at": 1796143722.5,
                },
                {
                    "first_failure": 1796143800.0,
                    "last_failure": 1796143810.0,
                    "failures": 2,
                    "statuses": [404],
                    "message": "not found",
                    "recovered_at": None,
                },
            ]
        )
    )
    ev = read_evidence(tmp_path)
    assert (
        "metrics API away for 40 s from 2026-12-01 16:48:02 UTC (4 failed polls: 503): "
        "no resource samples then"
    ) in ev.problems
    assert any("away until the end" in p and "404" in p for p in ev.problems)
