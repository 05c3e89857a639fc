"""What to send, how fast and for how long: the load engine's input, validated up front.

A `LoadSpec` is the whole contract between callers (CLI, scenarios) and the engine. It is
bounded by construction: duration and request count always have a ceiling, and targets are
refused unless they are loopback or explicitly allowed (a backend's port-forward).
"""

from __future__ import annotations

import ipaddress
import math
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.errors import InputError
from harness.load.result import LoadPath
from harness.load.trace import TraceReplay
from harness.load.workload import Workload

if TYPE_CHECKING:
    from harness.profile import Profile, SpikeTargets

MAX_DURATION_S = 3600.0
MAX_RATE_RPS = 100_000.0
MAX_REQUESTS_CEILING = 10_000_000
ShapeKind = Literal["steady", "ramp", "step", "spike"]
GoodputMetric = Literal["ttft", "tpot", "e2el"]


class Shape(BaseModel):
    """How the open-loop rate (or closed-loop user count) moves over the run.

    All rates are relative to `LoadSpec.rate_rps` (the baseline) so a shape can be reused at any
    rate. steady: baseline throughout. ramp: linear from `start_factor` x baseline to baseline
    over `ramp_s` (default: the whole run), then held. step: `steps` equal steps up to
    baseline x `factor`, each `step_s` long (default: duration / steps). spike: baseline for
    `baseline_s`, `factor` x baseline for `spike_s`, baseline for `after_s`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ShapeKind = "steady"
    factor: float = Field(
        default=5.0, gt=0, le=1000, description="spike/step peak multiple of baseline"
    )
    start_factor: float = Field(
        default=0.0, ge=0, le=1000, description="ramp start multiple of baseline"
    )
    ramp_s: float | None = Field(default=None, gt=0)
    steps: int = Field(default=4, ge=1, le=100)
    step_s: float | None = Field(default=None, gt=0)
    baseline_s: float | None = Field(default=None, ge=0)
    spike_s: float | None = Field(default=None, gt=0)
    after_s: float | None = Field(default=None, ge=0)

    @classmethod
    def spike_from(cls, spike: SpikeTargets) -> Shape:
        """The profile's spike: baseline -> factor x baseline -> baseline."""
        return cls(
            kind="spike",
            factor=spike.factor,
            baseline_s=spike.baseline_s,
            spike_s=spike.spike_s,
            after_s=spike.after_s,
        )

    def natural_duration(self) -> float | None:
        """The duration the shape implies by itself (spike with all phases given), else None."""
        if self.kind == "spike" and None not in (self.baseline_s, self.spike_s, self.after_s):
            return float(self.baseline_s + self.spike_s + self.after_s)  # type: ignore[operator]
        if self.kind == "step" and self.step_s is not None:
            return self.steps * self.step_s
        return None

    def breakpoints(self, rate: float, duration: float) -> tuple[list[float], list[float]]:
        """Piecewise-linear rate function as (times, rates); steps are two points at one time."""
        d = duration
        if self.kind == "steady":
            return [0.0, d], [rate, rate]
        if self.kind == "ramp":
            r_s = min(self.ramp_s or d, d)
            start = rate * self.start_factor
            return [0.0, r_s, d], [start, rate, rate]
        if self.kind == "step":
            step_s = self.step_s or d / self.steps
            ts: list[float] = []
            rs: list[float] = []
            for i in range(self.steps):
                level = (
                    rate * (1 + (self.factor - 1) * i / max(1, self.steps - 1))
                    if self.steps > 1
                    else rate
                )
                t0 = min(i * step_s, d)
                t1 = d if i == self.steps - 1 else min((i + 1) * step_s, d)
                ts += [t0, t1]
                rs += [level, level]
            return ts, rs
        # spike
        b = self.baseline_s if self.baseline_s is not None else d / 4
        s = self.spike_s if self.spike_s is not None else d / 2
        b = min(b, d)
        e = min(b + s, d)
        peak = rate * self.factor
        return [0.0, b, b, e, e, d], [rate, rate, peak, peak, rate, rate]

    def describe(self) -> str:
        if self.kind == "steady":
            return "steady"
        if self.kind == "ramp":
            return f"ramp from {self.start_factor:g}x"
        if self.kind == "step":
            return f"step x{self.steps} to {self.factor:g}x"
        return f"spike {self.factor:g}x"


def _is_loopback_host(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _norm_url(url: str) -> str:
    return url.rstrip("/")


def check_target(target: str, allow_targets: list[str]) -> None:
    """Refuse anything but loopback or an explicitly allowed URL (InputError, field `target`).

    A backend allows only URLs of what it deployed: a port-forward on loopback, or (the kube
    backend's in-cluster load Job) `http://<service>.<namespace>.svc.cluster.local:<port>`, the
    Service of the namespace it created in the kube context the user allowed; it refuses to
    run a Job against any other URL (`harness.backends.kube.load_job`)."""
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(
            f"target {target!r} is not an http(s) URL",
            field="target",
            fix="e.g. http://127.0.0.1:8000",
        )
    if _is_loopback_host(parts.hostname):
        return
    allowed = {_norm_url(a) for a in allow_targets}
    if _norm_url(target) in allowed:
        return
    raise InputError(
        f"target {target!r} is outside 127.0.0.0/8 / localhost",
        field="target",
        fix="load only loopback URLs, or add the URL of a backend you deployed to allow_targets "
        "(--allow-target)",
    )


class LoadSpec(BaseModel):
    """One load run. Open loop (global arrival schedule) or closed loop (users)."""

    model_config = ConfigDict(extra="forbid")

    target: str = Field(description="base URL, e.g. http://127.0.0.1:8000")
    path: str = "/v1/completions"
    method: str = "POST"
    body: dict[str, Any] | None = None
    stream: bool = Field(
        default=False,
        description="OpenAI SSE streaming: the body gets stream=true and "
        "stream_options.include_usage; each request records TTFT, its chunk times and the "
        "output tokens the usage chunk reports",
    )
    workload: Workload | None = Field(
        default=None,
        description="prompt/output lengths from distributions: a pool of bodies built from "
        "`body` (model, temperature...) with a prompt and max_tokens each",
    )
    goodput: dict[GoodputMetric, float] = Field(
        default_factory=dict,
        description="per-request SLOs in ms (ttft, tpot, e2el, as vLLM's --goodput): a request "
        "is good when it succeeded and meets every one; needs stream for ttft/tpot",
    )
    headers: dict[str, str] = Field(default_factory=dict)
    mode: Literal["open", "closed"] = "open"
    rate_rps: float = Field(
        default=10.0, gt=0, le=MAX_RATE_RPS, description="open loop: baseline rate"
    )
    duration_s: float = Field(default=10.0, gt=0, le=MAX_DURATION_S)
    arrival: Literal["constant", "poisson", "gamma", "trace"] = "poisson"
    trace: TraceReplay | None = Field(
        default=None,
        description="arrival trace: replay a trace file's arrivals and lengths (Azure CSV, "
        "Mooncake JSONL); sets arrival, the rate and (unless given) the duration",
    )
    burstiness: float = Field(
        default=1.0,
        gt=0,
        le=1000,
        description="arrival gamma: gap shape b (1 = Poisson, < 1 burstier, > 1 more even), "
        "as vLLM's --burstiness",
    )
    shape: Shape | None = None
    users: int = Field(default=10, ge=1, le=10_000, description="closed loop: concurrent users")
    timeout_s: float = Field(default=10.0, gt=0, le=600)
    max_requests: int | None = Field(default=None, ge=1, le=MAX_REQUESTS_CEILING)
    workers: int = Field(default=1, ge=1, le=64)
    seed: int = 0
    allow_targets: list[str] = Field(default_factory=list)
    load_path: LoadPath = Field(
        default="direct",
        description="how the target reaches the pods, copied into the result: service, "
        "service-port-forward, pod (one pod, a targeted probe) or direct (as given)",
    )
    # engine knobs (extras beyond the shared contract)
    max_in_flight: int | None = Field(
        default=None,
        ge=1,
        le=20_000,
        description="open loop: request slots over all workers (default derived)",
    )
    max_lag_s: float = Field(
        default=1.0,
        gt=0,
        description="open loop: a request due longer ago than this is dropped, not sent",
    )
    worker_cpus: list[int] | None = Field(
        default=None, description="pin worker processes to these CPUs"
    )

    @model_validator(mode="after")
    def _validate(self) -> LoadSpec:
        check_target(self.target, self.allow_targets)
        if not self.path.startswith("/"):
            raise InputError(
                f"path {self.path!r} must start with /", field="path", fix="e.g. /v1/completions"
            )
        self.method = self.method.upper()
        streamed_only = sorted(set(self.goodput) & {"ttft", "tpot"})
        if streamed_only and not self.stream:
            raise InputError(
                f"goodput on {', '.join(streamed_only)} needs a streaming run",
                field="goodput",
                fix="add --stream, or keep only e2el",
            )
        if any(v <= 0 for v in self.goodput.values()):
            raise InputError("goodput thresholds must be > 0 ms", field="goodput")
        if (self.trace is not None) != (self.arrival == "trace"):
            raise InputError(
                "arrival 'trace' and a trace file go together",
                field="trace" if self.trace is None else "arrival",
                fix="give --trace FILE (it sets the arrival), or another arrival without one",
            )
        if self.trace is not None:
            self._take_from_trace(self.trace)
        if (self.workload is not None or self.trace is not None) and self.method != "POST":
            raise InputError("a workload is sent as POST bodies", field="method", fix="POST")
        sends_pool = self.workload is not None or self.trace is not None
        if self.stream and not sends_pool and (self.body is None or self.method != "POST"):
            raise InputError(
                "stream needs a POST with a JSON body (an OpenAI completions or chat request)",
                field="stream",
                fix="give --body (or drop --stream)",
            )
        if self.method not in ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"):
            raise InputError(
                f"unsupported method {self.method!r}", field="method", fix="GET or POST"
            )
        return self

    def _take_from_trace(self, trace: TraceReplay) -> None:
        if self.mode != "open" or self.shape is not None or self.workload is not None:
            raise InputError(
                "a trace replays its own arrivals and lengths",
                field="trace",
                fix="open loop, without --shape or --workload",
            )
        if "duration_s" not in self.model_fields_set:
            self.duration_s = min(trace.natural_duration(), MAX_DURATION_S)
        due = int((trace.offsets() < self.duration_s).sum())
        if due == 0:
            raise InputError(
                f"no trace row is due within {self.duration_s:g} s", field="duration_s"
            )
        self.rate_rps = min(due / self.duration_s, MAX_RATE_RPS)  # the mean, for sizing

    # derived ---------------------------------------------------------------------------------
    def request_body(self) -> dict[str, Any] | None:
        """The body as sent: with streaming switched on (and usage asked for) when `stream`."""
        if self.body is None or not self.stream:
            return self.body
        return {**self.body, "stream": True, "stream_options": self.stream_options()}

    def stream_options(self) -> dict[str, Any]:
        """`stream_options` as sent: the body's own, with usage always asked for."""
        return {**((self.body or {}).get("stream_options") or {}), "include_usage": True}

    def effective_shape(self) -> Shape:
        return self.shape or Shape.model_validate({"kind": "steady"})

    def expected_requests(self) -> float:
        """Mean number of requests the open-loop schedule holds (integral of the rate)."""
        ts, rs = self.effective_shape().breakpoints(self.rate_rps, self.duration_s)
        return sum((ts[i + 1] - ts[i]) * (rs[i] + rs[i + 1]) / 2 for i in range(len(ts) - 1))

    def peak_rate(self) -> float:
        if self.trace is not None:  # the busiest second of the replay
            off = self.trace.offsets()
            off = off[off < self.duration_s]
            return float(np.bincount(off.astype(int)).max()) if len(off) else self.rate_rps
        return max(self.effective_shape().breakpoints(self.rate_rps, self.duration_s)[1])

    def request_bound(self) -> int:
        """Hard cap on requests: `max_requests` or 1.5 x the expected count (+ slack)."""
        if self.max_requests is not None:
            return self.max_requests
        if self.mode == "open":
            expected = self.expected_requests()
            bound = math.ceil(expected * 1.5 + 10 * math.sqrt(expected + 1) + 10)
        else:
            # closed loop: no schedule; bound by an absurd-but-finite per-user rate
            bound = math.ceil(self.users * self.duration_s * 5000)
        return min(bound, MAX_REQUESTS_CEILING)

    def in_flight_slots(self) -> int:
        if self.max_in_flight is not None:
            return self.max_in_flight
        # enough for every request of a stall of up to timeout_s (capped at 10 s) to stay in flight
        return int(min(5000, max(64, math.ceil(self.peak_rate() * min(self.timeout_s, 10.0)))))

    @classmethod
    def from_profile(
        cls,
        profile: Profile,
        target: str,
        *,
        shape: Shape | str | None = None,
        **overrides: Any,
    ) -> LoadSpec:
        """Open-loop spec from `profile.load` (request body from `profile.load.request`); it
        streams when the profile's SLO has a stream target, and computes its goodput.

        `shape="spike"` (or a Shape of kind spike without phases) takes the phases and factor
        from `profile.spike`; the duration then becomes baseline + spike + after.
        """
        load = profile.load
        req = load.request
        body = {
            "prompt": _prompt(req.prompt_tokens),
            "max_tokens": req.max_tokens,
            "temperature": req.temperature,
        }
        if isinstance(shape, str):
            shape = Shape.spike_from(profile.spike) if shape == "spike" else Shape(kind=shape)
        elif shape is not None and shape.kind == "spike" and shape.natural_duration() is None:
            spike = Shape.spike_from(profile.spike)
            shape = spike.model_copy(
                update={
                    "factor": shape.factor if "factor" in shape.model_fields_set else spike.factor
                }
            )
        duration = load.duration_s
        if shape is not None and shape.natural_duration() is not None:
            duration = shape.natural_duration()  # type: ignore[assignment]
        slo = profile.slo
        kwargs: dict[str, Any] = {
            "target": target,
            "body": body,
            # the SLO decides what must be observed: TTFT / TPOT / ITL need a stream
            "stream": slo.streamed,
            "goodput": slo.goodput.thresholds() if slo.goodput else {},
            "rate_rps": load.baseline_rps,
            "duration_s": duration,
            "arrival": load.arrival,
            "timeout_s": load.timeout_s,
            "workers": load.workers,
            "shape": shape,
        }
        kwargs.update(overrides)
        return cls(**kwargs)


def _prompt(n_tokens: int) -> str:
    """An ASCII prompt of exactly n bytes (= tokens for the byte-level reference tokenizer)."""
    text = "The quick brown fox jumps over the lazy dog. "
    return (text * (n_tokens // len(text) + 1))[:n_tokens]
