"""Certification reports: report.json (schema), junit.xml, report.html with plots, and compare."""

from __future__ import annotations

from pathlib import Path

from harness.report.schema import SCHEMA_VERSION, Report, ScenarioResult, load_report

__all__ = ["SCHEMA_VERSION", "Report", "ScenarioResult", "load_report", "write_outputs"]


def write_outputs(report: Report, run_dir: Path, html: bool = True) -> dict[str, Path]:
    """report.json first (the record), then junit.xml, then report.html (the slowest, plots)."""
    from harness.report.junit import write_junit
    from harness.run import evidence as names

    out = {
        "json": report.write(run_dir / names.REPORT),
        "junit": write_junit(report, run_dir / names.JUNIT),
    }
    if html:
        from harness.report.html import write_html

        out["html"] = write_html(report, run_dir)
    return out
