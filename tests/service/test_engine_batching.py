"""The iteration-level engine in-process: outputs independent of batching, joins and leaves
between steps, aborts free slots, an idle engine frees the KV buffers, a failed step fails its
sequences, queue-time shedding."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reference_service.config import ServiceSettings
from reference_service.engine import Engine, EngineStopped
from reference_service.kv_batch import KVBatch
from reference_service.sampling import SamplingParams
from reference_service.scheduler import QueueTimeout
from reference_service.sequence import FinishReason, Sequence, StepOutput

pytestmark = pytest.mark.timeout(120)
PROMPTS = ["a", "The quick brown fox jumps", "x" * 40, "héllo", "", "12 34 56"]


@pytest.fixture(scope="module")
def loaded(tiny_model_dir: Path) -> Any:
    from reference_service.loader import load_model

    return load_model(ServiceSettings(model_dir=tiny_model_dir, torch_threads=1), {})


def make_engine(loaded: Any, **kw: Any) -> Engine:
    opts: dict[str, Any] = {"max_num_seqs": 8, "max_num_batched_tokens": 512, "max_queue": 16}
    return Engine(loaded.model, loaded.tokenizer, loaded.device, **{**opts, **kw})


@pytest.fixture
def engine(loaded: Any) -> Iterator[Engine]:
    eng = make_engine(loaded)
    eng.start()
    yield eng
    eng.stop()


def seq(loaded: Any, prompt: str, n: int = 12, sink: Any = None, **kw: Any) -> Sequence:
    tok = loaded.tokenizer
    ids = [tok.bos_token_id, *tok.encode(prompt, add_special_tokens=False)]
    return Sequence(ids, SamplingParams(max_tokens=n, **kw), sink=sink)


def test_greedy_outputs_are_the_same_alone_batched_and_joining_mid_batch(loaded: Any) -> None:
    eng = make_engine(loaded)
    alone = [eng.generate([seq(loaded, p)])[0].token_ids for p in PROMPTS]
    together = [r.token_ids for r in eng.generate([seq(loaded, p) for p in PROMPTS])]
    assert together == alone
    assert all(len(t) > 0 for t in alone)
    eng.start()
    try:
        staggered = []
        for p in PROMPTS:  # each joins a batch that is already decoding
            staggered.append(eng.submit(seq(loaded, p)))
            time.sleep(0.004)
        assert [s.future.result(30).token_ids for s in staggered] == alone
    finally:
        eng.stop()


def test_outputs_hold_through_slot_moves_and_relayouts(
    loaded: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows leave at different steps (a joiner takes the freed slot, or a row from the end
    moves into it), a prompt wider than the live columns joins and the slots run out (new
    buffers), rows outlive the spare columns (the live region shifts within the buffers):
    every greedy output is still what the request gets alone."""
    eng = make_engine(loaded, max_num_seqs=16, max_num_batched_tokens=4096)
    layouts: list[str] = []
    for name in ("_shift", "_relay", "_compact", "join"):
        original = getattr(KVBatch, name)

        def counted(self: KVBatch, *a: Any, _f: Any = original, _n: str = name) -> None:
            if None in self.owners:  # a slot is free: _compact moves rows, join fills it
                layouts.append(f"{_n} into a free slot")
            layouts.append(_n)
            _f(self, *a)

        monkeypatch.setattr(KVBatch, name, counted)
    plan = [  # (step it is submitted at, prompt, max_tokens)
        *((0, p, n) for p, n in zip(PROMPTS, (3, 20, 7, 45, 11, 2), strict=True)),
        (4, "y" * 90, 9),  # wider than anything live: relayout to the left
        (5, "z", 40),
        *((9 + i, PROMPTS[i % len(PROMPTS)] + str(i), 5 + 3 * i) for i in range(10)),
    ]
    alone = [eng.generate([seq(loaded, p, n, ignore_eos=True)])[0].token_ids for _, p, n in plan]
    layouts.clear()  # the mixed batch below must take both paths itself
    subs: list[Sequence] = []
    step = 0
    while len(subs) < len(plan) or not all(s.future.done() for s in subs):
        for at, p, n in plan[len(subs) :]:
            if at > step:
                break
            s = seq(loaded, p, n, ignore_eos=True)
            s.bind(loaded.tokenizer)
            eng.scheduler.waiting.append(s)
            subs.append(s)
        eng.step()
        step += 1
        assert step < 500
    assert [s.future.result().token_ids for s in subs] == alone
    assert eng.batch.rows == 0 and eng.batch.length == 0
    paths = {"_shift", "_relay", "_compact into a free slot", "join into a free slot"}
    assert paths <= set(layouts), set(layouts)


def test_an_emptied_batch_keeps_its_buffers_until_the_engine_is_idle(
    loaded: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows of the next batch reuse the buffers the last one left (stale KV in masked columns
    changes no output); the idle engine frees them."""
    eng = make_engine(loaded)
    first = [r.token_ids for r in eng.generate([seq(loaded, p) for p in PROMPTS])]
    held = eng.batch.nbytes()
    assert eng.batch.rows == 0 and held > 0
    relays: list[int] = []
    real = KVBatch._relay

    def counted(self: KVBatch, *a: Any) -> None:
        relays.append(1)
        real(self, *a)

    monkeypatch.setattr(KVBatch, "_relay", counted)
    again = [r.token_ids for r in eng.generate([seq(loaded, p) for p in reversed(PROMPTS)])]
    assert again == first[::-1] and relays == [] and eng.batch.nbytes() == held
    eng.start()
    try:
        deadline = time.monotonic() + 5
        while eng.batch.nbytes() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert eng.batch.nbytes() == 0, "an idle engine kept its KV buffers"
        assert eng.submit(seq(loaded, "after", 3)).future.result(30).completion_tokens >= 1
    finally:
        eng.stop()


def test_a_request_admitted_mid_batch_finishes_before_the_batch_ends(
    loaded: Any, engine: Engine
) -> None:
    long = engine.submit(seq(loaded, "long", 400, ignore_eos=True))
    deadline = time.monotonic() + 30
    while len(long.output_ids) < 10 and time.monotonic() < deadline:
        time.sleep(0.002)
    sent = time.monotonic()
    short = engine.submit(seq(loaded, "short", 3, ignore_eos=True))
    got = short.future.result(30)
    assert not long.finished, "the short request waited for the long one (static batching)"
    remaining = long.future.result(60).token_times[-1] - sent
    assert got.completion_tokens == 3
    assert got.ttft_s < remaining / 4, (got.ttft_s, remaining)


def test_streams_get_every_step_and_the_last_output_carries_the_finish(
    loaded: Any, engine: Engine
) -> None:
    outs: list[StepOutput] = []
    s = seq(loaded, "stream me", 8, sink=outs.append, ignore_eos=True)
    res = engine.submit(s).future.result(30)
    assert sum(len(o.token_ids) for o in outs) == 8 == res.completion_tokens
    assert [o.finish_reason for o in outs][:-1] == [None] * (len(outs) - 1)
    assert outs[-1].finish_reason == FinishReason.LENGTH
    assert "".join(o.text for o in outs) == res.text
    assert len(res.token_times) == 8 and res.ttft_s > 0


def test_abort_frees_the_slot_at_the_next_step(loaded: Any, engine: Engine) -> None:
    s = engine.submit(seq(loaded, "abandoned", 900, ignore_eos=True))
    deadline = time.monotonic() + 30
    while len(s.output_ids) < 5 and time.monotonic() < deadline:
        time.sleep(0.002)
    assert engine.running == 1
    engine.abort(s)
    with pytest.raises(EngineStopped):
        s.future.result(10)
    deadline = time.monotonic() + 5
    while engine.running and time.monotonic() < deadline:
        time.sleep(0.002)
    assert engine.running == 0 and engine.batch.rows == 0
    assert s.finish_reason == FinishReason.ABORT and len(s.output_ids) < 900
    while engine.batch.nbytes() and time.monotonic() < deadline + 5:
        time.sleep(0.01)
    assert engine.batch.nbytes() == 0, "the idle engine kept the aborted row's buffers"


def test_rows_leave_as_they_finish_and_the_cache_shrinks(loaded: Any) -> None:
    eng = make_engine(loaded)
    eng.scheduler.waiting.extend([seq(loaded, "x" * 60, 2, ignore_eos=True), seq(loaded, "y", 30)])
    for s in eng.scheduler.waiting:
        s.bind(loaded.tokenizer)
    eng.step()  # both join; the decode feeds their last prompt tokens: first tokens
    eng.step()  # second tokens: the 2-token one is done and leaves
    assert eng.batch.rows == 1 and eng.batch.length < 60, "the long prompt's columns stayed"


def test_a_failed_step_fails_its_sequences_and_the_engine_keeps_serving(
    loaded: Any, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = threading.Event()
    real = engine.batch.decode

    def broken() -> Any:
        calls.set()
        raise RuntimeError("injected decode failure")

    monkeypatch.setattr(engine.batch, "decode", broken)
    outs: list[StepOutput] = []
    s = seq(loaded, "doomed", 20, sink=outs.append)
    with pytest.raises(RuntimeError, match="injected"):
        engine.submit(s).future.result(30)
    assert outs[-1].finish_reason == FinishReason.ERROR and outs[-1].error is not None
    monkeypatch.setattr(engine.batch, "decode", real)
    assert engine.submit(seq(loaded, "after", 3)).future.result(30).completion_tokens >= 1


def test_what_could_not_start_in_time_is_shed(loaded: Any) -> None:
    eng = make_engine(loaded, max_queue_wait_s=0.3)
    eng.hang(1.0)  # the inference thread is busy: nothing starts for a second
    eng.start()
    try:
        stale = eng.submit(seq(loaded, "hello", 2))
        with pytest.raises(QueueTimeout, match="without starting"):
            stale.future.result(timeout=10)
        fresh = eng.submit(seq(loaded, "hello", 2))
        assert fresh.future.result(timeout=10).completion_tokens >= 1
    except concurrent.futures.TimeoutError:
        pytest.fail("the engine neither served nor shed the request")
    finally:
        eng.stop()


def test_stop_aborts_what_is_left(loaded: Any) -> None:
    eng = make_engine(loaded)
    eng.hang(5.0)
    eng.start()
    s = eng.submit(seq(loaded, "never", 4))
    eng.stop(timeout=0.1)
    with pytest.raises(EngineStopped):
        s.future.result(5)
