"""SLO profiles: YAML files validated by pydantic. Every verdict names its profile.

`seed` holds the article's production targets (GPU cluster); `local` is scaled honestly to a
2-core machine and is what CI certifies. Field names are the contract for scenarios, `check`
and the load engine; units are in the names (`_s`, `_ms`, `_rps`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness import resources
from harness.errors import InputError, from_validation_error


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RequestShape(_Strict):
    """One completion request as the load engine sends it."""

    prompt_tokens: int = Field(
        16, ge=1, description="prompt length in tokens (bytes for the byte tokenizer)"
    )
    max_tokens: int = Field(8, ge=1)
    temperature: float = Field(0.0, ge=0)


def _check_percentile_keys(field: str, targets: dict[str, float]) -> None:
    for key in targets:
        if not (key.startswith("p") and key[1:].replace(".", "", 1).isdigit()):
            raise ValueError(f"{field} key {key!r} must look like p50, p90, p99.9")


class GoodputSLO(_Strict):
    """Per-request SLOs (vLLM `bench serve --goodput`): a request is good when it succeeded and
    met every threshold given; goodput is the share of due requests that were good."""

    ttft_ms: float | None = Field(None, gt=0, description="time to first token, from send time")
    tpot_ms: float | None = Field(None, gt=0, description="time per output token after the first")
    e2el_ms: float | None = Field(None, gt=0, description="end-to-end latency")
    min_attainment: float = Field(
        gt=0, le=1, description="min share of due requests (failures count) that are good"
    )

    @model_validator(mode="after")
    def _some_threshold(self) -> GoodputSLO:
        if not self.thresholds():
            raise ValueError("goodput needs at least one of ttft_ms, tpot_ms, e2el_ms")
        return self

    def thresholds(self) -> dict[str, float]:
        """vLLM's names (ttft, tpot, e2el) -> ms, as `LoadSpec.goodput` takes them."""
        pairs = (("ttft", self.ttft_ms), ("tpot", self.tpot_ms), ("e2el", self.e2el_ms))
        return {k: v for k, v in pairs if v is not None}


class SLO(_Strict):
    latency_ms: dict[str, float] = Field(
        default_factory=lambda: {"p90": 300.0},
        description="end-to-end latency: percentile -> target in ms, e.g. {p90: 300, p99: 1000}",
    )
    ttft_ms: dict[str, float] = Field(
        default_factory=dict, description="time to first token: percentile -> ms (streams)"
    )
    tpot_ms: dict[str, float] = Field(
        default_factory=dict, description="time per output token, per request: percentile -> ms"
    )
    itl_ms: dict[str, float] = Field(
        default_factory=dict,
        description="inter-token latency (every chunk gap, whole run): percentile -> ms",
    )
    goodput: GoodputSLO | None = None
    availability: float = Field(
        0.9995, gt=0, lt=1, description="share of requests that must succeed"
    )
    rate_rps: float = Field(500.0, gt=0, description="sustained request rate the SLO is claimed at")
    cpu_utilization_max: float | None = Field(
        0.65, gt=0, le=1, description="max CPU usage relative to the CPU request at rate_rps"
    )
    window_s: float = Field(10.0, gt=0, description="window for per-window SLA evaluation")

    @model_validator(mode="before")
    @classmethod
    def _moved_fields(cls, data: object) -> object:
        if isinstance(data, dict) and "goodput_min" in data:
            raise ValueError(
                "goodput_min was replaced by goodput: {ttft_ms, tpot_ms, e2el_ms, "
                "min_attainment} (per-request thresholds, as vLLM's --goodput)"
            )
        return data

    @model_validator(mode="after")
    def _check_percentiles(self) -> SLO:
        for field in ("latency_ms", "ttft_ms", "tpot_ms", "itl_ms"):
            _check_percentile_keys(field, getattr(self, field))
        return self

    @property
    def streamed(self) -> bool:
        """True when a target can only be measured from a stream (TTFT, TPOT, ITL)."""
        per_request = self.goodput.thresholds() if self.goodput else {}
        return bool(
            self.ttft_ms or self.tpot_ms or self.itl_ms or {"ttft", "tpot"} & set(per_request)
        )

    def percentiles(self) -> tuple[float, ...]:
        """Every percentile any target names, ascending."""
        keys = {*self.latency_ms, *self.ttft_ms, *self.tpot_ms, *self.itl_ms}
        return tuple(sorted(float(k[1:]) for k in keys))

    def error_budget_minutes_per_30d(self) -> float:
        return (1 - self.availability) * 30 * 24 * 60


class LoadProfile(_Strict):
    baseline_rps: float = Field(
        gt=0, description="steady open-loop rate for steady-state scenarios"
    )
    duration_s: float = Field(30.0, gt=0, le=3600)
    arrival: Literal["constant", "poisson"] = "poisson"
    request: RequestShape = RequestShape()
    timeout_s: float = Field(10.0, gt=0)
    workers: int = Field(1, ge=1, le=64, description="load generator processes")


class PeakLoad(_Strict):
    """Largest batch, longest prompts: what the OOM-headroom scenario drives."""

    request: RequestShape
    concurrency: int = Field(ge=1, description="in-flight requests at peak (>= max batch)")
    duration_s: float = Field(20.0, gt=0)
    overload_factor: float = Field(
        4.0, gt=1, description="beyond-peak concurrency multiple that must be shed, not OOM"
    )


class MemoryTargets(_Strict):
    headroom: float = Field(
        0.25, ge=0, lt=1, description="peak must stay below (1-headroom) x limit"
    )


class ColdStartTargets(_Strict):
    starts: int = Field(3, ge=1, le=50, description="how many cold starts to measure")
    p95_s: float = Field(gt=0, description="target for creation->Ready, p95")
    max_s: float | None = Field(None, gt=0)
    declared_p95_s: float | None = Field(
        None, gt=0, description="expected load time used by `check` when no measurement is given"
    )


class ProbeTargets(_Strict):
    hang_detect_s: float = Field(
        60.0, gt=0, description="a hung replica must be killed within this"
    )
    margin: float = Field(
        1.5, ge=1, description="startup budget must cover p95 cold start x margin"
    )


#: a spike sized from capacity asks for this share of one replica more than the initial ones
#: carry: enough that they cannot carry it (the queue grows, the HPA must act), little enough
#: that the replicas it scales to can, on a machine whose replicas share its cores (2 cores
#: here: 4 replicas of 500m carried ~2.3-2.6 x one lone replica's capacity, the Service over 2
#: measured 0.79 x 2)
SPIKE_EXTRA_REPLICAS = 0.15
#: the hpa scenario's spike is lowered when it asks for more than this share of what
#: maxReplicas - 1 carry (see rate)
SPIKE_CEILING_SHARE = 0.85


class SpikeTargets(_Strict):
    """The autoscaling spike. Its rate is at least `factor` x baseline and, when the replicas
    running before it could carry that, is raised from the capacity measured in the run until
    it needs more replicas than it starts with (a spike that needs none tests nothing)."""

    factor: float = Field(5.0, gt=1)
    baseline_s: float = Field(30.0, gt=0)
    spike_s: float = Field(600.0, gt=0)
    after_s: float = Field(60.0, ge=0)
    request: RequestShape | None = Field(
        None,
        description="request of the spike and its capacity measurement (default: load.request)",
    )
    capacity_rps_per_replica: float | None = Field(
        None,
        gt=0,
        description="fallback only, named as declared in the verdict: the run measures it",
    )
    scale_out_s: float = Field(360.0, gt=0, description="first new replica Ready within this")
    max_breach_s: float = Field(
        120.0, ge=0, description="SLA-breach seconds allowed during the spike"
    )

    def rate(
        self,
        base_rps: float,
        capacity: float | None,
        initial: int,
        max_replicas: int | None = None,
        broke_at: float | None = None,
    ) -> tuple[float, str]:
        """The spike's rate and how it was sized: factor x baseline, and at least capacity x
        (initial + SPIKE_EXTRA_REPLICAS), so that the initial replicas cannot carry it.
        `broke_at` (a measured capacity's sweep step that broke the SLO: the true capacity lies
        below it, above `capacity`) sizes that floor when given: a floor from `capacity` alone is
        within a sweep step of what the initial replicas carry (in a CI run, 2 replicas held
        2.15 x a capacity measured a step low).

        With `max_replicas` (the hpa scenario), a rate above SPIKE_CEILING_SHARE of what
        maxReplicas - 1 carry (one replica of headroom, as capacity plans leave) is lowered to
        the floor, the least spike that still needs scaling, as long as that ceiling is above
        the floor: the scenario then judges how the autoscaler scales out on a machine slower
        than the profile assumed. (A spike that needs every replica up to maxReplicas measures
        the machine's last core, not the autoscaler: here 4 replicas of 500m on 2 cores
        breached 77 s of 120 at 85 % of 4 x capacity, all 4 Ready at +28 s; 69 s at 85 % of 3 x.)
        A ceiling below the floor is a maxReplicas that cannot carry any fitting spike, and a
        floor at or below the baseline is a baseline the initial replicas cannot carry (a
        lowered "spike" would be below it): the spike stays, and fails it on evidence. Whether
        maxReplicas is high enough for the profile's spike is also `gauntlet check --measured`'s
        hpa-max-replicas, which passes no `max_replicas`."""
        rate = base_rps * self.factor
        f = self.factor
        if capacity is None:
            return rate, f"{f:g} x {base_rps:g} req/s (no capacity to size it from)"
        per_replica = max(capacity, broke_at or 0.0)
        each = f"{per_replica:g} req/s each" + (
            f" (where one replica's SLO broke; it held at {capacity:g})"
            if per_replica > capacity
            else ""
        )
        floor = per_replica * (initial + SPIKE_EXTRA_REPLICAS)
        if rate < floor:
            return floor, (
                f"{f:g} x {base_rps:g} = {rate:g} req/s raised to "
                f"{initial + SPIKE_EXTRA_REPLICAS:g} replicas' worth at {each}, "
                f"so that the {initial} initial replicas cannot carry it"
            )
        ceiling = per_replica * (max_replicas - 1) * SPIKE_CEILING_SHARE if max_replicas else None
        if ceiling is not None and base_rps < floor <= ceiling < rate:
            return floor, (
                f"{f:g} x {base_rps:g} = {rate:g} req/s lowered to "
                f"{initial + SPIKE_EXTRA_REPLICAS:g} replicas' worth at {each} "
                f"(the capacity measured in this run): more than {SPIKE_CEILING_SHARE:.0%} of "
                f"(maxReplicas {max_replicas} - 1) x {per_replica:g} req/s, which one replica of "
                "headroom leaves here"
            )
        return rate, (
            f"{f:g} x {base_rps:g} req/s: more than {initial} replicas carry at "
            f"{capacity:g} req/s each"
        )

    @model_validator(mode="after")
    def _allowances_can_fail(self) -> SpikeTargets:
        # an allowance as long as the window it applies to can never be exceeded
        for name in ("max_breach_s", "scale_out_s"):
            if getattr(self, name) >= self.spike_s:
                raise ValueError(
                    f"{name} ({getattr(self, name):g}) must be smaller than spike_s "
                    f"({self.spike_s:g}): a spike breached or unscaled from start to end would "
                    f"still pass; lower {name} or lengthen spike_s"
                )
        return self


class CapacityTargets(_Strict):
    """The capacity scenario beyond one replica: the Service at the Deployment's replicas."""

    service_sweep: bool = Field(
        False,
        description="after one replica, sweep the Service at the Deployment's replicas (no HPA)",
    )
    service_scaling_min: float | None = Field(
        None,
        gt=0,
        le=1.5,
        description="the Service's capacity over replicas x one replica's must reach this "
        "(a check; needs service_sweep)",
    )

    @model_validator(mode="after")
    def _scaling_needs_sweep(self) -> CapacityTargets:
        if self.service_scaling_min is not None and not self.service_sweep:
            raise ValueError(
                "service_scaling_min needs service_sweep: true (nothing would measure it)"
            )
        return self


class ZoneTargets(_Strict):
    zones: list[str] = Field(default_factory=lambda: ["zone-a", "zone-b", "zone-c"], min_length=1)
    nodes_per_zone: int = Field(1, ge=1)
    fail_zone: str | None = Field(
        None, description="zone to lose; default: the one with most replicas"
    )
    recovery_s: float = Field(120.0, gt=0, description="SLA met again within this after the loss")
    fault_at_s: float = Field(10.0, ge=0)


class KubeSafety(_Strict):
    allowed_contexts: list[str] = Field(default_factory=list)
    chaos_allowed: bool = False
    zone_outage: Literal["evict", "taint", "drain"] | None = Field(
        None,
        description="how the kube backend loses a zone: cordon + evict the run's own pods "
        "(default), cordon + NoExecute taint (evicts every tenant's pods there: listed first), "
        "or a PDB-bound drain",
    )


class MachineSizing(_Strict):
    """The machine a profile's rates and latencies were sized on, as harness.machine_speed
    measures one: a run on a machine more than `slower_allowed` times slower says so in a
    caveat on every verdict (they may then measure the machine, not the manifests)."""

    preset: Literal["tiny", "small"] = "tiny"
    decode_step_ms: float = Field(gt=0, description="the probe's median decode step there")
    slower_allowed: float = Field(1.5, ge=1)

    def slower_by(self, measured_ms: float) -> float:
        return measured_ms / self.decode_step_ms


class Profile(_Strict):
    name: str
    description: str = ""
    slo: SLO = SLO()
    load: LoadProfile
    peak: PeakLoad
    memory: MemoryTargets = MemoryTargets()
    cold_start: ColdStartTargets
    probes: ProbeTargets = ProbeTargets()
    spike: SpikeTargets = SpikeTargets()
    zones: ZoneTargets = ZoneTargets()
    capacity: CapacityTargets = CapacityTargets()
    kube: KubeSafety = KubeSafety()
    machine: MachineSizing | None = None
    source: str | None = Field(None, exclude=True, description="file it was loaded from")


def available_profiles() -> list[str]:
    """Names of the bundled profiles (`harness.resources.profiles_dir()`)."""
    return resources.profile_names()


def load_profile(name_or_path: str | Path) -> Profile:
    """Load a bundled profile by name (`seed`, `local`) or a profile file by path."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = resources.profiles_dir() / f"{name_or_path}.yaml"
        if not path.exists():
            raise InputError(
                f"no profile named {name_or_path!r}",
                fix=f"use one of {', '.join(available_profiles())} or a YAML file path",
            )
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InputError("file not found", file=path, fix="give an existing profile file") from None
    except yaml.YAMLError as err:
        raise InputError(f"not valid YAML: {err}", file=path) from None
    if not isinstance(data, dict):
        raise InputError("a profile must be a YAML mapping", file=path)
    data.setdefault("name", path.stem)
    try:
        return Profile.model_validate({**data, "source": str(path)})
    except ValidationError as err:
        raise from_validation_error(err, path) from None
