"""Incremental detokenization with stop strings, so a stream's text deltas never split a
character and never show the beginning of a stop string that then matches.

Decoding only a short window (`prefix_offset`..end) keeps each step O(1) in the sequence length,
as vLLM's incremental detokenizer does; a window ending in U+FFFD is an incomplete UTF-8
sequence (a byte-level token) and waits for the next token.
"""

from __future__ import annotations

from typing import Any

REPLACEMENT = "\ufffd"


class IncrementalDetokenizer:
    def __init__(self, tokenizer: Any, stop: list[str]) -> None:
        self.tokenizer = tokenizer
        self.stop = [s for s in stop if s]
        self.ids: list[int] = []
        self.text = ""  # everything decoded so far (stop strings not yet cut)
        self.sent = 0  # characters of `text` already handed out
        self._prefix_offset = 0
        self._read_offset = 0
        self.stopped = False

    def _decode(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    def push(self, token_id: int) -> str:
        """Add one generated token; return the text that can be shown now ("" if none)."""
        self.ids.append(token_id)
        prefix = self._decode(self.ids[self._prefix_offset : self._read_offset])
        window = self._decode(self.ids[self._prefix_offset :])
        if len(window) > len(prefix) and not window.endswith(REPLACEMENT):
            self.text += window[len(prefix) :]
            self._prefix_offset = self._read_offset
            self._read_offset = len(self.ids)
        if self.stop:
            cut = first_stop(self.text, self.stop, start=max(0, self.sent - self._longest_stop()))
            if cut is not None:
                self.text = self.text[:cut]
                self.stopped = True
                return self._take(len(self.text))
            # Hold back what could still become the start of a stop string.
            return self._take(max(self.sent, len(self.text) - self._longest_stop() + 1))
        return self._take(len(self.text))

    def flush(self) -> str:
        """At the end: whatever was held back (incomplete characters decode as U+FFFD)."""
        if not self.stopped and self._read_offset < len(self.ids):
            rest = self._decode(self.ids[self._prefix_offset :])
            prefix = self._decode(self.ids[self._prefix_offset : self._read_offset])
            self.text += rest[len(prefix) :]
            self._read_offset = len(self.ids)
        return self._take(len(self.text))

    def _longest_stop(self) -> int:
        return max((len(s) for s in self.stop), default=0)

    def _take(self, upto: int) -> str:
        delta = self.text[self.sent : upto]
        self.sent = max(self.sent, upto)
        return delta


def first_stop(text: str, stops: list[str], start: int = 0) -> int | None:
    hits = [text.find(s, start) for s in stops if s]
    hits = [h for h in hits if h >= 0]
    return min(hits) if hits else None
