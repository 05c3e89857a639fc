"""Incremental detokenization: deltas never split a character nor leak a stop string."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reference_service.detokenizer import IncrementalDetokenizer


@pytest.fixture(scope="module")
def tok(tiny_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model_dir))


def stream(tok: Any, text: str, stop: list[str]) -> tuple[list[str], IncrementalDetokenizer]:
    d = IncrementalDetokenizer(tok, stop)
    deltas = []
    for t in tok.encode(text, add_special_tokens=False):
        deltas.append(d.push(t))
        if d.stopped:
            break
    if not d.stopped:
        deltas.append(d.flush())
    return deltas, d


def test_multibyte_characters_arrive_whole(tok: Any) -> None:
    deltas, _ = stream(tok, "añ☃b", [])
    assert "".join(deltas) == "añ☃b"
    assert all("\ufffd" not in x for x in deltas)
    assert "☃" in deltas  # three byte tokens, one delta


def test_stop_string_across_tokens_is_cut_and_never_shown(tok: Any) -> None:
    deltas, d = stream(tok, "hello STOP world", ["STOP"])
    assert d.stopped and d.text == "hello "
    assert "".join(deltas) == "hello "
    assert not any("S" in x for x in deltas)


def test_a_partial_stop_match_is_released_when_it_does_not_complete(tok: Any) -> None:
    deltas, d = stream(tok, "STAR", ["STOP"])
    assert not d.stopped and "".join(deltas) == "STAR"
