"""Which sequences run at the next step: vLLM's per-step budgets, FCFS, no preemption.

Every step, running sequences go first (one decode token each); waiting ones join in arrival
order while the step has room: at most `max_num_seqs` running and `max_num_batched_tokens` tokens
(decode tokens + the new prompts' tokens a prefix cache does not hold) per step, so new prefills
never stall the running batch for more than one step's budget. A prompt that does not fit stops
admission for this step (head of line, as vLLM does without chunked prefill). Waiting sequences
that could not start within `max_queue_wait_s` are shed: they could no longer finish in time for
their client.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass

from reference_service.sequence import Sequence


class QueueFull(Exception):
    """The waiting queue is at `max_queue`: the caller should answer 429."""


class EngineStopped(Exception):
    """The engine is draining or stopped: the caller should answer 503."""


class EngineDead(EngineStopped):
    """The engine process exited under the server (vLLM's EngineDeadError): 503."""


class QueueTimeout(Exception):
    """The request waited `max_queue_wait_s` without starting: the caller should answer 429."""


@dataclass(frozen=True)
class SchedulerConfig:
    max_num_seqs: int
    max_num_batched_tokens: int
    max_queue: int
    max_queue_wait_s: float


@dataclass
class StepPlan:
    admit: list[Sequence]
    expired: list[Sequence]


class Scheduler:
    """Not thread-safe: the engine calls it under its lock."""

    def __init__(
        self, config: SchedulerConfig, cached_tokens: Callable[[Sequence], int] = lambda _: 0
    ) -> None:
        self.config = config
        self.cached_tokens = cached_tokens  # prompt tokens a prefix cache spares a sequence
        self.waiting: collections.deque[Sequence] = collections.deque()
        self.running: list[Sequence] = []

    def add(self, seq: Sequence) -> None:
        if len(self.waiting) >= self.config.max_queue:
            raise QueueFull(
                f"{len(self.waiting)} requests waiting (max_queue {self.config.max_queue})"
            )
        self.waiting.append(seq)

    def plan(self, now: float | None = None) -> StepPlan:
        now = time.monotonic() if now is None else now
        cfg = self.config
        limit = now - cfg.max_queue_wait_s
        expired = [s for s in self.waiting if s.arrival <= limit]
        if expired:
            self.waiting = collections.deque(s for s in self.waiting if s.arrival > limit)
        budget = cfg.max_num_batched_tokens - len(self.running)
        slots = cfg.max_num_seqs - len(self.running)
        admit: list[Sequence] = []
        while self.waiting and slots > 0:
            head = self.waiting[0]
            need = len(head.prompt_ids) - self.cached_tokens(head)  # what this step computes
            if need > budget and (admit or len(self.running) > 0):
                break
            seq = self.waiting.popleft()
            admit.append(seq)
            budget -= need
            slots -= 1
        return StepPlan(admit=admit, expired=expired)
