"""What the scenarios may assume about the server under test: its kind.

Gauntlet certifies its own reference service, vLLM, and any other OpenAI-compatible server. The
kind says which endpoint means what, which metric names the queue, running requests, KV-cache use
and the server's own TTFT, where a cold start's phases can be read, and which faults only work
against one kind. A scenario asks the kind instead of assuming the reference service; what a kind
cannot give is skipped or inconclusive with that reason, never assumed.

The kind is declared on the pod template (`gauntlet.dev/server: reference|vllm|openai`) or read
from the main container: its image, command and args (`vllm serve`, `vllm.entrypoints...`,
`gauntlet serve`). Anything else is a generic OpenAI-compatible server.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.errors import InputError

SERVER_ANNOTATION = "gauntlet.dev/server"


Metrics = Mapping[str, list[tuple[dict[str, str], float]]]  # harness.prom's parse


@dataclass(frozen=True)
class ServerKind:
    name: str
    #: the server's own cold-start phases (s) from its metrics and its log; {} where it has none
    load_phases: Callable[[Metrics, str], dict[str, float]]
    #: liveness-grade health (process and engine alive), as the server means it
    health_path: str | None
    #: what proves the server can serve a request (None: only a real request does)
    ready_path: str | None
    #: vLLM's vocabulary where the server has it: role -> metric family name
    metrics: Mapping[str, str] = field(default_factory=dict)
    #: Gauntlet-only evidence: requests a replica received while it was unready
    unready_metric: str | None = None
    #: admission rejections by reason (counter), where the server counts them
    rejections_metric: str | None = None
    load_phases_source: str = ""
    #: the server's own flag that makes SIGTERM drain in-flight requests (None: built in / unknown)
    drain_flag: str | None = None

    def metric(self, role: str) -> str | None:
        return self.metrics.get(role)


VLLM_METRICS = {
    "queue": "vllm:num_requests_waiting",
    "running": "vllm:num_requests_running",
    "kv_cache": "vllm:kv_cache_usage_perc",
    "ttft": "vllm:time_to_first_token_seconds",
    "itl": "vllm:inter_token_latency_seconds",
    "e2e": "vllm:e2e_request_latency_seconds",
}


def _reference_phases(metrics: Metrics, log: str) -> dict[str, float]:
    return {
        labels["phase"]: round(v, 3)
        for labels, v in metrics.get("gauntlet:model_load_seconds", [])
        if "phase" in labels
    }


#: vLLM's startup log lines that time a phase themselves (v0.32: model_loader/base_loader.py,
#: default_loader.py, v1/engine/core.py); the last occurrence wins (a restart logs them again)
VLLM_LOG_DURATIONS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("model_init", re.compile(r"Initializing model took ([0-9.]+) seconds")),
    ("weights", re.compile(r"Loading weights took ([0-9.]+) seconds")),
    (
        "engine_init",
        re.compile(r"init engine \(profile, create kv cache, warmup model\) took ([0-9.]+) s"),
    ),
)
#: two log lines that bracket a phase (their timestamps have 1 s resolution)
VLLM_LOG_SPANS: tuple[tuple[str, str, str], ...] = (
    ("compile_warmup", "Warming up model for the compilation", "Warming up done"),
)
_LOG_TIME = re.compile(r"(?:INFO|WARNING|DEBUG|ERROR) (\d\d-\d\d \d\d:\d\d:\d\d) ")


def _log_time(line: str) -> float | None:
    m = _LOG_TIME.search(line)
    if not m:
        return None
    month_day, clock = m.group(1).split(" ")
    mo, d = (int(x) for x in month_day.split("-"))
    h, mi, sec = (int(x) for x in clock.split(":"))
    return (((mo * 31 + d) * 24 + h) * 60 + mi) * 60.0 + sec  # only differences are used


def _vllm_phases(metrics: Metrics, log: str) -> dict[str, float]:
    """vLLM's phases from the log of its last start (after the container's last start line)."""
    log = log.rsplit("--- container ", 1)[-1]
    out: dict[str, float] = {}
    for name, pattern in VLLM_LOG_DURATIONS:
        found = pattern.findall(log)
        if found:
            out[name] = round(float(found[-1]), 3)
    lines = log.splitlines()
    for name, first, last in VLLM_LOG_SPANS:
        t0 = next((_log_time(x) for x in lines if first in x), None)
        t1 = next((_log_time(x) for x in reversed(lines) if last in x), None)
        if t0 is not None and t1 is not None and t1 >= t0:
            out[name] = t1 - t0
    return out


def _no_phases(metrics: Metrics, log: str) -> dict[str, float]:
    return {}


REFERENCE = ServerKind(
    name="reference",
    health_path="/healthz",
    ready_path="/ready",
    metrics=VLLM_METRICS,
    unready_metric="gauntlet:requests_while_unready",
    rejections_metric="gauntlet:admission_rejections",
    load_phases=_reference_phases,
    load_phases_source="the service's gauntlet:model_load_seconds{phase}",
)
VLLM = ServerKind(
    name="vllm",
    # /health is 200 once the engine answers check_health(); the app is served only after engine
    # init, so it is also the first moment the server can serve (llm-d probes /v1/models for it)
    health_path="/health",
    ready_path="/v1/models",
    metrics=VLLM_METRICS,
    rejections_metric="vllm:admission_rejections",
    load_phases=_vllm_phases,
    load_phases_source="vLLM's startup log (weights, model load, torch.compile, engine init)",
    drain_flag="--shutdown-timeout",
)
OPENAI = ServerKind(
    name="openai",
    health_path=None,
    ready_path="/v1/models",
    load_phases=_no_phases,
    load_phases_source="none: a generic server gives only the pod's timestamps",
)
KINDS = {k.name: k for k in (REFERENCE, VLLM, OPENAI)}


def image_repo(image: str) -> str:
    """`registry/org/vllm-openai:v1@sha256:...` -> `vllm-openai`."""
    return image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]


def _main_container(deployment: Mapping[str, Any]) -> Mapping[str, Any]:
    containers = (((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
        "containers"
    ) or [{}]
    return containers[0]


def detect(deployment: Mapping[str, Any], source: str | None = None) -> ServerKind:
    """The server kind of a Deployment: declared by annotation, else read from its container."""
    template = (deployment.get("spec") or {}).get("template") or {}
    declared = ((template.get("metadata") or {}).get("annotations") or {}).get(SERVER_ANNOTATION)
    if declared is not None:
        if declared not in KINDS:
            raise InputError(
                f"unknown server kind {declared!r}",
                file=source,
                field=f"spec.template.metadata.annotations[{SERVER_ANNOTATION}]",
                fix=f"use one of {', '.join(KINDS)}",
            )
        return KINDS[declared]
    c = _main_container(deployment)
    image = str(c.get("image") or "")
    words = [str(x) for x in (c.get("command") or []) + (c.get("args") or [])]
    repo = image_repo(image)
    if "vllm" in repo or (words[:1] == ["vllm"]) or any(w.startswith("vllm.") for w in words):
        return VLLM
    if repo.startswith("gauntlet") or words[:2] == ["gauntlet", "serve"]:
        return REFERENCE
    return OPENAI
