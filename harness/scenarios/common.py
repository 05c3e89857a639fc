"""Small helpers shared by the five scenarios: load runs, evidence files, OOM and kill evidence.

Scenarios stay backend-agnostic: everything here uses only the `Backend` ABC, the load engine
(`harness.load`) and the observation models.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import statistics
import time
import weakref
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness import prom
from harness.backends.base import Backend, BackendError, ServiceLoadRunner
from harness.backends.observe import Event, FaultRecord, Pod, ResourceSample
from harness.manifests.bundle import ManifestBundle
from harness.profile import SLO
from harness.quantity import memory_bytes
from harness.run import evidence
from harness.scenarios.base import ScenarioContext
from harness.verdict import Check, Verdict

if TYPE_CHECKING:
    from harness.load.result import LoadResult

# --------------------------------------------------------------------------------------------
# statistics


def percentile(samples: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100), as the load results compute theirs; None if empty."""
    if not samples:
        return None
    return float(np.percentile(np.asarray(samples, dtype=float), q, method="inverted_cdf"))


def summary(samples: Sequence[float]) -> dict[str, float | None]:
    return {
        "n": len(samples),
        "p50": _r(percentile(samples, 50)),
        "p95": _r(percentile(samples, 95)),
        "max": _r(max(samples) if samples else None),
        "mean": _r(statistics.fmean(samples) if samples else None),
    }


def _r(v: float | None, nd: int = 3) -> float | None:
    return None if v is None else round(v, nd)


# --------------------------------------------------------------------------------------------
# manifests


def main_container(bundle: ManifestBundle) -> dict[str, Any]:
    containers = bundle.deployment.get("spec", {}).get("template", {}).get("spec", {}).get(
        "containers"
    ) or [{}]
    return containers[0]


def container_env(bundle: ManifestBundle, name: str) -> str | None:
    """A literal `env` value of the main container (None when unset or taken from a source)."""
    for e in main_container(bundle).get("env") or []:
        if e.get("name") == name and "value" in e:
            return str(e["value"])
    return None


def service_setting(bundle: ManifestBundle, field: str) -> tuple[float, bool]:
    """A reference-service setting as the manifest runs it: its GAUNTLET_<FIELD> env value, else
    the service's default. (value, whether the manifest sets it)."""
    from reference_service.config import ENV_PREFIX, ServiceSettings

    raw = container_env(bundle, f"{ENV_PREFIX}{field.upper()}")
    if raw is not None:
        return float(raw), True
    return float(ServiceSettings.model_fields[field].default), False


def memory_limit(bundle: ManifestBundle) -> int | None:
    lim = main_container(bundle).get("resources", {}).get("limits", {}).get("memory")
    return memory_bytes(lim) if lim is not None else None


def spec_replicas(bundle: ManifestBundle) -> int:
    return int(bundle.deployment.get("spec", {}).get("replicas", 1))


def without_hpa(bundle: ManifestBundle, replicas: int | None = None) -> ManifestBundle:
    """A copy without the HPA (so scale() is not fought over), optionally with fixed replicas."""
    b = bundle.copy()
    # a KEDA ScaledObject stands for the HPA it generates (ManifestBundle.hpa)
    autoscalers = ("HorizontalPodAutoscaler", "ScaledObject")
    b.objects = [o for o in b.objects if o.get("kind") not in autoscalers]
    if replicas is not None:
        b.deployment.setdefault("spec", {})["replicas"] = replicas
    return b


# --------------------------------------------------------------------------------------------
# load


# specs aimed at a Service's in-cluster address, by that address: the backend that runs them
_IN_CLUSTER: weakref.WeakValueDictionary[str, ServiceLoadRunner] = weakref.WeakValueDictionary()


def load_spec(ctx: ScenarioContext, backend: Backend, **overrides: Any) -> Any:
    """A spec from the profile aimed at the backend's Service, or at `target=` (e.g. one pod:
    a targeted probe), labelled with how it reaches the pods (`load_path_of`).

    A `ServiceLoadRunner` backend (kube) gets its Service's in-cluster address: `run_load` and
    `background_load` then run the spec from inside its cluster, through the Service. Others
    get `service_url()` (the local backend's Service proxy)."""
    from harness.load import LoadSpec

    url = overrides.pop("target", None)
    if url is not None:
        overrides.setdefault("load_path", load_path_of(backend, url))
    elif isinstance(backend, ServiceLoadRunner):
        url = backend.service_load_url()
        _IN_CLUSTER[url] = backend
        overrides.setdefault("load_path", "service")
    else:
        url = backend.service_url()
        overrides.setdefault("load_path", "service")
    overrides.setdefault("allow_targets", [url])
    return LoadSpec.from_profile(ctx.profile, url, **overrides)


def load_path_of(backend: Backend, url: str) -> str:
    """How a load aimed at `url` reaches the backend's pods (`harness.load.result.LOAD_PATHS`):
    the backend says where it can (`ServiceLoadRunner`); else its `service_url()` is the
    Service, one of its `pod_url()`s one pod, anything else `direct`."""
    if isinstance(backend, ServiceLoadRunner):
        return backend.load_path_of(url)
    u = url.rstrip("/")
    with contextlib.suppress(Exception):  # a backend that cannot tell: nothing is claimed
        if u == backend.service_url().rstrip("/"):
            return "service"
        if any(u == backend.pod_url(p.name).rstrip("/") for p in backend.pods()):
            return "pod"
    return "direct"


def _in_cluster_runner(spec: Any) -> ServiceLoadRunner | None:
    return _IN_CLUSTER.get(spec.target) if spec.load_path == "service" else None


def _start(spec: Any, out: Path) -> Any:
    from harness.load import start_load

    runner = _in_cluster_runner(spec)
    if runner is not None:
        return runner.start_service_load(spec, out)
    return start_load(spec, out_dir=out)


def run_load(ctx: ScenarioContext, spec: Any, name: str = evidence.LOAD_RUN) -> Any:
    """Run load to completion; its output dir is `<scenario>/<name>/`, load.json copied up.
    Ctrl-C stops it gracefully (an in-cluster generator too), then re-raises."""
    from harness.load import run_load as _run

    out = ctx.evidence(name)
    if _in_cluster_runner(spec) is None:
        result = _run(spec, out_dir=out)
    else:
        handle = _start(spec, out)
        try:
            result = handle.wait()
        except KeyboardInterrupt:
            handle.request_stop()
            try:
                with contextlib.suppress(Exception):
                    handle.wait(spec.timeout_s + 60.0)
            finally:
                handle._terminate()
            raise
    keep_load_json(ctx, out, name)
    return result


@contextlib.contextmanager
def background_load(ctx: ScenarioContext, spec: Any, name: str = evidence.LOAD_RUN) -> Any:
    """Start load (locally, or in the cluster for a Service's in-cluster address), yield a
    handle; on exit wait for it (bounded) and copy load.json up."""
    out = ctx.evidence(name)
    handle = _start(spec, out)
    try:
        if _in_cluster_runner(spec) is not None:
            handle.wait_started()  # a pod to schedule first: the scenario's clock starts with it
        yield handle
    finally:
        with contextlib.suppress(Exception):
            handle.wait(timeout=spec.duration_s + spec.timeout_s + 120)
        keep_load_json(ctx, out, name)


def keep_load_json(ctx: ScenarioContext, out: Path, name: str) -> str | None:
    """Copy the run's load.json up into the scenario's folder (`evidence.load_copy`)."""
    src = out / evidence.LOAD
    if not src.exists():
        return None
    dst = ctx.evidence(evidence.load_copy(name))
    if src != dst:
        shutil.copyfile(src, dst)
    return ctx.relative(dst)


def count_status(result: LoadResult, *codes: int | str) -> int:
    """Requests answered with one of these HTTP statuses."""
    wanted = {str(c) for c in codes}
    return sum(int(n) for k, n in result.errors.items() if str(k) in wanted)


def error_budget(requests: int, errors: int, slo: SLO) -> dict[str, Any]:
    """Availability as an error budget (harness.sla): allowed vs burned, also minutes per 30
    days."""
    from harness.sla import error_budget as sla_budget

    b = sla_budget(requests, errors, slo)
    return {
        "requests": requests,
        "errors": errors,
        "availability": _r(1 - errors / requests, 6) if requests else None,
        "target_availability": slo.availability,
        "allowed_errors": b.allowed_errors,
        # a failure with nothing allowed burns more than the whole budget
        "burned": b.burned_fraction
        if b.burned_fraction is not None
        else (0.0 if errors == 0 else None),
        "budget_minutes_per_30d": round(b.budget_minutes_per_30d, 2),
        "burned_minutes_per_30d_equiv": round(b.burned_minutes_per_30d_equivalent, 2),
    }


def stream_summary(result: LoadResult, slo: SLO) -> dict[str, Any]:
    """The run's TTFT / TPOT / ITL percentiles and its goodput against the SLO's thresholds:
    reported beside availability and the error budget (empty for an unstreamed run without a
    goodput SLO)."""
    from harness.sla import goodput_in

    out: dict[str, Any] = {}
    if result.stream is not None:
        st = result.stream
        out.update({"ttft_ms": st.ttft_ms, "tpot_ms": st.tpot_ms, "itl_ms": st.itl_ms})
    if slo.goodput is not None:
        g = goodput_in(result, slo.goodput.thresholds())
        out["goodput"] = g.attainment if g else None
        out["goodput_slo_ms"] = slo.goodput.thresholds()
    return out


def load_validity_check(
    result: LoadResult, what: str = "load generator", name: str = "load_valid"
) -> Check:
    """A run whose generator could not hold its schedule is invalid: the scenario fails, never
    passes."""
    valid = result.valid
    reasons = "; ".join(result.invalid_reasons)
    return Check(
        name=name,
        measured=valid,
        target=True,
        ok=valid,
        note=""
        if valid
        else f"{what} did not deliver the requested schedule ({reasons or 'see load.json'})",
    )


# --------------------------------------------------------------------------------------------
# faults


def save_faults(ctx: ScenarioContext, faults: Iterable[FaultRecord]) -> str:
    return ctx.write_json(evidence.FAULTS, [f.model_dump() for f in faults])


def fault_landed_check(name: str, record: FaultRecord) -> Check:
    return Check(
        name=name,
        measured=record.landed,
        target=True,
        ok=record.landed,
        note=f"{record.kind} on {record.target}: affected {record.affected or 'nothing'}"
        + (f"; {record.detail}" if record.detail else ""),
    )


# --------------------------------------------------------------------------------------------
# pods, kills, OOM


KILL_RE = re.compile(r"failed (startup|liveness) probe", re.I)


def probe_kills(events: Iterable[Event], since: float | None = None) -> dict[str, list[Event]]:
    """Killing events caused by probes, by probe kind ('startup' | 'liveness')."""
    out: dict[str, list[Event]] = {"startup": [], "liveness": []}
    for e in events:
        if since is not None and e.lastTimestamp < since:
            continue
        if e.reason != "Killing":
            continue
        m = KILL_RE.search(e.message)
        if m:
            out[m.group(1).lower()].append(e)
    return out


def total_restarts(pods: Iterable[Pod]) -> int:
    return sum(p.restarts for p in pods)


def oom_evidence(backend: Backend, since: float | None = None) -> list[str]:
    """Every sign of a kernel OOM kill the backend can show (status, events, cgroup counters)."""
    found: list[str] = []
    for p in backend.pods():
        for cs in p.containerStatuses:
            for label, state in (("lastState", cs.lastState), ("state", cs.state)):
                t = state.terminated
                if (
                    t is not None
                    and t.reason == "OOMKilled"
                    and (since is None or t.finishedAt >= since)
                ):
                    found.append(
                        f"pod {p.name} container {cs.name} {label}.terminated reason={t.reason} "
                        f"exitCode={t.exitCode} at {t.finishedAt:.1f}"
                    )
    for e in backend.events(since=since):
        if e.reason in ("OOMKilling", "OOMKilled") or "OOMKilled" in e.message:
            found.append(f"event {e.reason} on {e.involvedObject.name}: {e.message}")
    last: dict[str, int] = {}
    for s in backend.resource_samples(since=since):
        if s.oom_kills:
            last[s.pod] = max(last.get(s.pod, 0), s.oom_kills)
    found += [f"pod {pod} cgroup oom_kill counter = {n}" for pod, n in sorted(last.items())]
    return found


def cpu_throttling(samples: Iterable[ResourceSample]) -> dict[str, Any]:
    """How often the pods hit their CPU limit over the samples' span: throttled / elapsed CFS
    periods (cAdvisor's container_cpu_cfs_throttled_periods_total / _periods_total), all pods
    together and the worst pod. Empty where the backend does not read CFS statistics."""
    first: dict[str, ResourceSample] = {}
    last: dict[str, ResourceSample] = {}
    for s in samples:
        if s.cpu_periods is not None and s.cpu_throttled_periods is not None:
            first.setdefault(s.pod, s)
            last[s.pod] = s
    deltas = {
        pod: (
            int(last[pod].cpu_periods or 0) - int(first[pod].cpu_periods or 0),
            int(last[pod].cpu_throttled_periods or 0) - int(first[pod].cpu_throttled_periods or 0),
            (last[pod].cpu_throttled_s or 0.0) - (first[pod].cpu_throttled_s or 0.0),
        )
        for pod in last
    }
    periods = sum(d[0] for d in deltas.values())
    if periods <= 0:
        return {}
    worst = max(
        deltas, key=lambda pod: deltas[pod][1] / deltas[pod][0] if deltas[pod][0] > 0 else 0.0
    )
    return {
        "cpu_throttled_ratio": round(sum(d[1] for d in deltas.values()) / periods, 3),
        "cpu_throttled_s": round(sum(d[2] for d in deltas.values()), 1),
        "cpu_throttled_worst_pod": worst,
        "cpu_throttled_worst_ratio": round(deltas[worst][1] / deltas[worst][0], 3)
        if deltas[worst][0]
        else 0.0,
    }


def wait_rollout(
    backend: Backend, replicas: int | None, timeout_s: float, restart_loop_kills: int = 3
) -> tuple[bool, str]:
    """Wait for `replicas` Ready pods; (ok, message) instead of raising, so a fail keeps its
    evidence.

    Gives up early once one pod's container was killed by its probes, or restarted for any
    reason (OOM kill, crash), `restart_loop_kills` times: that is a restart loop
    (CrashLoopBackOff), and waiting longer only repeats it.
    """
    want = replicas if replicas is not None else backend.deployment().spec.replicas
    t0 = time.time()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pods = backend.pods()
        if sum(1 for p in pods if p.ready and p.deletionTimestamp is None) >= want:
            return True, "ready"
        kills = probe_kills(backend.events(since=t0))
        per_pod: dict[str, int] = {}
        for e in kills["startup"] + kills["liveness"]:
            per_pod[e.involvedObject.name] = per_pod.get(e.involvedObject.name, 0) + e.count
        looping = {k: v for k, v in per_pod.items() if v >= restart_loop_kills}
        if looping:
            return (
                False,
                f"restart loop: containers killed by probes {looping} times while starting",
            )
        crashing = {p.name: p.restarts for p in pods if p.restarts >= restart_loop_kills}
        if crashing:  # OOM kills or crashes: CrashLoopBackOff
            return False, f"restart loop: containers restarted {crashing} times while starting"
        time.sleep(0.5)
    return False, f"timed out after {timeout_s:.0f}s waiting for {want} Ready pods"


def rollout_ready_check(backend: Backend, replicas: int, timeout_s: float) -> Check | None:
    """Wait for the scenario's first rollout: None when Ready, else the failing `rollout_ready`
    check that says why (restart loop, probe kills, OOM, Pending)."""
    ok, msg = wait_rollout(backend, replicas, timeout_s)
    if ok:
        return None
    return Check(
        name="rollout_ready",
        measured=False,
        target=True,
        ok=False,
        note=f"{msg}: {rollout_failure_summary(backend)}",
    )


def finish(
    ctx: ScenarioContext,
    name: str,
    checks: list[Check],
    faults: Iterable[FaultRecord],
    measurements: dict[str, Any],
    *,
    loads: Iterable[str] = (evidence.LOAD_RUN,),
    report_only: Iterable[str] = (),
    caveats: list[str] | None = None,
) -> Verdict:
    """A scenario's end: faults.json and checks.json (checks + measurements) as evidence, with
    the copies of the load runs `loads` that exist; the verdict carries every check's
    measurement and the measurements, less the bulky `report_only` ones (kept in checks.json)."""
    files = [
        save_faults(ctx, faults),
        ctx.write_json(
            evidence.CHECKS,
            {"measurements": measurements, "checks": [c.model_dump() for c in checks]},
        ),
    ]
    copies = [ctx.evidence(evidence.load_copy(run)) for run in loads]
    files += [ctx.relative(p) for p in copies if p.exists()]
    hidden = set(report_only)
    meas: dict[str, Any] = {c.name: c.measured for c in checks}
    meas.update({k: v for k, v in measurements.items() if k not in hidden})
    notes = [*(caveats or []), *ctx.deviations]
    extra = {"caveats": notes} if notes else {}
    return Verdict.from_checks(
        name, ctx.profile.name, checks, measurements=meas, evidence=files, **extra
    )


def rollout_failure_summary(backend: Backend) -> str:
    """What a failed rollout looks like: restarts, probe kills, back-off, OOM, Pending."""
    pods = backend.pods()
    events = backend.events()
    kills = probe_kills(events)
    parts = [
        f"{sum(p.ready for p in pods)}/{len(pods)} pods Ready",
        f"restarts {total_restarts(pods)}",
    ]
    if kills["startup"] or kills["liveness"]:
        parts.append(
            f"probe kills: startup {len(kills['startup'])}, liveness {len(kills['liveness'])}"
        )
    backoff = [e for e in events if e.reason == "BackOff"]
    if backoff:
        parts.append(f"BackOff events {sum(e.count for e in backoff)}")
    oom = oom_evidence(backend)
    if oom:
        parts.append(f"OOM: {oom[0]}")
    pending = [p.name for p in pods if p.phase == "Pending"]
    if pending:
        parts.append(f"Pending {pending}")
    return "; ".join(parts)


def zone_placement(pods: Iterable[Pod], only_ready: bool = False) -> dict[str, list[str]]:
    placement: dict[str, list[str]] = {}
    for p in pods:
        if p.deletionTimestamp is not None or p.phase in ("Succeeded", "Failed"):
            continue
        if only_ready and not p.ready:
            continue
        placement.setdefault(p.zone or "<unscheduled>", []).append(p.name)
    return {z: sorted(v) for z, v in sorted(placement.items())}


# --------------------------------------------------------------------------------------------
# the service's own metrics


def pod_metrics(backend: Backend, pod: str) -> prom.Samples:
    try:
        base = backend.pod_url(pod).rstrip("/")
    except (BackendError, KeyError, ValueError):
        return {}
    return prom.scrape(base + "/metrics")


def now() -> float:
    return time.time()


def body_for(request: Any) -> dict[str, Any]:
    """A completion body for a profile RequestShape (prompt of exactly prompt_tokens bytes)."""
    from harness.load.spec import _prompt

    return {
        "prompt": _prompt(request.prompt_tokens),
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
    }


def peak_memory(samples: Iterable[Any], t0: float, t1: float) -> tuple[int | None, str | None]:
    """Largest working-set sample of any pod in [t0, t1]: (bytes, pod)."""
    best: tuple[int | None, str | None] = (None, None)
    for s in samples:
        if s.memory_bytes is None or not (t0 <= s.time <= t1):
            continue
        if best[0] is None or s.memory_bytes > best[0]:
            best = (s.memory_bytes, s.pod)
    return best
