"""The one game day running in this process: profile, deployed backend, background load, faults.

chaostoolkit calls activities as plain functions in one process, so the deployment they act on
lives here between the control's `before_experiment_control` and `after_experiment_control`.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaoslib.exceptions import ActivityFailed

from harness.backends.base import Backend
from harness.backends.observe import FaultRecord
from harness.load import LoadHandle
from harness.profile import Profile, load_profile

#: Configuration keys the control reads (experiment `configuration`, env, or `gauntlet gameday` flags).
DEFAULTS: dict[str, Any] = {
    "gauntlet_backend": "local",
    "gauntlet_profile": "local",
    "gauntlet_manifests": "manifests/overlays/local",
    "gauntlet_out": "",
    "gauntlet_runtime": "process",
    "gauntlet_debug_endpoints": False,
    "gauntlet_context": "",
    "gauntlet_report": True,  # the control writes journal.json + the report (plain `chaos run`)
    "gauntlet_deploy_timeout_s": 300.0,
}
TRUE = ("1", "true", "yes", "on")


@dataclass
class GameDay:
    profile: Profile
    backend: Backend
    run_dir: Path
    settings: dict[str, Any]
    started_at: float = field(default_factory=time.time)
    load: LoadHandle | None = None
    load_results: list[dict[str, Any]] = field(default_factory=list)
    faults: list[FaultRecord] = field(default_factory=list)
    lost_zones: list[str] = field(default_factory=list)
    pressed_pods: list[str] = field(default_factory=list)

    @property
    def out_dir(self) -> Path:
        """Evidence folder, laid out like a certify scenario's (`<run-dir>/gameday/`)."""
        return self.run_dir / "gameday"

    def record(self, fault: FaultRecord) -> dict[str, Any]:
        """Keep the fault as evidence; fail the activity when it did not land."""
        self.faults.append(fault)
        self.save()
        if not fault.landed:
            raise ActivityFailed(f"{fault.kind} on {fault.target} did not land: {fault.detail or 'no effect'}")
        return fault.model_dump()

    def keep_load(self, result_dir: Path, label: str) -> None:
        """Copy a load run's load.json next to the other evidence so the report plots it."""
        src = result_dir / "load.json"
        if src.exists():
            shutil.copyfile(src, self.out_dir / f"load-{label}.json")

    def save(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / "faults.json").write_text(
            json.dumps([f.model_dump() for f in self.faults], indent=2)
        )


_current: GameDay | None = None
last_closed: GameDay | None = None  # what `gauntlet gameday` reports on after the control closed it
deploy_error: str | None = None  # why the last open_gameday failed (the report says it)


def settings_from(configuration: dict[str, Any] | None) -> dict[str, Any]:
    """DEFAULTS overlaid with the experiment's resolved configuration (typed like the defaults)."""
    conf = dict(DEFAULTS)
    for key, value in (configuration or {}).items():
        if key not in DEFAULTS or value in (None, "") or isinstance(value, dict):
            continue
        default = DEFAULTS[key]
        if isinstance(default, bool):
            value = value if isinstance(value, bool) else str(value).strip().lower() in TRUE
        elif isinstance(default, float):
            value = float(value)
        conf[key] = value
    return conf


def open_gameday(configuration: dict[str, Any] | None) -> GameDay:
    """Render the manifests and deploy them on the configured backend; wait until Ready."""
    global _current, deploy_error
    if _current is not None:
        return _current
    from harness.backends import get_backend
    from harness.manifests.render import render

    deploy_error = None
    conf = settings_from(configuration)
    profile = load_profile(conf["gauntlet_profile"])
    bundle = render(Path(conf["gauntlet_manifests"]))
    if conf["gauntlet_debug_endpoints"]:
        enable_debug_endpoints(bundle.deployment)
    run_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
    run_dir = Path(conf["gauntlet_out"] or f"reports/gameday-{run_id}")
    options: dict[str, Any]
    if conf["gauntlet_backend"] == "local":
        options = {
            "runtime": conf["gauntlet_runtime"],
            "zones": list(profile.zones.zones),
            "nodes_per_zone": profile.zones.nodes_per_zone,
        }
    else:
        options = {
            "context": conf["gauntlet_context"],
            "allowed_contexts": profile.kube.allowed_contexts,
            "chaos_allowed": profile.kube.chaos_allowed,
        }
    backend = get_backend(conf["gauntlet_backend"], run_dir / "gameday" / "backend", **options)
    gd = GameDay(profile=profile, backend=backend, run_dir=run_dir, settings=conf)
    try:
        backend.deploy(bundle)
        backend.wait_ready(timeout_s=conf["gauntlet_deploy_timeout_s"])
    except BaseException as err:
        deploy_error = f"{type(err).__name__}: {err}"
        with contextlib.suppress(Exception):
            save_observations(gd)
        backend.teardown()
        raise
    _current = gd
    return gd


def enable_debug_endpoints(deployment: dict[str, Any]) -> None:
    """The memory-pressure action needs the service's /debug endpoints."""
    for c in deployment["spec"]["template"]["spec"]["containers"]:
        env = c.setdefault("env", [])
        env[:] = [e for e in env if e.get("name") != "GAUNTLET_DEBUG_ENDPOINTS"]
        env.append({"name": "GAUNTLET_DEBUG_ENDPOINTS", "value": "true"})


def active() -> GameDay | None:
    """The running game day, or None (rollbacks use this to be safe when nothing was deployed)."""
    return _current


def current() -> GameDay:
    if _current is None:
        raise ActivityFailed(
            "no Gauntlet deployment: add the control `harness.chaos.control` to the experiment's "
            "`controls`, or run it with `gauntlet gameday`"
            + (f" (the deployment failed: {deploy_error})" if deploy_error else "")
        )
    return _current


def close_gameday() -> GameDay | None:
    """Stop background load, save observations, tear down. Safe to call twice."""
    global _current, last_closed
    gd, _current = _current, None
    if gd is None:
        return None
    last_closed = gd
    try:
        if gd.load is not None:
            with contextlib.suppress(Exception):
                result = gd.load.stop() if gd.load.running else gd.load.wait(1.0)
                gd.load_results.append(result.model_dump(exclude={"timeline"}))
                gd.keep_load(gd.load.out_dir, "background")
            gd.load = None
        with contextlib.suppress(Exception):
            save_observations(gd)
    finally:
        gd.backend.teardown()
    return gd


def save_observations(gd: GameDay) -> None:
    b = gd.backend
    gd.out_dir.mkdir(parents=True, exist_ok=True)
    pods = b.pods(include_deleted=True) if b.name == "local" else b.pods()  # type: ignore[call-arg]
    for name, items in (
        ("pods.json", pods), ("events.json", b.events()), ("hpa.json", b.hpa_history()),
        ("resources.json", b.resource_samples()), ("nodes.json", b.nodes()),
    ):
        (gd.out_dir / name).write_text(json.dumps([i.model_dump() for i in items], indent=2))
    (gd.out_dir / "measurements.json").write_text(json.dumps(gd.load_results, indent=2, default=str))
    gd.save()
