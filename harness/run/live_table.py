"""certify's live table: one row per scenario, the running one with its elapsed time, the last
log line."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from harness.report.schema import ScenarioResult
from harness.report.summary import STYLE


class LiveTable:
    def __init__(self, names: list[str], title: str) -> None:
        self.title = title
        self.rows: dict[str, dict[str, Any]] = {
            n: {"status": "pending", "reason": "", "t0": None, "dur": None} for n in names
        }
        self.last_log = ""

    def start(self, name: str) -> None:
        self.rows[name].update(status="running", t0=time.monotonic())

    def finish(self, name: str, result: ScenarioResult) -> None:
        self.rows[name].update(status=result.verdict, reason=result.reason, dur=result.duration_s)

    def live(self, console: Console) -> Live:
        """The display; the log lines printed on `console` meanwhile scroll above it."""
        return Live(
            self,
            console=console,
            refresh_per_second=4,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def __rich__(self) -> Group:
        table = Table(title=self.title, expand=False)
        table.add_column("scenario")
        table.add_column("status")
        table.add_column("time", justify="right")
        table.add_column("reason", overflow="fold", max_width=80)
        for name, row in self.rows.items():
            if row["dur"] is not None:
                t = f"{row['dur']:.1f}s"
            elif row["t0"] is not None:
                t = f"{time.monotonic() - row['t0']:.0f}s"
            else:
                t = ""
            table.add_row(
                name, f"[{STYLE.get(row['status'], 'white')}]{row['status']}[/]", t, row["reason"]
            )
        return Group(table, Text(self.last_log, style="dim", overflow="ellipsis", no_wrap=True))
