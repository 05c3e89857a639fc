"""Every file name of a run directory, and the writers they share: the one place that owns them.

Scenarios, game days, the report (reader and renderers) and the docs all take their names
from here; nothing else spells an evidence file name.

```
reports/<run-id>/
  report.json  junit.xml  report.html  plots/*.png  manifests.yaml  certify.log
  journal.json                     game days: chaostoolkit's journal
  <scenario>/                      one folder per scenario (a game day's is `gameday/`)
    backend/                       the backend's own files (replica logs, state)
    pods.json  events.json  hpa_history.json  resources.json  nodes.json
                                   what the backend observed (appended by every deployment)
    faults.json                    FaultRecord of every fault: what it hit, whether it landed
    load/                          the main load run (load.json, records.npy per request)
    load.json                      its load.json, copied up (the report plots it)
    <run>/  <run>.json             another load run and its copy (overload, hang_load, capacity...)
    checks.json                    the scenario's checks and all its measurements
    cold_start.json                cold-start: every start, phase by phase
    replicas.json                  hpa: desired/ready replicas over time
    error.txt                      the traceback of a scenario that ended in error
  gameday/
    <label>/  load-<label>.json    a game day's load runs (background, slo-<n>, spike-<n>)
    measurements.json              summaries of those load runs
```
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.backends.base import Backend

# the run directory ---------------------------------------------------------------------------
REPORT = "report.json"
JUNIT = "junit.xml"
HTML = "report.html"
PLOTS_DIR = "plots"
MANIFESTS = "manifests.yaml"  # the exact objects certified
RUN_LOG = "certify.log"  # every scenario's log lines, one format (game days too)
JOURNAL = "journal.json"  # game days

# a scenario's folder -------------------------------------------------------------------------
BACKEND_DIR = "backend"
PODS = "pods.json"
EVENTS = "events.json"
HPA_HISTORY = "hpa_history.json"  # HPAStatusSample over time (was hpa.json)
RESOURCES = "resources.json"
METRICS_GAPS = "metrics_gaps.json"  # when the backend's metrics API was away (kube)
NODES = "nodes.json"
FAULTS = "faults.json"
LOAD = "load.json"  # a load run's own output (the load engine writes it) and the main run's copy
RECORDS = "records.npy"  # per-request records beside a load run's load.json
CHECKS = "checks.json"  # {"measurements": ..., "checks": [...]} of a scenario
COLD_START = "cold_start.json"
REPLICAS = "replicas.json"
ERROR = "error.txt"

#: names an older Gauntlet wrote, still read when a report is re-rendered (`gauntlet report`)
LEGACY = {HPA_HISTORY: "hpa.json"}

# load runs: `<scenario>/<run>/` holds the run, `load_copy(run)` its copied-up load.json
LOAD_RUN = "load"
OVERLOAD_RUN = "overload"  # oom-headroom, past peak
HANG_LOAD_RUN = "hang_load"  # probe-timing, while a replica hangs
CAPACITY_RUN = "capacity"  # capacity (or hpa's short way), the open-loop sweep
CAPACITY_BURST_RUN = "capacity_burst"  # the closed-loop burst before it
CAPACITY_LOW_RUN = "capacity_low"  # the sweep again below the first's first step, when it broke
SERVICE_CAPACITY_RUN = "capacity_service"  # capacity's optional sweep of the Service
SERVICE_CAPACITY_BURST_RUN = "capacity_service_burst"
SERVICE_CAPACITY_LOW_RUN = "capacity_service_low"

# game days -----------------------------------------------------------------------------------
GAMEDAY_DIR = "gameday"  # also the verdict's name: the report reads `<run-dir>/<name>/`
GAMEDAY_MEASUREMENTS = "measurements.json"
BACKGROUND_RUN = "background"


def load_copy(run: str) -> str:
    """Where a scenario's load run `run` is copied up: `load.json` for the main run, else
    `<run>.json`."""
    return LOAD if run == LOAD_RUN else f"{run}.json"


def gameday_load(label: str) -> str:
    """Where a game day's load run `label` is copied up (`load-background.json`): the report
    plots it."""
    return f"load-{label}.json"


def slo_run(n: int | str) -> str:
    """The n-th `slo_holds` measurement of a game day (`"*"`: a glob of them all)."""
    return f"slo-{n}"


def spike_run(n: int) -> str:
    """The n-th `spike` action of a game day."""
    return f"spike-{n}"


PLOTTED_LOADS = "load*.json"  # the load copies the report draws (load.json, load-<label>.json)


# writers -------------------------------------------------------------------------------------
def to_jsonable(o: Any) -> Any:
    """json.dumps `default`: pydantic models dumped, anything else as text."""
    if hasattr(o, "model_dump"):
        return o.model_dump()
    return str(o)


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=to_jsonable))
    return path


def save_observations(
    backend: Backend, out_dir: Path, *, append: bool, include_deleted: bool = False
) -> list[Path]:
    """Pods, events, HPA history, resource samples and nodes: the raw evidence of a deployment.

    `append`: add to what earlier deployments of the same scenario left (cold start deploys
    several times); else replace. `include_deleted`: also the pods deleted since the deploy."""
    from harness.backends.base import MetricsGapReporter

    observed: tuple[tuple[str, Any], ...] = (
        (PODS, backend.pods(include_deleted=include_deleted)),
        (EVENTS, backend.events()),
        (HPA_HISTORY, backend.hpa_history()),
        (RESOURCES, backend.resource_samples()),
        (NODES, backend.nodes()),
    )
    if isinstance(backend, MetricsGapReporter):
        observed += ((METRICS_GAPS, backend.metrics_gaps()),)
    written = []
    for name, items in observed:
        path = out_dir / name
        previous = json.loads(path.read_text()) if append and path.exists() else []
        written.append(write_json(path, previous + [i.model_dump() for i in items]))
    return written
