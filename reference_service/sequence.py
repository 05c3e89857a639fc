"""One request inside the engine: its prompt, sampling, generated tokens, timings and stream.

The engine thread appends tokens and calls `emit` once per step with what that step produced;
the API side reads the stream (streaming) or waits for `future` (the final `GenResult`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from reference_service.detokenizer import IncrementalDetokenizer
from reference_service.sampling import SamplingParams

_ids = itertools.count(1)


class FinishReason(StrEnum):
    """vLLM's `finished_reason` label values this engine can produce."""

    STOP = "stop"
    LENGTH = "length"
    ABORT = "abort"
    ERROR = "error"


@dataclass(frozen=True)
class StepOutput:
    """What one engine step produced for one sequence (a stream chunk's worth)."""

    token_ids: list[int]
    text: str
    finish_reason: FinishReason | None = None
    error: BaseException | None = None  # set with ABORT / ERROR: why it ended early


@dataclass
class GenResult:
    text: str
    token_ids: list[int]
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    queue_s: float
    ttft_s: float
    e2e_s: float
    prefill_s: float = 0.0
    decode_s: float = 0.0
    max_tokens: int = 0
    token_times: list[float] = field(default_factory=list)  # monotonic, one per output token

    @property
    def inter_token_s(self) -> list[float]:
        t = self.token_times
        return [b - a for a, b in itertools.pairwise(t)]


OutputSink = Callable[[StepOutput], None]


class AsyncSink:
    """A sequence's outputs delivered into an asyncio queue on `loop` (the HTTP side).

    Called alone it hops threads per output; the engine instead delivers a whole step's outputs
    for one loop with a single `deliver` call (one wake-up per step, not one per sequence)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[StepOutput] = asyncio.Queue()

    def __call__(self, out: StepOutput) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, out)


def deliver(outputs: list[tuple[OutputSink, StepOutput]]) -> None:
    """Hand one step's outputs to their sinks: plain callables directly, AsyncSinks grouped
    into one thread hop per event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[AsyncSink, StepOutput]]] = {}
    for sink, out in outputs:
        if isinstance(sink, AsyncSink):
            by_loop.setdefault(sink.loop, []).append((sink, out))
        else:
            sink(out)
    for loop, items in by_loop.items():
        loop.call_soon_threadsafe(_put_all, items)


def _put_all(items: list[tuple[AsyncSink, StepOutput]]) -> None:
    for sink, out in items:
        sink.queue.put_nowait(out)


@dataclass(eq=False)
class Sequence:
    prompt_ids: list[int]
    params: SamplingParams
    tokenizer: Any = None
    sink: OutputSink | None = None  # called from the engine thread, once per step with output
    arrival: float = field(default_factory=time.monotonic)
    seq_id: int = field(default_factory=lambda: next(_ids))
    future: concurrent.futures.Future[GenResult] = field(default_factory=concurrent.futures.Future)
    output_ids: list[int] = field(default_factory=list)
    token_times: list[float] = field(default_factory=list)
    scheduled_at: float | None = None
    finish_reason: FinishReason | None = None
    abort_requested: BaseException | None = None
    generator: Any = None
    detok: IncrementalDetokenizer | None = None

    def __post_init__(self) -> None:
        if self.tokenizer is not None:
            self.bind(self.tokenizer)

    def bind(self, tokenizer: Any) -> None:
        """Attach the engine's tokenizer; streams and stop strings need incremental text."""
        self.tokenizer = tokenizer
        if self.detok is None and (self.sink is not None or self.params.stop):
            self.detok = IncrementalDetokenizer(tokenizer, self.params.stop)

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def eos_blocked(self) -> bool:
        return self.params.ignore_eos or len(self.output_ids) < self.params.min_tokens

    def append(self, token: int, eos_id: int, now: float) -> tuple[list[int], str]:
        """Record one sampled token and decide whether the sequence is done; return the token
        ids and text it adds to the output (EOS adds none; a finished stream gets the text it
        held back)."""
        if token == eos_id and not self.eos_blocked():
            self.finish_reason = FinishReason.STOP
            return [], self.detok.flush() if self.detok is not None else ""
        self.output_ids.append(token)
        self.token_times.append(now)
        text = self.detok.push(token) if self.detok is not None else ""
        if self.detok is not None and self.detok.stopped:
            self.finish_reason = FinishReason.STOP
        elif len(self.output_ids) >= self.params.max_tokens:
            self.finish_reason = FinishReason.LENGTH
            text += self.detok.flush() if self.detok is not None else ""
        return [token], text

    def result(self, now: float) -> GenResult:
        if self.detok is not None:
            text = self.detok.text
        else:
            text = str(self.tokenizer.decode(self.output_ids, skip_special_tokens=True))
        first = self.token_times[0] if self.token_times else now
        scheduled = self.scheduled_at if self.scheduled_at is not None else now
        return GenResult(
            text=text,
            token_ids=list(self.output_ids),
            finish_reason=str(self.finish_reason or FinishReason.LENGTH),
            prompt_tokens=len(self.prompt_ids),
            completion_tokens=len(self.output_ids),
            queue_s=max(0.0, scheduled - self.arrival),
            ttft_s=first - self.arrival,
            e2e_s=now - self.arrival,
            prefill_s=max(0.0, first - scheduled),
            decode_s=max(0.0, now - first),
            max_tokens=self.params.max_tokens,
            token_times=list(self.token_times),
        )

    def output(self, tokens: list[int], text: str) -> StepOutput | None:
        """This step's output for the stream, if there is a stream and something to say."""
        if self.sink is not None and (tokens or text or self.finished):
            return StepOutput(tokens, text, self.finish_reason)
        return None

    def fail(self, reason: FinishReason, error: BaseException) -> None:
        """End early (abort, error): the stream gets the error, the future raises it."""
        self.finish_reason = reason
        if self.sink is not None:
            self.sink(StepOutput([], "", reason, error))
        if not self.future.done():
            self.future.set_exception(error)
