"""One inference thread with dynamic batching behind a bounded queue.

Requests wait in a FIFO of at most `max_queue` entries; one that has waited `max_queue_wait_s`
when a batch forms is shed (QueueTimeout), since it could no longer finish in time for its
client, and waiting longer only delays those behind it. The thread takes the first waiting
request, waits up to `max_wait_ms` for more (never beyond `max_batch_size`), then runs the
batch: one left-padded prefill (attention mask + explicit position ids, so every row sees
exactly the positions it would see alone) and a KV-cached decode loop. Greedy outputs are
therefore the same batched or alone. The thread beats a heartbeat at every loop turn and
decode step; liveness reads its age and never waits on inference.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger("reference_service.engine")


class QueueFull(Exception):
    """The waiting queue is at `max_queue`: the caller should answer 429."""


class EngineStopped(Exception):
    """The engine is draining or stopped: the caller should answer 503."""


class QueueTimeout(Exception):
    """The request waited `max_queue_wait_s` without starting: the caller should answer 429."""


SAMPLING_EPS = 1e-5  # temperatures below this sample greedily (as vLLM does)


@dataclass
class GenRequest:
    prompt_ids: list[int]
    max_tokens: int
    temperature: float = 0.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    enqueued: float = field(default_factory=time.monotonic)
    future: concurrent.futures.Future[GenResult] = field(default_factory=concurrent.futures.Future)


@dataclass
class GenResult:
    text: str
    token_ids: list[int]
    finish_reason: str  # "stop" | "length"
    prompt_tokens: int
    completion_tokens: int
    queue_s: float
    ttft_s: float
    e2e_s: float
    batch_size: int


class EngineObserver(Protocol):
    def on_queue(self, waiting: int, running: int) -> None: ...
    def on_batch(self, size: int) -> None: ...
    def on_done(self, result: GenResult) -> None: ...


class Engine:
    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        device: str,
        *,
        max_batch_size: int,
        max_wait_ms: float,
        max_queue: int,
        max_queue_wait_s: float = 5.0,
        observer: EngineObserver | None = None,
    ) -> None:
        import torch

        self.torch = torch
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.max_queue_wait_s = max_queue_wait_s
        self.observer = observer
        self.pad_id = int(tokenizer.pad_token_id)
        self.eos_id = int(tokenizer.eos_token_id)
        self._waiting: collections.deque[GenRequest] = collections.deque()
        self._running = 0
        self._cond = threading.Condition()
        self._stop = False
        self._hang_until = 0.0
        self._heartbeat = time.monotonic()
        self._thread: threading.Thread | None = None
        self.batches_run = 0

    # ---- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="inference", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self.abort_waiting("engine stopped")
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ---- state read by probes and admission (never blocks on inference) ------------------
    def heartbeat_age(self) -> float:
        return time.monotonic() - self._heartbeat

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def running(self) -> int:
        return self._running

    def idle(self) -> bool:
        return not self._waiting and self._running == 0

    # ---- submission ------------------------------------------------------------------
    def submit(self, req: GenRequest) -> concurrent.futures.Future[GenResult]:
        with self._cond:
            if self._stop:
                raise EngineStopped("engine stopped")
            if len(self._waiting) >= self.max_queue:
                raise QueueFull(
                    f"{len(self._waiting)} requests waiting (max_queue {self.max_queue})"
                )
            self._waiting.append(req)
            self._cond.notify()
        self._report_queue()
        return req.future

    def abort_waiting(self, reason: str) -> int:
        """Fail every waiting (not yet running) request with EngineStopped."""
        with self._cond:
            dropped = list(self._waiting)
            self._waiting.clear()
        for req in dropped:
            if not req.future.done():
                req.future.set_exception(EngineStopped(reason))
        self._report_queue()
        return len(dropped)

    def hang(self, seconds: float) -> None:
        """Chaos hook: stall the inference thread (no heartbeats, no progress) for `seconds`."""
        self._hang_until = time.monotonic() + seconds

    # ---- the inference thread ---------------------------------------------------------
    def _beat(self) -> None:
        while time.monotonic() < self._hang_until and not self._stop:
            time.sleep(0.05)
        self._heartbeat = time.monotonic()

    def _loop(self) -> None:
        while True:
            self._beat()
            with self._cond:
                if self._stop:
                    return
                expired = self._take_expired()
                if not self._waiting:
                    if not expired:
                        self._cond.wait(timeout=0.2)
                    self._shed(expired)
                    continue
                deadline = self._waiting[0].enqueued + self.max_wait_s
                while (
                    len(self._waiting) < self.max_batch_size
                    and not self._stop
                    and (remaining := deadline - time.monotonic()) > 0
                ):
                    self._cond.wait(timeout=remaining)
                n = min(self.max_batch_size, len(self._waiting))
                batch = [self._waiting.popleft() for _ in range(n)]
                self._running = len(batch)
            self._shed(expired)
            self._report_queue()
            try:
                results = self.generate_batch(batch)
                for req, res in zip(batch, results, strict=True):
                    if not req.future.done():
                        req.future.set_result(res)
                    if self.observer is not None:
                        self.observer.on_done(res)
            except BaseException as err:  # a failed batch must not kill the loop
                log.exception("batch of %d failed", len(batch))
                for req in batch:
                    if not req.future.done():
                        req.future.set_exception(err)
            finally:
                self._running = 0
                self.batches_run += 1
                self._report_queue()

    def _take_expired(self) -> list[GenRequest]:
        """Pop the waiting requests older than max_queue_wait_s (caller holds the lock)."""
        limit = time.monotonic() - self.max_queue_wait_s
        if not self._waiting or self._waiting[0].enqueued > limit:
            return []
        keep = [r for r in self._waiting if r.enqueued > limit]
        expired = [r for r in self._waiting if r.enqueued <= limit]
        self._waiting = collections.deque(keep)
        return expired

    def _shed(self, expired: list[GenRequest]) -> None:
        for req in expired:
            if not req.future.done():
                req.future.set_exception(
                    QueueTimeout(
                        f"waited {time.monotonic() - req.enqueued:.1f}s without starting "
                        f"(max_queue_wait_s {self.max_queue_wait_s:g})"
                    )
                )
        if expired:
            self._report_queue()

    def _report_queue(self) -> None:
        if self.observer is not None:
            self.observer.on_queue(len(self._waiting), self._running)

    # ---- batched generation -------------------------------------------------------------
    def generate_batch(self, reqs: list[GenRequest]) -> list[GenResult]:
        """Generate for all `reqs` together; each row behaves as if it ran alone."""
        torch = self.torch
        started = time.monotonic()
        if self.observer is not None:
            self.observer.on_batch(len(reqs))
        bsz = len(reqs)
        width = max(len(r.prompt_ids) for r in reqs)
        ids = torch.full((bsz, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((bsz, width), dtype=torch.long)
        for i, r in enumerate(reqs):
            n = len(r.prompt_ids)
            ids[i, width - n :] = torch.tensor(r.prompt_ids, dtype=torch.long)
            mask[i, width - n :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        gens = [self._generator(r) for r in reqs]
        out_ids: list[list[int]] = [[] for _ in reqs]
        finish: list[str | None] = [None] * bsz
        texts: list[str] = [""] * bsz
        first_token_at = started
        max_new = max(r.max_tokens for r in reqs)
        with torch.inference_mode():
            out = self.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                use_cache=True,
                logits_to_keep=1,
            )
            for step in range(max_new):
                logits = out.logits[:, -1, :].float()
                next_ids = self._pick(logits, reqs, gens)
                if step == 0:
                    first_token_at = time.monotonic()
                for i, r in enumerate(reqs):
                    if finish[i] is not None:
                        continue
                    tok = int(next_ids[i])
                    if tok == self.eos_id:
                        finish[i] = "stop"
                        continue
                    out_ids[i].append(tok)
                    if r.stop:
                        text = self.tokenizer.decode(out_ids[i], skip_special_tokens=True)
                        cut = _first_stop(text, r.stop)
                        if cut is not None:
                            texts[i] = text[:cut]
                            finish[i] = "stop"
                            continue
                    if len(out_ids[i]) >= r.max_tokens:
                        finish[i] = "length"
                self._beat()
                if all(f is not None for f in finish):
                    break
                mask = torch.cat([mask, mask.new_ones((bsz, 1))], dim=1)
                positions = positions[:, -1:] + 1
                out = self.model(
                    input_ids=next_ids.view(bsz, 1).to(self.device),
                    attention_mask=mask,
                    position_ids=positions,
                    cache=out.cache,
                    use_cache=True,
                )
        done_at = time.monotonic()
        results = []
        for i, r in enumerate(reqs):
            text = texts[i] if finish[i] == "stop" and r.stop and texts[i] else None
            if text is None:
                text = self.tokenizer.decode(out_ids[i], skip_special_tokens=True)
                cut = _first_stop(text, r.stop) if r.stop else None
                text = text if cut is None else text[:cut]
            results.append(
                GenResult(
                    text=text,
                    token_ids=out_ids[i],
                    finish_reason=finish[i] or "length",
                    prompt_tokens=len(r.prompt_ids),
                    completion_tokens=len(out_ids[i]),
                    queue_s=started - r.enqueued,
                    ttft_s=first_token_at - r.enqueued,
                    e2e_s=done_at - r.enqueued,
                    batch_size=bsz,
                )
            )
        return results

    def _generator(self, r: GenRequest) -> Any:
        # Below SAMPLING_EPS sampling is greedy: logits / 1e-309 overflow to inf and softmax gives
        # NaN (a 500 found by the schema test), and the distribution is one-hot anyway.
        if r.temperature < SAMPLING_EPS:
            return None
        seed = r.seed if r.seed is not None else random.getrandbits(63)
        return self.torch.Generator(device="cpu").manual_seed(seed)

    def _pick(self, logits: Any, reqs: list[GenRequest], gens: list[Any]) -> Any:
        torch = self.torch
        greedy = logits.argmax(dim=-1).cpu()
        if all(g is None for g in gens):
            return greedy
        chosen = greedy.clone()
        for i, (r, g) in enumerate(zip(reqs, gens, strict=True)):
            if g is None:
                continue
            probs = torch.softmax(logits[i].cpu() / r.temperature, dim=-1)
            chosen[i] = torch.multinomial(probs, 1, generator=g)[0]
        return chosen


def _first_stop(text: str, stops: list[str]) -> int | None:
    hits = [text.find(s) for s in stops if s]
    hits = [h for h in hits if h >= 0]
    return min(hits) if hits else None
