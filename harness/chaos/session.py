"""The one game day running in this process: inputs, deployed backend, background load, faults.

chaostoolkit calls activities as plain functions in one process, so the deployment they act on
lives here between the control's `before_experiment_control` and `after_experiment_control`.
Inputs (profile, manifests, backend options), the log and the evidence names are the run
engine's (`harness.run`), so a game day deploys exactly what `gauntlet certify` would, on any
backend certify knows, and leaves the same run-directory layout (`<run-dir>/gameday/`).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaoslib.exceptions import ActivityFailed

from harness import interrupts
from harness.backends.base import Backend
from harness.backends.observe import FaultRecord
from harness.load import LoadHandle
from harness.profile import Profile
from harness.run import evidence
from harness.run.engine import RunLog
from harness.run.options import Inputs, new_run_id, resolve_inputs

logger = logging.getLogger("chaostoolkit")

#: Configuration keys the control reads (experiment `configuration`, env, or `gauntlet gameday`
#: flags). An empty value means the default: manifests "" is the packaged default overlay.
DEFAULTS: dict[str, Any] = {
    "gauntlet_backend": "local",
    "gauntlet_profile": "local",
    "gauntlet_manifests": "",
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
    inputs: Inputs
    backend: Backend
    run_dir: Path
    settings: dict[str, Any]
    log: Callable[[str], None]
    started_at: float = field(default_factory=time.time)
    load: LoadHandle | None = None
    load_results: list[dict[str, Any]] = field(default_factory=list)
    faults: list[FaultRecord] = field(default_factory=list)
    lost_zones: list[str] = field(default_factory=list)
    pressed_pods: list[str] = field(default_factory=list)

    @property
    def profile(self) -> Profile:
        return self.inputs.profile

    @property
    def out_dir(self) -> Path:
        """Evidence folder, laid out like a certify scenario's (`<run-dir>/gameday/`)."""
        return self.run_dir / evidence.GAMEDAY_DIR

    def record(self, fault: FaultRecord) -> dict[str, Any]:
        """Keep the fault as evidence; fail the activity when it did not land."""
        self.faults.append(fault)
        self.save()
        self.log(
            f"{fault.kind} on {fault.target}: "
            + ("landed" if fault.landed else "did not land")
            + (f" ({fault.detail})" if fault.detail else "")
        )
        if not fault.landed:
            raise ActivityFailed(
                f"{fault.kind} on {fault.target} did not land: {fault.detail or 'no effect'}"
            )
        return fault.model_dump()

    def keep_load(self, result_dir: Path, label: str) -> None:
        """Copy a load run's load.json next to the other evidence so the report plots it."""
        src = result_dir / evidence.LOAD
        if src.exists():
            shutil.copyfile(src, self.out_dir / evidence.gameday_load(label))

    def save(self) -> None:
        evidence.write_json(self.out_dir / evidence.FAULTS, [f.model_dump() for f in self.faults])


_current: GameDay | None = None
last_closed: GameDay | None = None  # what `gauntlet gameday` reports on after the control closed it
deploy_error: str | None = None  # why the last open_gameday failed (the report says it)
_resolved: dict[tuple[str, ...], Inputs] = {}


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


def resolve(conf: dict[str, Any]) -> Inputs:
    """The engine's inputs for these settings (InputError naming the flag); resolved once, so
    `gauntlet gameday` can check them before the experiment starts."""
    key = tuple(
        str(conf[k])
        for k in (
            "gauntlet_backend",
            "gauntlet_profile",
            "gauntlet_manifests",
            "gauntlet_context",
            "gauntlet_runtime",
        )
    )
    if key not in _resolved:
        _resolved[key] = resolve_inputs(
            conf["gauntlet_backend"],
            conf["gauntlet_profile"],
            conf["gauntlet_manifests"] or None,
            context=conf["gauntlet_context"] or None,
            allow_contexts=[],
            runtime=conf["gauntlet_runtime"],
        )
    return _resolved[key]


def open_gameday(configuration: dict[str, Any] | None) -> GameDay:
    """Deploy the manifests on the configured backend; wait until Ready."""
    global _current, deploy_error
    if _current is not None:
        return _current
    deploy_error = None
    conf = settings_from(configuration)
    try:
        inputs = resolve(conf)
    except Exception as err:
        deploy_error = f"{type(err).__name__}: {err}"
        raise
    bundle = inputs.bundle.copy()
    if conf["gauntlet_debug_endpoints"]:
        enable_debug_endpoints(bundle.deployment)
    run_dir = Path(conf["gauntlet_out"] or f"reports/gameday-{new_run_id()}")
    log = RunLog(run_dir / evidence.RUN_LOG, echo=logger.info).scenario(evidence.GAMEDAY_DIR)
    backend = inputs.backend_factory(run_dir / evidence.GAMEDAY_DIR / evidence.BACKEND_DIR)
    gd = GameDay(inputs=inputs, backend=backend, run_dir=run_dir, settings=conf, log=log)
    try:
        backend.deploy(bundle)
        backend.wait_ready(timeout_s=conf["gauntlet_deploy_timeout_s"])
    except BaseException as err:
        deploy_error = f"{type(err).__name__}: {err}"
        log(f"deployment failed: {deploy_error}")
        with contextlib.suppress(Exception):
            save_observations(gd)
        with interrupts.shielded():
            backend.teardown()
        raise
    log(
        f"deployed {inputs.manifests.source} on the {backend.name} backend; service at "
        f"{backend.service_url()}; evidence in {gd.out_dir}"
    )
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
                gd.keep_load(gd.load.out_dir, evidence.BACKGROUND_RUN)
            gd.load = None
        with contextlib.suppress(Exception):
            save_observations(gd)
    finally:
        # a signal meanwhile waits for the teardown's end; the game day is over by then anyway
        with contextlib.suppress(KeyboardInterrupt), interrupts.shielded():
            gd.backend.teardown()
        gd.log("torn down")
    return gd


def save_observations(gd: GameDay) -> None:
    """The observations of the deployment (deleted pods included), the load summaries, the
    faults."""
    evidence.save_observations(gd.backend, gd.out_dir, append=False, include_deleted=True)
    evidence.write_json(gd.out_dir / evidence.GAMEDAY_MEASUREMENTS, gd.load_results)
    gd.save()
