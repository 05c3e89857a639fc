"""The one-line live status of a running load (rich, on stderr), from the workers' progress files.

Knows nothing of the runner: it draws anything shaped like a `LoadHandle` (`LiveLoad`), so
`harness.load.runner` can import it without an import cycle.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Protocol

from rich.console import Console
from rich.live import Live
from rich.text import Text

if TYPE_CHECKING:
    from harness.load.spec import LoadSpec


class LiveLoad(Protocol):
    """What the bar reads from a running load (`harness.load.runner.LoadHandle` is one)."""

    spec: LoadSpec

    @property
    def running(self) -> bool: ...

    def progress(self) -> dict[str, float]: ...


def render(load: LiveLoad) -> Text:
    p = load.progress()
    spec = load.spec
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


def show_progress(load: LiveLoad) -> None:
    """Blocks until the run ends, redrawing a one-line status on stderr."""
    console = Console(file=sys.stderr)
    with Live(render(load), console=console, refresh_per_second=4, transient=False) as live:
        while load.running:
            live.update(render(load))
            time.sleep(0.25)
        live.update(render(load))
