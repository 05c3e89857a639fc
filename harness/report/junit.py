"""JUnit XML from a report, so any CI page says which scenario, and which check, failed.

One `<testsuite>` per requested scenario: first the scenario's own testcase (its verdict, every
check listed in the text), then one testcase per check (classname `gauntlet.<profile>.<backend>.
<scenario>`, name the check's): met passes, failed is a `<failure>`, inconclusive is skipped
with its note. An inconclusive scenario is a failure of type Inconclusive: it is not green.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from harness.report.schema import Report, ScenarioResult
from harness.verdict import Check


@dataclass
class _Counts:
    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0

    def add(self, outcome: str) -> None:
        self.tests += 1
        self.failures += outcome == "failure"
        self.errors += outcome == "error"
        self.skipped += outcome == "skipped"

    def attrs(self) -> dict[str, str]:
        return {k: str(v) for k, v in vars(self).items()}


def _value(c: Check, v: object) -> str:
    return f"{v}{c.unit}"


def _check_line(c: Check) -> str:
    return f"measured {_value(c, c.measured)} vs target {_value(c, c.target)}" + (
        f"  ({c.note})" if c.note else ""
    )


def _checks_text(result: ScenarioResult) -> str:
    lines = [f"{result.verdict}: {result.reason}"]
    for c in result.checks:
        mark = {"met": "ok ", "failed": "FAIL", "inconclusive": "????", "skipped": "skip"}[
            c.outcome
        ]
        lines.append(f"  [{mark}] {c.name}: {_check_line(c)}")
    for cav in result.caveats:
        lines.append(f"  caveat: {cav}")
    for ev in result.evidence:
        lines.append(f"  evidence: {ev}")
    return "\n".join(lines)


def _scenario_case(suite: ET.Element, classname: str, result: ScenarioResult) -> str:
    case = ET.SubElement(
        suite, "testcase", classname=classname, name=result.name, time=f"{result.duration_s:.2f}"
    )
    text = _checks_text(result)
    outcome = {
        "fail": "failure",
        "inconclusive": "failure",
        "error": "error",
        "skip": "skipped",
    }.get(result.verdict, "")
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
    return outcome


def _check_case(suite: ET.Element, classname: str, c: Check) -> str:
    case = ET.SubElement(suite, "testcase", classname=classname, name=c.name, time="0")
    line = _check_line(c)
    if c.outcome == "failed":
        ET.SubElement(case, "failure", message=line, type="SLOViolation").text = line
        return "failure"
    if c.outcome == "inconclusive":
        ET.SubElement(case, "skipped", message=f"inconclusive: {c.note or line}").text = line
        return "skipped"
    if c.outcome == "skipped":
        ET.SubElement(case, "skipped", message=f"skipped: {c.skipped}").text = line
        return "skipped"
    ET.SubElement(case, "system-out").text = line
    return ""


def junit_tree(report: Report) -> ET.ElementTree:
    classname = f"gauntlet.{report.profile.name}.{report.backend.name}"
    timestamp = datetime.fromtimestamp(report.started_at, UTC).isoformat(timespec="seconds")
    total = _Counts()
    root = ET.Element(
        "testsuites",
        name="gauntlet-certify",
        time=f"{(report.finished_at or report.started_at) - report.started_at:.2f}",
    )

    def suite_for(name: str, time: float) -> ET.Element:
        suite = ET.SubElement(
            root,
            "testsuite",
            name=name,
            time=f"{time:.2f}",
            timestamp=timestamp,
            hostname=report.environment.host,
        )
        props = ET.SubElement(suite, "properties")
        for key, value in (
            ("run_id", report.run_id),
            ("profile", report.profile.name),
            ("backend", report.backend.name),
            ("manifests", report.manifests.source),
            ("limits_enforced", str(report.environment.cgroup.limits_enforced).lower()),
            ("result", report.result),
        ):
            ET.SubElement(props, "property", name=key, value=value)
        return suite

    for result in report.scenarios:
        suite = suite_for(result.name, result.duration_s)
        counts = _Counts()
        counts.add(_scenario_case(suite, classname, result))
        for check in result.checks:
            counts.add(_check_case(suite, f"{classname}.{result.name}", check))
        suite.attrib.update(counts.attrs())
        for k, v in vars(counts).items():
            setattr(total, k, getattr(total, k) + v)
    for name in report.not_run:
        suite = suite_for(name, 0.0)
        case = ET.SubElement(suite, "testcase", classname=classname, name=name, time="0")
        ET.SubElement(case, "skipped", message="not run: certification interrupted")
        suite.attrib.update(_Counts(tests=1, skipped=1).attrs())
        total.add("skipped")
    root.attrib.update(total.attrs())
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(report: Report, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    junit_tree(report).write(path, encoding="utf-8", xml_declaration=True)
    return path
