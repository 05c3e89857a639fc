"""`report.html`: one self-contained page (plots embedded; PNGs also kept beside it in plots/)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from harness.report.evidence_reader import read_evidence
from harness.report.plots import Plot, scenario_plots
from harness.report.schema import Report, ScenarioResult
from harness.run import evidence as names


@dataclass
class ScenarioView:
    result: ScenarioResult
    plots: list[tuple[Plot, str]] = field(default_factory=list)  # (plot, data URI)
    files: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("harness.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = lambda t: (
        datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if t else "—"
    )
    env.filters["value"] = _value
    env.filters["gib"] = lambda b: f"{b / 1024**3:.1f} GiB"
    return env


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict | list):
        return json.dumps(v, default=str)
    return str(v)


def _profile_get(content: dict[str, Any], *keys: str) -> Any:
    cur: Any = content
    for k in keys:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(k)
    return cur


def build_views(report: Report, run_dir: Path) -> list[ScenarioView]:
    content = report.profile.content
    views = []
    for result in report.scenarios:
        ev = read_evidence(run_dir / result.name)
        plots = scenario_plots(
            result.name,
            ev,
            run_dir / names.PLOTS_DIR,
            slo=_profile_get(content, "slo") or {},
            headroom=_profile_get(content, "memory", "headroom"),
            cold_start_target_s=_profile_get(content, "cold_start", "p95_s"),
        )
        embedded = [
            (p, "data:image/png;base64," + base64.b64encode(p.path.read_bytes()).decode())
            for p in plots
        ]
        views.append(
            ScenarioView(result, embedded, [f"{result.name}/{f}" for f in ev.files], ev.problems)
        )
    return views


def render_html(report: Report, run_dir: Path) -> str:
    template = _env().get_template("report.html.j2")
    return template.render(
        report=report,
        views=build_views(report, run_dir),
        profile_json=json.dumps(report.profile.content, indent=2, default=str),
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    )


def write_html(report: Report, run_dir: Path) -> Path:
    path = run_dir / names.HTML
    path.write_text(render_html(report, run_dir))
    return path
