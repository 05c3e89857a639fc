"""JUnit XML from a report: one testcase per requested scenario, so any CI shows the verdicts."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

from harness.report.schema import Report, ScenarioResult


def _checks_text(result: ScenarioResult) -> str:
    lines = [f"{result.verdict}: {result.reason}"]
    for c in result.checks:
        mark = {"met": "ok ", "failed": "FAIL", "inconclusive": "????"}[c.outcome]
        note = f"  ({c.note})" if c.note else ""
        lines.append(f"  [{mark}] {c.name}: measured {c.measured}{c.unit} vs target {c.target}{c.unit}{note}")
    for cav in result.caveats:
        lines.append(f"  caveat: {cav}")
    for ev in result.evidence:
        lines.append(f"  evidence: {ev}")
    return "\n".join(lines)


def junit_tree(report: Report) -> ET.ElementTree:
    classname = f"gauntlet.{report.profile.name}.{report.backend.name}"
    suite = ET.Element(
        "testsuite",
        name="gauntlet-certify",
        tests=str(report.summary.total),
        # an inconclusive scenario is not green: a failure of type Inconclusive
        failures=str(report.summary.failed + report.summary.inconclusive),
        errors=str(report.summary.errors),
        skipped=str(report.summary.skipped + report.summary.not_run),
        time=f"{(report.finished_at or report.started_at) - report.started_at:.2f}",
        timestamp=datetime.fromtimestamp(report.started_at, UTC).isoformat(timespec="seconds"),
        hostname=report.environment.host,
    )
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("run_id", report.run_id),
        ("profile", report.profile.name),
        ("backend", report.backend.name),
        ("manifests", report.manifests.source),
        ("limits_enforced", str(report.environment.cgroup.limits_enforced).lower()),
        ("result", report.result),
    ):
        ET.SubElement(props, "property", name=name, value=value)

    for result in report.scenarios:
        case = ET.SubElement(
            suite, "testcase", classname=classname, name=result.name, time=f"{result.duration_s:.2f}"
        )
        text = _checks_text(result)
        if result.verdict == "fail":
            ET.SubElement(case, "failure", message=result.reason, type="SLOViolation").text = text
        elif result.verdict == "inconclusive":
            ET.SubElement(case, "failure", message=result.reason, type="Inconclusive").text = text
        elif result.verdict == "error":
            ET.SubElement(case, "error", message=result.reason, type="HarnessError").text = text
        elif result.verdict == "skip":
            ET.SubElement(case, "skipped", message=result.reason).text = text
        out = {"measurements": result.measurements, "targets": result.targets}
        ET.SubElement(case, "system-out").text = json.dumps(out, indent=2, default=str)
    for name in report.not_run:
        case = ET.SubElement(suite, "testcase", classname=classname, name=name, time="0")
        ET.SubElement(case, "skipped", message="not run: certification interrupted")
    ET.indent(suite)
    return ET.ElementTree(suite)


def write_junit(report: Report, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    junit_tree(report).write(path, encoding="utf-8", xml_declaration=True)
    return path
