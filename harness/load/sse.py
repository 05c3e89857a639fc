"""Reading an OpenAI-style SSE stream as it arrives, timing every chunk (no gevent here).

Conventions, as vLLM's `bench serve` has them: a chunk counts when its `choices` list is not
empty (the chat role chunk included: vLLM sends it with the first token), TTFT is the first such
chunk, and inter-chunk gaps are between such chunks. The usage chunk (`choices: []`) gives the
output token count; `data: [DONE]` ends a complete stream; a payload with `error` is an error
after the first byte.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class StreamTiming:
    first: float | None = None
    last: float | None = None
    chunks: int = 0
    tokens: int = -1  # usage.completion_tokens; -1 = the server sent no usage
    done: bool = False
    error: str | None = None
    gaps: list[float] = field(default_factory=list)  # between consecutive content chunks
    finish_reason: str | None = None  # the last non-null finish_reason of a choice


def read_stream(readline: Callable[[], bytes], now: Callable[[], float]) -> StreamTiming:
    """Consume lines from `readline` (b"" at the end) until `[DONE]`, an error or EOF."""
    out = StreamTiming()
    while True:
        line = readline()
        if not line:
            return out
        if not line.startswith(b"data:"):
            continue  # blank separators, `:` comments, `event:` lines
        data = line[5:].strip()
        if data == b"[DONE]":
            out.done = True
            return out
        t = now()
        try:
            chunk = json.loads(data)
        except ValueError:
            out.error = f"unparseable SSE data: {data[:80]!r}"
            return out
        if not isinstance(chunk, dict):
            continue
        if chunk.get("error"):
            out.error = str(chunk["error"])[:200]
            return out
        choices = chunk.get("choices")
        if choices:
            reason = choices[0].get("finish_reason") if isinstance(choices[0], dict) else None
            if reason:
                out.finish_reason = str(reason)
            out.chunks += 1
            if out.last is not None:
                out.gaps.append(t - out.last)
            out.last = t
            if out.first is None:
                out.first = t
        usage = chunk.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
            out.tokens = usage["completion_tokens"]
