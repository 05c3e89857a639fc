"""The running batch's tensors: one left-padded KV cache shared by every running sequence.

Row i of the cache holds sequence i's prompt and generated tokens except its last sampled token
(`last_tokens[i]`), which the next decode step feeds. Sequences join by merging their prefill
cache (both sides left-padded to a common length, pads masked out) and leave by row selection;
columns that only pads use are trimmed, so the cache is as long as its longest live row. Explicit
`position_ids` give every row exactly the positions it would have alone, so greedy outputs do
not depend on who shares the batch.

Each layer keeps its keys/values in a buffer with spare columns (`SpareColumnsLayer`): a decode
step writes its column in place instead of transformers' `torch.cat` of the whole cache, which
measured 9.2 -> 5.2 ms per step at 32 rows x 142 positions on the tiny model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transformers.cache_utils import DynamicLayer

SPARE_COLUMNS = 32  # decode steps between regrowths (each regrowth copies the layer once)


class SpareColumnsLayer(DynamicLayer):
    """A transformers cache layer whose `keys`/`values` are views into buffers with spare
    sequence columns; `update` writes new columns in place and regrows only when full."""

    def __init__(self, keys: Any, values: Any) -> None:
        super().__init__()
        self.reset_to(keys, values)

    def reset_to(self, keys: Any, values: Any) -> None:
        """Copy `keys`/`values` [rows, heads, length, dim] into fresh buffers with spare room."""
        rows, heads, length, dim = keys.shape
        self._kbuf = keys.new_empty((rows, heads, length + SPARE_COLUMNS, dim))
        self._vbuf = values.new_empty((rows, heads, length + SPARE_COLUMNS, dim))
        self._kbuf[:, :, :length] = keys
        self._vbuf[:, :, :length] = values
        self._set_length(length)
        self.is_initialized = True
        self.device, self.dtype = keys.device, keys.dtype

    def _set_length(self, length: int) -> None:
        self.length = length
        self.keys = self._kbuf[:, :, :length]
        self.values = self._vbuf[:, :, :length]

    def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> Any:
        new = int(key_states.shape[-2])
        if self.length + new > self._kbuf.shape[2]:
            self.reset_to(self.keys, self.values)
        self._kbuf[:, :, self.length : self.length + new] = key_states
        self._vbuf[:, :, self.length : self.length + new] = value_states
        self._set_length(self.length + new)
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def nbytes(self) -> int:
        return int(self._kbuf.numel() * self._kbuf.element_size() * 2)


@dataclass
class Prefill:
    """A freshly prefilled group: its cache, mask, next positions and last-position logits."""

    cache: Any
    mask: Any  # [rows, length] long, 1 = real token
    next_pos: Any  # [rows, 1] position of the token each row feeds next
    logits: Any  # [rows, vocab]


class KVBatch:
    def __init__(self, torch: Any, model: Any, device: str, pad_id: int) -> None:
        self.torch = torch
        self.model = model
        self.device = device
        self.pad_id = pad_id
        self.cache: Any = None  # a DynamicCache; each layer's keys/values [rows, heads, L, dim]
        self.mask: Any = None
        self.next_pos: Any = None
        self.last_tokens: list[int] = []

    @property
    def rows(self) -> int:
        return len(self.last_tokens)

    @property
    def length(self) -> int:
        return 0 if self.mask is None else int(self.mask.shape[1])

    def nbytes(self) -> int:
        """Bytes the KV tensors hold now (pads included: that memory is really used)."""
        cache = self.cache  # read by admission from other threads: one snapshot
        if cache is None:
            return 0
        return sum(layer.nbytes() for layer in cache.layers)

    # ---- prefill --------------------------------------------------------------------------
    def prefill(self, prompts: list[list[int]]) -> Prefill:
        torch = self.torch
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[i, width - len(p) :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
        )
        return Prefill(
            cache=out.cache,
            mask=mask,
            next_pos=positions[:, -1:] + 1,
            logits=out.logits[:, -1, :].float(),
        )

    def join(self, pre: Prefill, first_tokens: list[int]) -> None:
        """Add prefilled rows (their first sampled tokens not yet in the cache)."""
        torch = self.torch
        if not self.last_tokens:
            pre.cache.layers = [SpareColumnsLayer(x.keys, x.values) for x in pre.cache.layers]
            self.cache, self.mask, self.next_pos = pre.cache, pre.mask, pre.next_pos
            self.last_tokens = list(first_tokens)
            return
        length = max(self.length, int(pre.mask.shape[1]))
        for mine, new in zip(self.cache.layers, pre.cache.layers, strict=True):
            mine.reset_to(
                torch.cat(
                    [_left_pad(torch, mine.keys, length), _left_pad(torch, new.keys, length)]
                ),
                torch.cat(
                    [_left_pad(torch, mine.values, length), _left_pad(torch, new.values, length)]
                ),
            )
        self.mask = torch.cat(
            [_left_pad_mask(torch, self.mask, length), _left_pad_mask(torch, pre.mask, length)]
        )
        self.next_pos = torch.cat([self.next_pos, pre.next_pos])
        self.last_tokens += list(first_tokens)

    # ---- decode ---------------------------------------------------------------------------
    def decode(self) -> Any:
        """One forward over every row's last token; returns logits [rows, vocab]."""
        torch = self.torch
        rows = self.rows
        mask = torch.cat([self.mask, self.mask.new_ones((rows, 1))], dim=1)
        out = self.model(
            input_ids=torch.tensor(self.last_tokens, dtype=torch.long)
            .view(rows, 1)
            .to(self.device),
            attention_mask=mask,
            position_ids=self.next_pos,
            cache=self.cache,
            use_cache=True,
        )
        self.cache = out.cache  # the same object, grown by one column in place
        self.mask = mask
        self.next_pos = self.next_pos + 1
        return out.logits[:, -1, :].float()

    def keep(self, rows: list[int]) -> None:
        """Keep only `rows` (in this order); trim the columns no kept row uses."""
        if len(rows) == self.rows:
            return
        if not rows:
            self.cache, self.mask, self.next_pos, self.last_tokens = None, None, None, []
            return
        torch = self.torch
        idx = torch.tensor(rows, dtype=torch.long, device=self.mask.device)
        mask = self.mask.index_select(0, idx)
        used = mask.any(dim=0).nonzero()
        start = int(used[0]) if len(used) else 0
        self.mask = mask[:, start:]
        for layer in self.cache.layers:
            layer.reset_to(
                layer.keys.index_select(0, idx)[:, :, start:],
                layer.values.index_select(0, idx)[:, :, start:],
            )
        self.next_pos = self.next_pos.index_select(0, idx)
        self.last_tokens = [self.last_tokens[i] for i in rows]


def _left_pad(torch: Any, t: Any, length: int) -> Any:
    short = length - int(t.shape[2])
    if short == 0:
        return t
    pad = t.new_zeros((t.shape[0], t.shape[1], short, t.shape[3]))
    return torch.cat([pad, t], dim=2)


def _left_pad_mask(torch: Any, mask: Any, length: int) -> Any:
    short = length - int(mask.shape[1])
    if short == 0:
        return mask
    return torch.cat([mask.new_zeros((mask.shape[0], short)), mask], dim=1)
