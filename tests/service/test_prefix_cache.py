"""Prefix caching: a repeated prompt runs no prefill and decodes exactly as a fresh one, the hit
and query counts are vLLM's (tokens), and the cache stays within its bytes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from reference_service.config import ServiceSettings
from reference_service.engine import Engine
from reference_service.prefix_cache import PrefixCache, PrefixKV
from reference_service.sampling import SamplingParams
from reference_service.sequence import GenResult, Sequence

pytestmark = pytest.mark.timeout(120)
PROMPT = "The reference service answers this prompt"


@pytest.fixture(scope="module")
def loaded(tiny_model_dir: Path) -> Any:
    from reference_service.loader import load_model

    return load_model(ServiceSettings(model_dir=tiny_model_dir, torch_threads=1), {})


class Recorder:
    def __init__(self) -> None:
        self.step_tokens: list[int] = []
        self.queried = self.hits = 0

    def on_queue(self, waiting: int, running: int) -> None:
        pass

    def on_step(self, sequences: int, tokens: int, kv_bytes: int) -> None:
        self.step_tokens.append(tokens)

    def on_prefix_cache(self, queried_tokens: int, hit_tokens: int) -> None:
        self.queried += queried_tokens
        self.hits += hit_tokens

    def on_done(self, result: GenResult) -> None:
        pass


def engine(loaded: Any, cache_bytes: int) -> tuple[Engine, Recorder]:
    rec = Recorder()
    eng = Engine(
        loaded.model,
        loaded.tokenizer,
        loaded.device,
        max_num_seqs=8,
        max_num_batched_tokens=512,
        max_queue=16,
        prefix_cache_bytes=cache_bytes,
        observer=rec,
    )
    return eng, rec


def seq(loaded: Any, prompt: str = PROMPT, n: int = 12) -> Sequence:
    tok = loaded.tokenizer
    ids = [tok.bos_token_id, *tok.encode(prompt, add_special_tokens=False)]
    return Sequence(ids, SamplingParams(max_tokens=n, ignore_eos=True))


def test_a_repeated_prompt_runs_no_prefill_and_decodes_the_same(loaded: Any) -> None:
    eng, rec = engine(loaded, 16 << 20)
    first = eng.generate([seq(loaded)])[0]
    n = first.prompt_tokens
    assert rec.step_tokens[0] == (n - 1) + 1, "a miss prefills all but the last prompt token"
    assert (rec.queried, rec.hits) == (n, 0)
    rec.step_tokens.clear()
    again = eng.generate([seq(loaded), seq(loaded)])
    assert rec.step_tokens[0] == 2, "a hit computes only the decode token"
    assert (rec.queried, rec.hits) == (3 * n, 2 * (n - 1))
    uncached, _ = engine(loaded, 0)
    fresh = uncached.generate([seq(loaded)])[0]
    assert [r.token_ids for r in again] == [first.token_ids] * 2 == [fresh.token_ids] * 2


def test_a_hit_joins_a_running_batch_beside_misses(loaded: Any) -> None:
    eng, rec = engine(loaded, 16 << 20)
    eng.generate([seq(loaded, "warm the cache")])
    prompts = ("warm the cache", "new", "")  # a hit, a miss, nothing to cache (BOS only)
    alone = [engine(loaded, 0)[0].generate([seq(loaded, p)])[0].token_ids for p in prompts]
    mixed = eng.generate([seq(loaded, p) for p in prompts])
    assert [r.token_ids for r in mixed] == alone
    assert rec.hits == len("warm the cache")  # BOS + 14 bytes, all but the last token


def kv(tokens: int) -> PrefixKV:
    t = torch.zeros((2, tokens, 4))  # 32 bytes per token per tensor
    return PrefixKV([t], [t.clone()], tokens)


def test_the_cache_evicts_least_recently_used_beyond_its_bytes() -> None:
    cache = PrefixCache(max_bytes=kv(10).nbytes() * 2)
    cache.store((1,), kv(10))
    cache.store((2,), kv(10))
    assert cache.lookup((1,)) is not None  # (2,) is now the least recently used
    cache.store((3,), kv(10))
    assert cache.lookup((2,)) is None and cache.lookup((1,)) is not None
    assert cache.nbytes <= cache.max_bytes and len(cache) == 2
    cache.store((4,), kv(30))  # larger than the whole cache: not stored, nothing evicted
    cache.store((), kv(0))  # nothing to reuse
    assert len(cache) == 2 and cache.lookup((4,)) is None
