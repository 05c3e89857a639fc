"""What a scenario gets (profile, manifests, a way to deploy, a place for evidence) and returns.

Scenarios deploy their own fresh copy of the manifests (`ctx.deploy()`), so each starts from a
clean state and a failed scenario cannot poison the next. Values measured by one scenario that
another can use (cold-start distribution -> probe-timing; capacity -> hpa) go in `ctx.measured`.
"""

from __future__ import annotations

import contextlib
import importlib
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import interrupts
from harness.backends.base import Backend
from harness.manifests.bundle import ManifestBundle
from harness.profile import Profile
from harness.run import evidence
from harness.servers.kinds import ServerKind, detect
from harness.verdict import Verdict

# name -> "module:function"; order is the certification order (cold-start feeds probe-timing,
# capacity feeds zone-failure and hpa).
SCENARIOS: dict[str, str] = {
    "cold-start": "harness.scenarios.cold_start:run",
    "capacity": "harness.scenarios.capacity:run",
    "probe-timing": "harness.scenarios.probe_timing:run",
    "oom-headroom": "harness.scenarios.oom_headroom:run",
    "zone-failure": "harness.scenarios.zone_failure:run",
    "hpa": "harness.scenarios.hpa:run",
}

BackendFactory = Callable[[Path], Backend]


@dataclass
class ScenarioContext:
    profile: Profile
    bundle: ManifestBundle
    # makes an un-deployed backend whose files live in the given dir
    backend_factory: BackendFactory
    backend_name: str
    out_dir: Path  # this scenario's evidence folder: <run-dir>/<scenario>/
    measured: dict[str, Any] = field(default_factory=dict)  # shared across scenarios of one run
    log: Callable[[str], None] = print
    # what the backend said it did not reproduce (RuntimeDeviation events): verdict caveats
    deviations: list[str] = field(default_factory=list)

    @contextlib.contextmanager
    def deploy(
        self, bundle: ManifestBundle | None = None, *, wait: bool = True, timeout_s: float = 300.0
    ) -> Iterator[Backend]:
        """Deploy (a variant of) the manifests on a fresh backend; always tears down."""
        backend = self.backend_factory(self.out_dir / evidence.BACKEND_DIR)
        try:
            backend.deploy(bundle or self.bundle)
            if wait:
                backend.wait_ready(timeout_s=timeout_s)
            yield backend
        finally:
            try:
                with contextlib.suppress(Exception):
                    self.save_observations(backend)
                    for e in backend.events():
                        note = f"{backend.name} backend did not reproduce: {e.message}"
                        if e.reason == "RuntimeDeviation" and note not in self.deviations:
                            self.deviations.append(note)
            finally:  # an interrupt while saving the observations still tears down
                with interrupts.shielded():  # and one during teardown waits for its end
                    backend.teardown()

    @property
    def server(self) -> ServerKind:
        """What the server under test is (harness.servers.kinds): what the scenarios may assume."""
        return detect(self.bundle.deployment, self.bundle.source or None)

    def evidence(self, name: str) -> Path:
        """A file (or folder) of this scenario's evidence; names are `harness.run.evidence`'s."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        return self.out_dir / name

    def write_json(self, name: str, data: Any) -> str:
        return self.relative(evidence.write_json(self.evidence(name), data))

    def relative(self, path: Path) -> str:
        """Evidence paths in the report are relative to the run dir."""
        try:
            return str(path.relative_to(self.out_dir.parent))
        except ValueError:
            return str(path)

    def save_observations(self, backend: Backend) -> None:
        """Pods, events, HPA history, resource samples and nodes: the raw evidence of every
        deployment. A scenario that deploys several times (cold start) appends to the same files."""
        evidence.save_observations(backend, self.out_dir, append=True)


def run_scenario(name: str, ctx: ScenarioContext) -> Verdict:
    """Run one scenario; an unexpected exception becomes an `error` verdict with the traceback
    saved."""
    module_name, func = SCENARIOS[name].split(":")
    started = time.monotonic()
    try:
        fn = getattr(importlib.import_module(module_name), func)
        verdict: Verdict = fn(ctx)
    except KeyboardInterrupt:
        raise
    except Exception as err:  # a harness or backend failure is an error, never a pass
        # an interrupt that a clean-up step turned into another exception is still an interrupt
        seen: set[int] = set()
        link: BaseException | None = err
        while link is not None and id(link) not in seen:
            if isinstance(link, KeyboardInterrupt):
                raise KeyboardInterrupt(*link.args) from err
            seen.add(id(link))
            link = link.__cause__ or link.__context__
        tb = ctx.evidence(evidence.ERROR)
        tb.write_text(traceback.format_exc())
        verdict = Verdict(
            name=name,
            status="error",
            reason=f"{type(err).__name__}: {err}",
            profile=ctx.profile.name,
            backend=ctx.backend_name,
            evidence=[ctx.relative(tb)],
        )
    verdict.duration_s = round(time.monotonic() - started, 2)
    if not verdict.backend:
        verdict.backend = ctx.backend_name
    return verdict
