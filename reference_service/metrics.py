"""Prometheus metrics: vLLM's names, types, buckets and labels for what vLLM also measures, so an
HPA, prometheus-adapter rule or KEDA trigger written for vLLM works unchanged; `gauntlet:` names
for what only this service has (admission rejections by reason, requests while unready, load
phases, the memory budget).

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
    from reference_service.sequence import GenResult

# vLLM's buckets (vllm/v1/metrics/loggers.py).
TTFT_BUCKETS = (
    *(0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75),
    *(1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0),
)
ITL_BUCKETS = (
    *(0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75),
    *(1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0),
)
REQUEST_LATENCY_BUCKETS = (
    *(0.1, 0.2, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0),
    *(50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0),
)
SEQS_PER_STEP_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
VLLM_LABELS = ("model_name", "engine")


def one_two_five(upto: int) -> tuple[float, ...]:
    """vLLM's 1-2-5 token-count buckets up to `upto` (max_model_len or the step budget)."""
    out: list[float] = []
    exp = 0
    while True:
        for m in (1, 2, 5):
            v = m * 10**exp
            if v > upto:
                return tuple(out)
            out.append(float(v))
        exp += 1


class ServiceMetrics:
    def __init__(
        self, model_name: str, *, max_model_len: int = 1024, max_batched_tokens: int = 2048
    ) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)  # process_resident_memory_bytes, cpu seconds, fds
        PlatformCollector(registry=r)
        labels = {"model_name": model_name, "engine": "0"}

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, VLLM_LABELS, registry=r).labels(**labels)

        def histogram(name: str, doc: str, buckets: tuple[float, ...]) -> Histogram:
            return Histogram(name, doc, VLLM_LABELS, buckets=buckets, registry=r).labels(**labels)

        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, VLLM_LABELS, registry=r).labels(**labels)

        self.running = gauge("vllm:num_requests_running", "Number of requests in model execution.")
        self.waiting = gauge("vllm:num_requests_waiting", "Number of requests waiting.")
        self.kv_usage = gauge(
            "vllm:kv_cache_usage_perc",
            "KV-cache usage, 1 = full: the running batch's KV tensors over the KV capacity the "
            "memory budget leaves after the idle footprint.",
        )
        self.ttft = histogram(
            "vllm:time_to_first_token_seconds", "Histogram of time to first token.", TTFT_BUCKETS
        )
        self.itl = histogram(
            "vllm:inter_token_latency_seconds", "Histogram of inter-token latency.", ITL_BUCKETS
        )
        self.tpot = histogram(
            "vllm:request_time_per_output_token_seconds",
            "Histogram of time per output token (decode time / decode tokens).",
            ITL_BUCKETS,
        )
        self.e2e = histogram(
            "vllm:e2e_request_latency_seconds",
            "Histogram of end-to-end request latency.",
            REQUEST_LATENCY_BUCKETS,
        )
        self.queue_time = histogram(
            "vllm:request_queue_time_seconds",
            "Histogram of time spent waiting before the first step.",
            REQUEST_LATENCY_BUCKETS,
        )
        self.inference_time = histogram(
            "vllm:request_inference_time_seconds",
            "Histogram of time spent running (prefill + decode).",
            REQUEST_LATENCY_BUCKETS,
        )
        self.prefill_time = histogram(
            "vllm:request_prefill_time_seconds",
            "Histogram of time spent in prefill.",
            REQUEST_LATENCY_BUCKETS,
        )
        self.decode_time = histogram(
            "vllm:request_decode_time_seconds",
            "Histogram of time spent in decode.",
            REQUEST_LATENCY_BUCKETS,
        )
        lengths = one_two_five(max_model_len)
        self.request_prompt_tokens = histogram(
            "vllm:request_prompt_tokens", "Number of prefill tokens processed.", lengths
        )
        self.request_generation_tokens = histogram(
            "vllm:request_generation_tokens", "Number of generation tokens processed.", lengths
        )
        self.request_max_tokens = histogram(
            "vllm:request_params_max_tokens", "The max_tokens request parameter.", lengths
        )
        self.iteration_tokens = histogram(
            "vllm:iteration_tokens_total",
            "Tokens per engine step.",
            one_two_five(max_batched_tokens),
        )
        self.prompt_tokens = counter("vllm:prompt_tokens", "Number of prefill tokens processed.")
        self.generation_tokens = counter(
            "vllm:generation_tokens", "Number of generation tokens processed."
        )
        self.prefix_cache_queries = counter(
            "vllm:prefix_cache_queries",
            "Prefix cache queries, in terms of number of queried tokens.",
        )
        self.prefix_cache_hits = counter(
            "vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens."
        )
        self._success = Counter(
            "vllm:request_success",
            "Count of finished requests, by finished reason.",
            [*VLLM_LABELS, "finished_reason"],
            registry=r,
        )
        self._labels = labels
        # ---- Gauntlet's own --------------------------------------------------------------
        self.seqs_per_step = Histogram(
            "gauntlet:batch_size",
            "Sequences in the running batch per engine step.",
            buckets=SEQS_PER_STEP_BUCKETS,
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
        self.kv_capacity_bytes = 0

    def success(self, finished_reason: str) -> Counter:
        return self._success.labels(**self._labels, finished_reason=finished_reason)

    # EngineObserver
    def on_queue(self, waiting: int, running: int) -> None:
        self.waiting.set(waiting)
        self.running.set(running)

    def on_step(self, sequences: int, tokens: int, kv_bytes: int) -> None:
        if sequences:
            self.seqs_per_step.observe(sequences)
        if tokens:
            self.iteration_tokens.observe(tokens)
        if self.kv_capacity_bytes > 0:
            self.kv_usage.set(min(1.0, kv_bytes / self.kv_capacity_bytes))

    def on_prefix_cache(self, queried_tokens: int, hit_tokens: int) -> None:
        self.prefix_cache_queries.inc(queried_tokens)
        self.prefix_cache_hits.inc(hit_tokens)

    def on_done(self, result: GenResult) -> None:
        self.success(result.finish_reason).inc()
        self.prompt_tokens.inc(result.prompt_tokens)
        self.generation_tokens.inc(result.completion_tokens)
        self.request_prompt_tokens.observe(result.prompt_tokens)
        self.request_generation_tokens.observe(result.completion_tokens)
        self.request_max_tokens.observe(result.max_tokens)
        self.queue_time.observe(result.queue_s)
        if not result.token_times:
            return  # aborted before its first token: no TTFT, no decode
        self.ttft.observe(result.ttft_s)
        self.e2e.observe(result.e2e_s)
        self.prefill_time.observe(result.prefill_s)
        self.decode_time.observe(result.decode_s)
        self.inference_time.observe(result.prefill_s + result.decode_s)
        for gap in result.inter_token_s:
            self.itl.observe(gap)
        if result.completion_tokens > 1:
            self.tpot.observe(result.decode_s / (result.completion_tokens - 1))

    def render(self) -> bytes:
        return generate_latest(self.registry)
