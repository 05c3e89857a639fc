"""Wire-format pieces without a server: chunk rendering and the coalescing of lagging outputs."""

from __future__ import annotations

import asyncio
import json

import pytest

from reference_service.app import coalesce
from reference_service.protocol import ChunkWriter
from reference_service.sequence import FinishReason, StepOutput


@pytest.mark.parametrize("chat", [False, True])
@pytest.mark.parametrize(("text", "finish"), [('a"b\\c\n', None), ("", "length"), ("é", "stop")])
def test_prerendered_chunks_equal_the_built_ones(chat: bool, text: str, finish: str | None) -> None:
    w = ChunkWriter(chat, 'model "x"')
    assert json.loads(w.delta_json(text, finish)) == w.delta(text, finish, None)


def test_outputs_queued_behind_a_slow_client_go_out_as_one_chunk() -> None:
    q: asyncio.Queue[StepOutput] = asyncio.Queue()
    for tok, text in ((2, "b"), (3, "c")):
        q.put_nowait(StepOutput([tok], text))
    q.put_nowait(StepOutput([4], "d", FinishReason.LENGTH))
    q.put_nowait(StepOutput([5], "never"))  # nothing after the finish is merged
    out = coalesce(StepOutput([1], "a"), q)
    assert (out.token_ids, out.text, out.finish_reason) == ([1, 2, 3, 4], "abcd", "length")
    assert q.qsize() == 1


def test_an_error_keeps_the_text_generated_before_it() -> None:
    q: asyncio.Queue[StepOutput] = asyncio.Queue()
    err = RuntimeError("boom")
    q.put_nowait(StepOutput([], "", FinishReason.ERROR, err))
    out = coalesce(StepOutput([1], "a"), q)
    assert out.text == "a" and out.error is err and out.finish_reason == FinishReason.ERROR
