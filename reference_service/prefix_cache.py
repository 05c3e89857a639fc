"""KV reuse across requests with the same prompt (vLLM's automatic prefix caching, cut to whole
prompts).

A prompt's cacheable part is all of it but its last token: that one has to be computed anyway (its
logits give the first output token), so it rides in the next decode step like any running row.
A hit copies the stored keys/values into the batch and runs no prefill at all; a miss is
prefilled and stored. Entries are evicted least recently used beyond `max_bytes` (a hand-written
OrderedDict LRU: the service image carries no cache library). Only a whole-prefix match hits:
vLLM matches 16-token blocks, so a shared system prompt with different questions hits there and
not here. Queries and hits are counted in tokens, as `vllm:prefix_cache_queries` / `_hits`.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PrefixKV:
    """One prompt prefix's KV cache: per layer, keys and values shaped [heads, length, dim]."""

    keys: list[Any]
    values: list[Any]
    length: int

    def nbytes(self) -> int:
        return sum(int(t.numel() * t.element_size()) for t in (*self.keys, *self.values))

    def detached(self) -> PrefixKV:
        """A compact copy (a view of a prefill's output would keep the whole batch alive)."""
        return PrefixKV(
            [k.clone() for k in self.keys], [v.clone() for v in self.values], self.length
        )


class PrefixCache:
    """Not thread-safe: only the engine thread uses it."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._entries: OrderedDict[tuple[int, ...], PrefixKV] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, prefix: tuple[int, ...]) -> PrefixKV | None:
        kv = self._entries.get(prefix)
        if kv is not None:
            self._entries.move_to_end(prefix)
        return kv

    def store(self, prefix: tuple[int, ...], kv: PrefixKV) -> None:
        size = kv.nbytes()
        if not prefix or size > self.max_bytes or prefix in self._entries:
            return
        self._entries[prefix] = kv.detached()
        self.nbytes += size
        while self.nbytes > self.max_bytes:
            _, old = self._entries.popitem(last=False)
            self.nbytes -= old.nbytes()

    def clear(self) -> None:
        self._entries.clear()
        self.nbytes = 0
