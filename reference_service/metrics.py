"""Prometheus metrics in vLLM's vocabulary (prefix `gauntlet:`), on a registry per app.

A registry per app (not the global one) lets tests start several apps in one process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

if TYPE_CHECKING:
    from reference_service.engine import GenResult

LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.15,
    0.2,
    0.25,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
    20.0,
    40.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)  # process_resident_memory_bytes, cpu seconds, fds
        PlatformCollector(registry=r)
        self.running = Gauge(
            "gauntlet:num_requests_running", "Requests in the batch being generated.", registry=r
        )
        self.waiting = Gauge(
            "gauntlet:num_requests_waiting",
            "Requests waiting in the queue for a batch slot.",
            registry=r,
        )
        self.ttft = Histogram(
            "gauntlet:time_to_first_token_seconds",
            "From arrival to the first generated token.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.e2e = Histogram(
            "gauntlet:e2e_request_latency_seconds",
            "From arrival to the last generated token.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_time = Histogram(
            "gauntlet:request_queue_time_seconds",
            "Time spent waiting before the batch started.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "gauntlet:batch_size",
            "Requests per generated batch.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.prompt_tokens = Counter(
            "gauntlet:prompt_tokens", "Prompt tokens processed.", registry=r
        )
        self.generation_tokens = Counter(
            "gauntlet:generation_tokens", "Tokens generated.", registry=r
        )
        self.success = Counter(
            "gauntlet:request_success",
            "Finished requests by reason.",
            ["finished_reason"],
            registry=r,
        )
        self.rejections = Counter(
            "gauntlet:admission_rejections",
            "Requests refused before generation, by reason.",
            ["reason"],
            registry=r,
        )
        self.unready_requests = Counter(
            "gauntlet:requests_while_unready",
            "API requests that arrived before the model was ready or while draining.",
            registry=r,
        )
        self.model_load = Gauge(
            "gauntlet:model_load_seconds", "Start-up time by phase.", ["phase"], registry=r
        )
        self.memory_budget = Gauge(
            "gauntlet:memory_budget_bytes",
            "Memory the admission controller lets the process use.",
            registry=r,
        )
        self.memory_reserved = Gauge(
            "gauntlet:memory_reserved_bytes",
            "Estimated memory reserved by admitted requests.",
            registry=r,
        )
        self.ready = Gauge("gauntlet:ready", "1 when started and not draining.", registry=r)
        self.draining = Gauge("gauntlet:draining", "1 while draining after SIGTERM.", registry=r)

    # EngineObserver
    def on_queue(self, waiting: int, running: int) -> None:
        self.waiting.set(waiting)
        self.running.set(running)

    def on_batch(self, size: int) -> None:
        self.batch_size.observe(size)

    def on_done(self, result: GenResult) -> None:
        self.ttft.observe(result.ttft_s)
        self.e2e.observe(result.e2e_s)
        self.queue_time.observe(max(0.0, result.queue_s))
        self.prompt_tokens.inc(result.prompt_tokens)
        self.generation_tokens.inc(result.completion_tokens)
        self.success.labels(finished_reason=result.finish_reason).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
