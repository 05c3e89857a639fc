"""Kubelet prober model (pkg/kubelet/prober: worker.go, prober_manager.go; the container
restart back-off of pkg/kubelet/kuberuntime).

Times are seconds after the container starts. A worker's ticker phase relative to the container
start is unknown (the worker starts when the kubelet adds the pod), so results are windows: the
first probe that counts lands in [D, D+P). Only the startup probe runs until it has succeeded;
without one, liveness gates startup. A container with load time L:
* survives for every phase when L <= D + (F-1)P (the F-th probe sees it healthy),
* is killed for every phase when L > D + F*P + T, and
* in between it depends on the phase ("maybe"); with a uniform phase the kill probability is
  clamp((L - D - (F-1)P) / P, 0, 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.models._k8s import ModelInputError, pod_spec_of

BACKOFF_INITIAL_S = 10.0
BACKOFF_MAX_S = 300.0
DEFAULT_TERMINATION_GRACE_S = 30.0
MIN_GRACE_S = 2.0


def crashloop_backoff(
    n: int, initial: float = BACKOFF_INITIAL_S, maximum: float = BACKOFF_MAX_S
) -> float:
    """Wait before the n-th restart (n counts from 1): 0, 10, 20, 40, 80, 160, 300, 300, ...

    The first crash has no back-off entry, so the first restart is immediate (n <= 1 -> 0)."""
    if n <= 1:
        return 0.0
    if maximum < initial:
        initial = maximum
    return float(min(initial * 2 ** (n - 2), maximum))


@dataclass(frozen=True)
class Probe:
    """A probe with SetDefaults_Probe applied."""

    kind: str  # startup | liveness | readiness
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3
    termination_grace: float | None = None

    @property
    def kill_earliest(self) -> float:
        return self.initial_delay + (self.failure_threshold - 1) * self.period

    @property
    def kill_latest(self) -> float:
        return self.initial_delay + self.failure_threshold * self.period + self.timeout


def parse_probe(raw: Any, kind: str, field_name: str) -> Probe | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ModelInputError("expected a probe mapping", field_name)

    def num(key: str, default: float, minimum: float) -> float:
        v = raw.get(key)
        if v is None or v == 0:
            return default
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < minimum:
            raise ModelInputError(f"must be a number >= {minimum}", f"{field_name}.{key}")
        return float(v)

    succ = int(num("successThreshold", 1, 1))
    if kind in ("liveness", "startup") and succ != 1:
        raise ModelInputError(
            "must be 1 for liveness and startup probes", f"{field_name}.successThreshold"
        )
    tgps = raw.get("terminationGracePeriodSeconds")
    if tgps is not None and kind == "readiness":
        raise ModelInputError(
            "not allowed on readiness probes", f"{field_name}.terminationGracePeriodSeconds"
        )
    delay = raw.get("initialDelaySeconds") or 0
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0:
        raise ModelInputError("must be a number >= 0", f"{field_name}.initialDelaySeconds")
    return Probe(
        kind=kind,
        initial_delay=float(delay),
        period=float(num("periodSeconds", 10, 1)),
        timeout=float(num("timeoutSeconds", 1, 1)),
        success_threshold=succ,
        failure_threshold=int(num("failureThreshold", 3, 1)),
        termination_grace=float(tgps) if tgps is not None else None,
    )


@dataclass
class ProbeAnalysis:
    container: str
    gate: str | None  # which probe can kill during startup: startup | liveness | None
    startup_budget_s: float | None
    kill_earliest_s: float | None
    kill_latest_s: float | None
    samples: list[float]
    outcomes: list[str]
    kill_probabilities: list[float]
    killed_fraction: float
    ready_at_s: tuple[float, float] | None
    restart_sequence: list[tuple[float, str]]
    hang_detect_s: tuple[float, float] | None
    grace_period_s: float
    probes: dict[str, dict] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "container": self.container,
            "gate": self.gate,
            "startupBudgetSeconds": self.startup_budget_s,
            "killEarliestSeconds": self.kill_earliest_s,
            "killLatestSeconds": self.kill_latest_s,
            "loadSeconds": self.samples,
            "outcomes": self.outcomes,
            "killProbabilities": self.kill_probabilities,
            "killedFraction": self.killed_fraction,
            "readyAtSeconds": list(self.ready_at_s) if self.ready_at_s else None,
            "restartSequence": [{"t": t, "event": e} for t, e in self.restart_sequence],
            "hangDetectSeconds": list(self.hang_detect_s) if self.hang_detect_s else None,
            "gracePeriodSeconds": self.grace_period_s,
            "probes": self.probes,
            "notes": self.notes,
        }


def _pick_container(spec: dict, name: str | None) -> dict:
    containers = spec.get("containers") or []
    if not containers:
        raise ModelInputError("the pod has no containers", "spec.containers")
    if name is None:
        return containers[0]
    for c in containers:
        if c.get("name") == name:
            return c
    names = ", ".join(str(c.get("name")) for c in containers)
    raise ModelInputError(f"no container named {name!r} (have: {names})", "container")


def kill_probability(load_s: float, probe: Probe) -> float:
    """P(killed) for a uniformly random ticker phase (probe duration ignored)."""
    x = (load_s - probe.kill_earliest) / probe.period
    return min(1.0, max(0.0, x))


def analyze(
    pod_spec: dict,
    container: str | None,
    load_seconds: float | list[float],
    *,
    restart_horizon_s: float = 1800.0,
    exits_on_sigterm: bool = True,
) -> ProbeAnalysis:
    """Kill window, outcome per load-time sample, Ready time, restart/back-off sequence."""
    spec = pod_spec_of(pod_spec)
    c = _pick_container(spec, container)
    cname = str(c.get("name", ""))
    samples = [
        float(x) for x in (load_seconds if isinstance(load_seconds, list) else [load_seconds])
    ]
    if not samples or any(x < 0 for x in samples):
        raise ModelInputError("needs load times >= 0", "loadSeconds")
    startup = parse_probe(c.get("startupProbe"), "startup", f"containers[{cname}].startupProbe")
    liveness = parse_probe(c.get("livenessProbe"), "liveness", f"containers[{cname}].livenessProbe")
    readiness = parse_probe(
        c.get("readinessProbe"), "readiness", f"containers[{cname}].readinessProbe"
    )
    pod_tgps = spec.get("terminationGracePeriodSeconds")
    pod_grace = float(pod_tgps) if pod_tgps is not None else DEFAULT_TERMINATION_GRACE_S
    gate = startup or liveness
    grace = gate.termination_grace if gate and gate.termination_grace is not None else pod_grace
    grace = max(grace, MIN_GRACE_S) if grace > 0 else grace
    notes: list[str] = []

    outcomes: list[str] = []
    probs: list[float] = []
    for L in samples:
        if gate is None:
            outcomes.append("survives")
            probs.append(0.0)
            continue
        p = kill_probability(L, gate)
        probs.append(p)
        if gate.kill_earliest >= L:
            outcomes.append("survives")
        elif gate.kill_latest < L:
            outcomes.append("killed")
        else:
            outcomes.append("maybe")
    killed_fraction = sum(probs) / len(probs)

    # Ready time for the slowest sample that can survive.
    survivors = [L for L, o in zip(samples, outcomes, strict=True) if o != "killed"]
    ready: tuple[float, float] | None = None
    if survivors:
        lo_l, hi_l = min(survivors), max(survivors)
        if startup is not None:
            started = (
                max(lo_l, startup.initial_delay),
                max(hi_l, startup.initial_delay) + startup.period,
            )
            if readiness is None:
                ready = started
            else:
                extra = (readiness.success_threshold - 1) * readiness.period
                ready = (
                    max(started[0], readiness.initial_delay) + extra,
                    max(started[1], readiness.initial_delay + readiness.period) + extra,
                )
        elif readiness is not None:
            extra = (readiness.success_threshold - 1) * readiness.period
            ready = (
                max(lo_l, readiness.initial_delay) + extra,
                max(hi_l, readiness.initial_delay) + readiness.period + extra,
            )
        else:
            ready = (0.0, 0.0)
            notes.append(
                "no readiness or startup probe: the container is Ready as soon as it starts, "
                "before it has loaded; traffic reaches it early"
            )
    if readiness is None and startup is not None:
        notes.append("no readiness probe: Ready as soon as the startup probe succeeds")

    restarts: list[tuple[float, str]] = []
    if gate is not None:
        t = 0.0
        attempt = 0
        n = 0  # crashes since the back-off entry was (re)created
        last_crash: float | None = None
        while t <= restart_horizon_s and attempt < 50:
            attempt += 1
            restarts.append((t, f"Started (attempt {attempt})"))
            kill_t = t + gate.kill_earliest
            restarts.append((kill_t, f"Killing: failed {gate.kind} probe, will be restarted"))
            dead = kill_t + (0.0 if exits_on_sigterm else grace)
            # the back-off entry expires after 2 x max (600 s) without a crash
            if last_crash is not None and dead - last_crash > 2 * BACKOFF_MAX_S:
                n = 0
            last_crash = dead
            n += 1
            wait = crashloop_backoff(n)
            restarts.append(
                (dead, f"BackOff {wait:.0f}s (CrashLoopBackOff)" if wait else "Restarting at once")
            )
            t = dead + wait
        restarts = [(round(a, 3), e) for a, e in restarts if a <= restart_horizon_s]

    hang = (
        (
            liveness.kill_earliest - liveness.initial_delay,
            liveness.kill_latest - liveness.initial_delay,
        )
        if liveness
        else None
    )
    if liveness is None:
        notes.append("no liveness probe: a hung container is never restarted")
    if startup is None and liveness is not None:
        notes.append("no startup probe: liveness gates startup; a slow load is killed by liveness")

    budget = gate.initial_delay + gate.failure_threshold * gate.period if gate else None
    probes = {
        p.kind: {
            "initialDelaySeconds": p.initial_delay,
            "periodSeconds": p.period,
            "timeoutSeconds": p.timeout,
            "successThreshold": p.success_threshold,
            "failureThreshold": p.failure_threshold,
        }
        for p in (startup, liveness, readiness)
        if p is not None
    }
    return ProbeAnalysis(
        container=cname,
        gate=gate.kind if gate else None,
        startup_budget_s=budget,
        kill_earliest_s=gate.kill_earliest if gate else None,
        kill_latest_s=gate.kill_latest if gate else None,
        samples=samples,
        outcomes=outcomes,
        kill_probabilities=probs,
        killed_fraction=killed_fraction,
        ready_at_s=ready,
        restart_sequence=restarts,
        hang_detect_s=hang,
        grace_period_s=grace,
        probes=probes,
        notes=notes,
    )


# --- the probe worker, one doProbe call at a time (pkg/kubelet/prober/worker.go) ----------------

SUCCESS, FAILURE, UNKNOWN = "Success", "Failure", "Unknown"
# results.Manager value a worker sets when it first sees a container (worker.initialValue)
INITIAL_RESULT = {"liveness": SUCCESS, "readiness": FAILURE, "startup": UNKNOWN}


@dataclass
class ContainerState:
    """What a probe worker reads from the pod status at one tick."""

    container_id: str | None = "containerd://c1"  # None: no status for the container yet
    running: bool = True
    terminated: bool = False
    running_for_s: float = 0.0  # time since state.running.startedAt
    started: bool = True  # containerStatuses[].started: startup probe passed (or there is none)
    pod_phase: str = "Running"
    deleting: bool = False  # metadata.deletionTimestamp set


class ProbeWorker:
    """One probe worker: results, the consecutive-result run, and the on-hold state.

    `do_probe(state, outcome)` is one doProbe call, `outcome` being what the probe itself would
    return now (Success / Failure; None for a prober error, which is thrown away). It returns
    whether the worker keeps going; `result` is what the results manager holds (None: unset)."""

    def __init__(self, probe: Probe, restart_policy: str = "Always") -> None:
        self.probe = probe
        self.kind = probe.kind
        self.restart_policy = restart_policy
        self.container_id: str | None = None
        self.result: str | None = None
        self.on_hold = False
        self.last_result: str | None = None
        self.result_run = 0

    def do_probe(self, state: ContainerState | None, outcome: str | None) -> bool:
        if state is None:  # no pod status yet
            return True
        if state.pod_phase in ("Failed", "Succeeded"):
            return False
        if not state.container_id:  # container not created yet, or deleted
            return True
        if state.container_id != self.container_id:  # a new container (or a restart)
            self.container_id = state.container_id
            self.result = INITIAL_RESULT[self.kind]
            self.on_hold = False
        if self.on_hold:  # after a liveness failure or a startup result: wait for a new container
            return True
        if not state.running:
            self.result = FAILURE
            return not state.terminated or self.restart_policy != "Never"
        if state.deleting and self.kind in ("liveness", "startup"):
            self.result = SUCCESS  # a quiet shutdown
            return False
        if int(state.running_for_s) < self.probe.initial_delay:  # int32(seconds) < initialDelay
            return True
        if state.started:
            if self.kind == "startup":
                return True
        elif self.kind != "startup":
            return True  # only the startup probe runs until the container has started
        if outcome is None:
            return True
        if self.last_result == outcome:
            self.result_run += 1
        else:
            self.last_result = outcome
            self.result_run = 1
        if (outcome == FAILURE and self.result_run < self.probe.failure_threshold) or (
            outcome == SUCCESS and self.result_run < self.probe.success_threshold
        ):
            return True  # below the threshold: the result stays as it was
        self.result = outcome
        if (self.kind == "liveness" and outcome == FAILURE) or self.kind == "startup":
            self.on_hold = True
            self.result_run = 0
        return True


def worker_kill_time(gate: Probe, load_s: float, phase_s: float) -> float | None:
    """Drive a ProbeWorker for the startup-gating probe over a container that answers only after
    `load_s`: ticks at `phase_s + k*period` after the container start (0 <= phase_s < period),
    each probe failing at once while loading. Returns the time of the failure that kills the
    container, or None when it starts (startup probe) or turns healthy (liveness) first."""
    worker = ProbeWorker(gate)
    k = 0
    while True:
        t = phase_s + k * gate.period
        k += 1
        healthy = t >= load_s
        worker.do_probe(
            ContainerState(running_for_s=t, started=gate.kind != "startup"),
            SUCCESS if healthy else FAILURE,
        )
        if worker.result == FAILURE:
            return t
        if healthy and t >= gate.initial_delay:
            return None
