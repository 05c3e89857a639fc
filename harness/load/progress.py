"""Live progress for a running load (rich), refreshed from the workers' progress files."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from rich.console import Console
from rich.live import Live
from rich.text import Text

if TYPE_CHECKING:
    from harness.load.runner import LoadHandle


def render(handle: LoadHandle) -> Text:
    p = handle.progress()
    spec = handle.spec
    t = min(p["t"], spec.duration_s)
    rate = p["sent"] / p["t"] if p["t"] > 0 else 0.0
    what = (
        f"{spec.rate_rps:g} req/s {spec.arrival}" if spec.mode == "open" else f"{spec.users} users"
    )
    return Text(
        f"load {spec.mode} [{what}, {spec.effective_shape().describe()}] "
        f"{t:5.1f}/{spec.duration_s:g} s  sent {int(p['sent'])} ({rate:.0f}/s)  ok {int(p['ok'])}  "
        f"errors {int(p['errors'])}  dropped {int(p['dropped'])}  in-flight {int(p['in_flight'])}"
    )


def show_progress(handle: LoadHandle) -> None:
    """Blocks until the run ends, redrawing a one-line status on stderr."""
    console = Console(file=sys.stderr)
    with Live(render(handle), console=console, refresh_per_second=4, transient=False) as live:
        while handle.running:
            live.update(render(handle))
            time.sleep(0.25)
        live.update(render(handle))
