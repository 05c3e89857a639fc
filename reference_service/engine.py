"""One inference thread with iteration-level (continuous) batching behind a bounded queue.

Each step: drop what was aborted (a client that went away frees its slot and KV rows at once),
shed what waited longer than `max_queue_wait_s`, prefill the arrivals the scheduler admits
(within the step's token budget) and merge them into the running batch, run one decode forward
over every running sequence, hand each sequence its new tokens (streams get them at once), and
drop the finished ones (an emptied batch keeps its KV buffers until the loop has waited
`IDLE_WAIT_S` with nothing to do). A request that arrives mid-batch therefore gets its first
token at the next step, not when the batch ends. The thread beats a heartbeat every step;
liveness reads its age and never waits on inference.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from reference_service.kv_batch import KVBatch
from reference_service.prefix_cache import PrefixCache, PrefixKV
from reference_service.sampling import block_eos, pick_tokens
from reference_service.scheduler import (
    EngineStopped,
    QueueFull,
    QueueTimeout,
    Scheduler,
    SchedulerConfig,
)
from reference_service.sequence import (
    FinishReason,
    GenResult,
    OutputSink,
    Sequence,
    StepOutput,
    deliver,
)

log = logging.getLogger("reference_service.engine")
IDLE_WAIT_S = 0.2  # an idle loop beats this often; a wait this long with nothing frees the KV

__all__ = [
    "Engine",
    "EngineStopped",
    "GenResult",
    "QueueFull",
    "QueueTimeout",
    "Sequence",
    "build_engine",
    "warm_up",
]


class EngineObserver(Protocol):
    def on_queue(self, waiting: int, running: int) -> None: ...
    def on_step(self, sequences: int, tokens: int, kv_bytes: int) -> None: ...
    def on_prefix_cache(self, queried_tokens: int, hit_tokens: int) -> None: ...
    def on_done(self, result: GenResult) -> None: ...


class Engine:
    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        device: str,
        *,
        max_num_seqs: int,
        max_num_batched_tokens: int,
        max_queue: int,
        max_queue_wait_s: float = 5.0,
        prefix_cache_bytes: int = 0,
        observer: EngineObserver | None = None,
    ) -> None:
        import torch

        self.torch = torch
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.observer = observer
        self.eos_id = int(tokenizer.eos_token_id)
        self.scheduler = Scheduler(
            SchedulerConfig(
                max_num_seqs=max_num_seqs,
                max_num_batched_tokens=max_num_batched_tokens,
                max_queue=max_queue,
                max_queue_wait_s=max_queue_wait_s,
            ),
            cached_tokens=self._cached_tokens,
        )
        self.batch = KVBatch(torch, model, device, int(tokenizer.pad_token_id))
        self.prefix_cache = PrefixCache(prefix_cache_bytes) if prefix_cache_bytes > 0 else None
        self._cond = threading.Condition()
        self._stop = False
        self._hang_until = 0.0
        self._slow_step_s = 0.0
        self._slow_until = 0.0
        self._heartbeat = time.monotonic()
        self._thread: threading.Thread | None = None
        self.on_iteration: Callable[[], None] | None = None  # after every loop turn (beat)

    # ---- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="inference", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        self.abort_all("engine stopped")

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ---- state read by probes and admission (never blocks on inference) ------------------
    @property
    def last_beat(self) -> float:
        """Monotonic time of the loop's latest beat."""
        return self._heartbeat

    def heartbeat_age(self) -> float:
        return time.monotonic() - self._heartbeat

    @property
    def waiting(self) -> int:
        return len(self.scheduler.waiting)

    @property
    def running(self) -> int:
        return len(self.scheduler.running)

    def idle(self) -> bool:
        return not self.scheduler.waiting and not self.scheduler.running

    # ---- submission and cancellation -----------------------------------------------------
    def submit(self, seq: Sequence) -> Sequence:
        if seq.tokenizer is None:
            seq.bind(self.tokenizer)
        with self._cond:
            if self._stop:
                raise EngineStopped("engine stopped")
            self.scheduler.add(seq)
            self._cond.notify()
        self._report_queue()
        return seq

    def abort(self, seq: Sequence, error: BaseException | None = None) -> None:
        """Stop `seq` at the next step (its client went away, or the drain ran out)."""
        with self._cond:
            if seq.abort_requested is None and not seq.finished:
                seq.abort_requested = error or EngineStopped("request aborted")
                self._cond.notify()

    def abort_all(self, reason: str) -> int:
        """Fail every waiting and running sequence with EngineStopped(reason)."""
        with self._cond:
            seqs = [*self.scheduler.waiting, *self.scheduler.running]
            for seq in seqs:
                if seq.abort_requested is None:
                    seq.abort_requested = EngineStopped(reason)
            self._cond.notify()
        if not self.alive:  # nobody will run the next step: finish them here
            self._reap_aborted()
        return len(seqs)

    def hang(self, seconds: float) -> None:
        """Chaos hook: stall the inference thread (no heartbeats, no progress) for `seconds`."""
        self._hang_until = time.monotonic() + seconds

    def slow_down(self, step_s: float, seconds: float) -> None:
        """Chaos hook: make every step take at least `step_s` for `seconds` (a degraded or
        shared accelerator); the loop keeps beating, so liveness stays up."""
        self._slow_step_s = step_s
        self._slow_until = time.monotonic() + seconds

    # ---- synchronous use (warm-up, the no-HTTP bound, tests) ------------------------------
    def generate(self, seqs: list[Sequence]) -> list[GenResult]:
        """Run `seqs` to completion in the calling thread (only before `start()`)."""
        if self.alive:
            raise RuntimeError("generate() is for an engine whose thread is not running")
        for seq in seqs:
            if seq.tokenizer is None:
                seq.bind(self.tokenizer)
            self.scheduler.waiting.append(seq)
        while not all(s.future.done() for s in seqs):
            self.step()
        return [s.future.result() for s in seqs]

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
                idle = self.idle()
                quiet = idle and not self._cond.wait(timeout=IDLE_WAIT_S) and self.idle()
            if quiet and self.batch.nbytes():
                self._release_kv()
            if not idle:
                self._run_step()
            if self.on_iteration is not None:
                self.on_iteration()

    def _release_kv(self) -> None:
        """Free the empty batch's KV buffers after a quiet wait (an empty batch keeps them for
        the next arrivals)."""
        self.batch.release()
        if self.observer is not None:
            self.observer.on_step(0, 0, self.batch.nbytes())

    def _run_step(self) -> None:
        began = time.monotonic()
        try:
            self.step()
        except BaseException as err:  # a failed step must not kill the loop
            log.exception("engine step failed")
            self._fail_running(err)
        if began < self._slow_until:
            time.sleep(max(0.0, began + self._slow_step_s - time.monotonic()))

    def step(self) -> None:
        self._reap_aborted()
        with self._cond:
            plan = self.scheduler.plan()
            self.scheduler.running.extend(plan.admit)
        for seq in plan.expired:
            seq.fail(
                FinishReason.ABORT,
                QueueTimeout(
                    f"waited {time.monotonic() - seq.arrival:.1f}s without starting "
                    f"(max_queue_wait_s {self.scheduler.config.max_queue_wait_s:g})"
                ),
            )
        prefilled = 0
        with self.torch.inference_mode():
            if plan.admit:
                prefilled = self._prefill(plan.admit)
            decoded = self.batch.rows
            if decoded:
                logits = self.batch.decode()
                rows = list(self.batch.owners)  # the sequence of each logits row
                self._append(rows, self._pick(logits, rows))
        if self.observer is not None:
            self.observer.on_step(
                len(self.scheduler.running), decoded + prefilled, self.batch.nbytes()
            )
        self._report_queue()

    def _prefill(self, seqs: list[Sequence]) -> int:
        """Give each new sequence the KV cache of its prompt but the last token (from the
        prefix cache, or prefilled: one forward for all misses, once per distinct prompt) and
        add it to the batch; this step's decode feeds the last prompt token and samples the
        first output token. Returns the prompt tokens computed."""
        now = time.monotonic()
        found: dict[tuple[int, ...], PrefixKV] = {}
        misses: list[tuple[int, ...]] = []
        for seq in seqs:
            seq.scheduled_at = now
            seq.generator = seq.params.generator(self.torch)
            key = tuple(seq.prompt_ids[:-1])
            if key in found or key in misses:
                continue
            if not key:  # a one-token prompt: nothing to cache or compute
                found[key] = self.batch.empty_prefix()
                continue
            kv = self.prefix_cache.lookup(key) if self.prefix_cache is not None else None
            if kv is None:
                misses.append(key)
            else:
                found[key] = kv
        if misses:
            for key, kv in zip(misses, self.batch.prefill([list(k) for k in misses]), strict=True):
                found[key] = kv
                if self.prefix_cache is not None:
                    self.prefix_cache.store(key, kv)
        self.batch.join(
            [found[tuple(s.prompt_ids[:-1])] for s in seqs], [s.prompt_ids[-1] for s in seqs], seqs
        )
        computed = sum(len(key) for key in misses)
        if self.observer is not None and self.prefix_cache is not None:
            queried = sum(len(s.prompt_ids) for s in seqs)
            self.observer.on_prefix_cache(queried, queried - computed - len(seqs))
        return computed

    def _pick(self, logits: Any, seqs: list[Sequence]) -> list[int]:
        block_eos(logits, [i for i, s in enumerate(seqs) if s.eos_blocked()], self.eos_id)
        return pick_tokens(
            self.torch, logits, [s.params for s in seqs], [s.generator for s in seqs]
        )

    def _append(self, rows: list[Sequence], tokens: list[int]) -> None:
        """Give each batch row's sequence (`rows`, in row order) its token, stream it, and drop
        the rows that finished."""
        now = time.monotonic()
        outputs: list[tuple[OutputSink, StepOutput]] = []
        for i, (seq, tok) in enumerate(zip(rows, tokens, strict=True)):
            new_ids, text = seq.append(tok, self.eos_id, now)
            self.batch.last_tokens[i] = tok
            out = seq.output(new_ids, text)
            if out is not None and seq.sink is not None:
                outputs.append((seq.sink, out))
        deliver(outputs)  # every stream gets this step's tokens now
        done = [s for s in rows if s.finished]
        if not done:
            return
        self.batch.leave(done)
        with self._cond:
            self.scheduler.running = [s for s in self.scheduler.running if not s.finished]
        for seq in done:
            res = seq.result(now)
            if not seq.future.done():
                seq.future.set_result(res)
            if self.observer is not None:
                self.observer.on_done(res)

    def _reap_aborted(self) -> None:
        """Drop aborted sequences from the queue and the batch (their KV rows go at once)."""
        with self._cond:
            sched = self.scheduler
            gone = [s for s in [*sched.waiting, *sched.running] if s.abort_requested is not None]
            if not gone:
                return
            sched.waiting = type(sched.waiting)(
                s for s in sched.waiting if s.abort_requested is None
            )
            self.batch.leave([s for s in sched.running if s.abort_requested is not None])
            sched.running = [s for s in sched.running if s.abort_requested is None]
        now = time.monotonic()
        for seq in gone:
            assert seq.abort_requested is not None
            seq.fail(FinishReason.ABORT, seq.abort_requested)
            if self.observer is not None:
                self.observer.on_done(seq.result(now))
        self._report_queue()

    def _fail_running(self, err: BaseException) -> None:
        with self._cond:
            failed = list(self.scheduler.running)
            self.scheduler.running = []
        self.batch.leave([s for s in failed if s in self.batch])
        for seq in failed:
            seq.fail(FinishReason.ERROR, err)
            if self.observer is not None:
                self.observer.on_done(seq.result(time.monotonic()))
        self._report_queue()

    def _cached_tokens(self, seq: Sequence) -> int:
        """Prompt tokens the prefix cache holds for `seq` (the scheduler charges the rest)."""
        cache = self.prefix_cache
        return len(seq.prompt_ids) - 1 if cache and cache.lookup(tuple(seq.prompt_ids[:-1])) else 0

    def _report_queue(self) -> None:
        if self.observer is not None:
            self.observer.on_queue(self.waiting, self.running)


def build_engine(settings: Any, loaded: Any) -> Engine:
    """The service's engine for `loaded` (a `LoadedModel`) with `settings`' budgets."""
    s = settings
    return Engine(
        loaded.model,
        loaded.tokenizer,
        loaded.device,
        max_num_seqs=s.max_num_seqs,
        max_num_batched_tokens=s.max_num_batched_tokens,
        max_queue=s.max_queue,
        max_queue_wait_s=s.max_queue_wait_s,
        prefix_cache_bytes=s.prefix_cache_bytes if s.enable_prefix_caching else 0,
    )


def warm_up(engine: Engine, tokenizer: Any, max_num_seqs: int) -> float:
    """First forwards at batch 1 and 2 (lazy init, first shapes) before any traffic; returns
    the seconds it took (the `warmup` phase)."""
    from reference_service.sampling import SamplingParams

    t0 = time.perf_counter()
    ids = [tokenizer.bos_token_id, *tokenizer.encode("warm up", add_special_tokens=False)]
    for size in sorted({1, min(2, max_num_seqs)}):
        engine.generate([Sequence(ids, SamplingParams(max_tokens=2)) for _ in range(size)])
    return time.perf_counter() - t0
