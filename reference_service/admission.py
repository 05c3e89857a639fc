"""Admission control: refuse work early, with a status a client can act on.

- model not started / draining -> 503 (+ Retry-After)
- waiting queue full -> 429 + Retry-After
- prompt over `max_prompt_tokens` or beyond the model context -> 413 naming `prompt`;
  `max_tokens` over its limit -> 400 naming `max_tokens`
- memory: each request reserves an estimate of its KV cache and activations; a request whose
  reservation would push (process RSS + reservations) past the budget is refused with 429
  (or 413 naming `max_tokens` if it could never fit) before any memory is touched.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil

# Allocator slack and left-padding waste on top of the raw tensor sizes.
ESTIMATE_SAFETY_FACTOR = 2.0
PER_REQUEST_OVERHEAD_BYTES = 256 * 1024


@dataclass
class Rejection(Exception):
    status: int
    reason: str  # metric label: queue_full | memory | draining | not_ready | too_large | invalid
    message: str
    param: str | None = None
    retry_after_s: int | None = None


@dataclass(frozen=True)
class ModelShape:
    """What the memory estimate needs from the model config."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    dtype_bytes: int
    max_positions: int

    @classmethod
    def from_config(cls, config: Any, dtype_bytes: int) -> ModelShape:
        heads = int(config.num_attention_heads)
        hidden = int(config.hidden_size)
        return cls(
            layers=int(config.num_hidden_layers),
            hidden=hidden,
            intermediate=int(getattr(config, "intermediate_size", 4 * hidden)),
            heads=heads,
            kv_heads=int(getattr(config, "num_key_value_heads", None) or heads),
            head_dim=int(getattr(config, "head_dim", None) or hidden // heads),
            vocab=int(config.vocab_size),
            dtype_bytes=dtype_bytes,
            max_positions=int(getattr(config, "max_position_embeddings", 2048)),
        )


def estimate_request_bytes(shape: ModelShape, prompt_tokens: int, max_tokens: int) -> int:
    """KV cache for the whole sequence + peak prefill activations + sampling buffers."""
    seq = prompt_tokens + max_tokens
    kv = 2 * shape.layers * shape.kv_heads * shape.head_dim * seq * shape.dtype_bytes
    hidden_acts = prompt_tokens * (4 * shape.hidden + 3 * shape.intermediate) * shape.dtype_bytes
    attn_scores = shape.heads * prompt_tokens * prompt_tokens * 4
    logits = 2 * shape.vocab * 4
    raw = kv + hidden_acts + attn_scores + logits
    return int(raw * ESTIMATE_SAFETY_FACTOR) + PER_REQUEST_OVERHEAD_BYTES


class MemoryBudget:
    """Reservations against a byte budget, checked together with the live RSS of the process
    (and of the engine core process, when the engine runs in one).

    The projected use is the larger of the live RSS and the idle baseline plus every admitted
    request's estimate: RSS already holds what running requests allocated, so adding their
    reservations to it would count them twice (and refuse a peak the budget can hold, which
    closed-loop clients then retry in a storm). RSS above the projection (an estimate too low,
    allocator fragmentation) still wins, and so does the running batch's live KV cache as it
    grows (`kv_live`, padding included) when it outgrows the reservations."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self.reserved = 0
        self.baseline_rss = 0
        self.kv_live: Callable[[], int] = lambda: 0
        self._lock = threading.Lock()
        self._procs = [psutil.Process()]

    def track(self, pid: int) -> None:
        """Count another process's RSS too (the engine core process)."""
        self._procs.append(psutil.Process(pid))

    def rss(self) -> int:
        """RSS of this process and every tracked one (one that exited counts 0)."""
        total = 0
        for proc in self._procs:
            with contextlib.suppress(psutil.Error):
                total += int(proc.memory_info().rss)
        return total

    def mark_baseline(self) -> None:
        """Record the idle RSS after the model is loaded and warmed (what any request adds to)."""
        self.baseline_rss = self.rss()

    def reserve(self, nbytes: int) -> None:
        with self._lock:
            rss = self.rss()
            idle_free = self.budget_bytes - self.baseline_rss
            if nbytes > idle_free:
                # Even an idle service could not fit it: the request itself is too large.
                raise Rejection(
                    413,
                    "too_large",
                    f"request needs ~{nbytes >> 20} MiB but only "
                    f"{max(0, idle_free) >> 20} MiB of the memory budget is free "
                    "when idle; lower max_tokens or shorten the prompt",
                    param="max_tokens",
                )
            held = max(self.reserved, self.kv_live())
            projected = max(rss, self.baseline_rss + held)
            if projected + nbytes > self.budget_bytes:
                raise Rejection(
                    429,
                    "memory",
                    f"memory budget reached (max(rss {rss >> 20} MiB, idle "
                    f"{self.baseline_rss >> 20} MiB + max(reserved, live KV) {held >> 20} MiB) + "
                    f"{nbytes >> 20} MiB > budget {self.budget_bytes >> 20} MiB); retry later",
                    retry_after_s=1,
                )
            self.reserved += nbytes

    def kv_capacity(self) -> int:
        """What the budget leaves for KV caches once the model is loaded (0 before)."""
        return max(0, self.budget_bytes - self.baseline_rss) if self.baseline_rss else 0

    def release(self, nbytes: int) -> None:
        with self._lock:
            self.reserved = max(0, self.reserved - nbytes)


def check_lengths(
    prompt_tokens: int,
    max_tokens: int,
    *,
    max_prompt_tokens: int,
    max_tokens_limit: int,
    max_positions: int,
) -> None:
    if max_tokens > max_tokens_limit:
        raise Rejection(
            400,
            "invalid",
            f"max_tokens {max_tokens} is over the limit {max_tokens_limit}",
            param="max_tokens",
        )
    if prompt_tokens > max_prompt_tokens:
        raise Rejection(
            413,
            "too_large",
            f"prompt is {prompt_tokens} tokens, over the limit {max_prompt_tokens}",
            param="prompt",
        )
    if prompt_tokens + max_tokens > max_positions:
        raise Rejection(
            413,
            "too_large",
            f"prompt ({prompt_tokens} tokens) + max_tokens "
            f"({max_tokens}) exceed the model context of {max_positions}",
            param="prompt",
        )
