"""Findings for people (rich) and for machines (JSON)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from harness.check.findings import Finding
from harness.check.targets import Targets

STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def summary(findings: list[Finding]) -> dict[str, int]:
    c = Counter(f.severity.value for f in findings)
    return {s: c.get(s, 0) for s in ("error", "warning", "info")}


def to_json(
    findings: list[Finding], targets: Targets, source: str, notes: list[str]
) -> dict[str, Any]:
    def val(v: Any) -> Any:
        return None if v is None else {"value": v.value, "basis": v.basis}

    return {
        "manifests": source,
        "profile": targets.profile.name,
        "targets": {
            "cold_start_p95_s": val(targets.cold_start_p95_s),
            "peak_memory_bytes": val(targets.peak_memory_bytes),
            "capacity_rps_per_replica": val(targets.capacity_rps_per_replica),
        },
        "summary": summary(findings),
        "findings": [f.to_json() for f in findings],
        "notes": notes,
    }


def print_text(
    findings: list[Finding],
    targets: Targets,
    source: str,
    notes: list[str],
    console: Console | None = None,
) -> None:
    con = console or Console()
    con.print(f"[bold]gauntlet check[/] {escape(source)}  (profile {targets.profile.name})")
    for label, v in (
        ("cold start p95", targets.cold_start_p95_s),
        ("peak memory", targets.peak_memory_bytes),
        ("capacity/replica", targets.capacity_rps_per_replica),
    ):
        shown = f"{v.value:g}  [dim]{escape(v.basis)}[/]" if v else "[dim]unknown[/]"
        con.print(f"  {label}: {shown}")
    for note in notes:
        con.print(f"  [dim]note: {escape(note)}[/]")
    con.print()
    for f in findings:
        head = Text()
        head.append(f"{f.severity.value.upper():7}", style=STYLE[f.severity.value])
        head.append(f" {f.rule}", style="bold")
        head.append(f"  {f.resource}  {f.field}")
        con.print(head)
        con.print(f"    {escape(f.message)}", soft_wrap=False)
        if f.measured:
            con.print(f"    [dim]measured:[/] {escape(f.measured)}")
        if f.required:
            con.print(f"    [dim]required:[/] {escape(f.required)}")
        if f.fix:
            con.print(f"    [green]fix:[/] {escape(f.fix)}")
        if f.basis:
            con.print(f"    [dim]basis: {escape(f.basis)}[/]")
    s = summary(findings)
    colour = "red" if s["error"] else ("yellow" if s["warning"] else "green")
    con.print(f"\n[{colour}]{s['error']} error(s), {s['warning']} warning(s), {s['info']} info[/]")


def dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2)
