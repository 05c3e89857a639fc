"""The running batch's tensors: one KV cache in fixed slots, shared by every running sequence.

Each layer keeps its keys/values in buffers [slots, heads, columns, dim] (`SlotLayer`); the
model sees the view of the live rows and of the columns some live row uses. Every row's tokens
end at the same column (`end`), which the next decode step writes in place for all rows; row i
holds its prompt and generated tokens except its last token (`last_tokens[i]`), which that step
feeds. A new row joins with the cache of its prompt but the last token (prefilled, or from the
prefix cache), copied into a free slot, right-aligned at `end`; its last prompt token rides in
the next decode step, whose logits give its first output token. A finished row only frees its
slot: the next joiner takes it, and a decode with free slots left first moves rows from the end
into them. So a join or a leave copies only the rows that join or move, never the whole cache
(the per-step copies of the whole cache measured 28 % of a busy step; moving the last row into
each freed slot, 6 %). Columns that no live row uses are skipped by the view; when the columns
run out the live region shifts left within the same buffers, and only when the slots or columns
are too few are new ones allocated (slots doubled, columns in whole SPARE_COLUMNS). An emptied
batch keeps its buffers for the next arrivals until `release`. A masked column holds zeros or KV
the model wrote for some earlier row (finite), so its attention weight is exactly 0. Explicit
`position_ids` and a per-row mask give every row exactly what it would see alone, so greedy
outputs do not depend on who shares the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transformers.cache_utils import DynamicCache, DynamicLayer

from reference_service.prefix_cache import PrefixKV

SPARE_COLUMNS = 32  # decode steps between relayouts (each one copies the live region once)
MIN_SLOTS = 4


@dataclass
class Geometry:
    """What every layer's view shows: rows [0, rows), columns [start, end)."""

    rows: int = 0
    start: int = 0
    end: int = 0


class SlotLayer(DynamicLayer):
    """A transformers cache layer over slot buffers; `update` writes the step's column in place
    at `geometry.end` (the batch advances `end` once the whole forward is done)."""

    def __init__(self, geometry: Geometry, kbuf: Any, vbuf: Any) -> None:
        super().__init__()
        self.geometry = geometry
        self.kbuf, self.vbuf = kbuf, vbuf
        self.is_initialized = True
        self.device, self.dtype = kbuf.device, kbuf.dtype
        self.refresh()

    def refresh(self) -> None:
        g = self.geometry
        self.keys = self.kbuf[: g.rows, :, g.start : g.end]
        self.values = self.vbuf[: g.rows, :, g.start : g.end]

    def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> Any:
        g = self.geometry
        new = int(key_states.shape[-2])
        self.kbuf[: g.rows, :, g.end : g.end + new] = key_states
        self.vbuf[: g.rows, :, g.end : g.end + new] = value_states
        self.keys = self.kbuf[: g.rows, :, g.start : g.end + new]
        self.values = self.vbuf[: g.rows, :, g.start : g.end + new]
        return self.keys, self.values

    def nbytes(self) -> int:
        return int(self.kbuf.numel() * self.kbuf.element_size() * 2)


class KVBatch:
    def __init__(self, torch: Any, model: Any, device: str, pad_id: int) -> None:
        self.torch = torch
        self.model = model
        self.device = device
        self.pad_id = pad_id
        cfg = model.config
        self.kv_heads = int(getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads)
        self.head_dim = int(
            getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        )
        self.layers = int(cfg.num_hidden_layers)
        self.dtype = next(model.parameters()).dtype
        self.geometry = Geometry()
        self.cache: Any = None  # a DynamicCache whose layers are SlotLayers
        self.mask: Any = None  # [slots, columns] long: 1 on [row_start[i], end) of each live row
        self.next_pos: Any = None  # [slots, 1]
        # Per used slot (geometry.rows of them): its owner (None: a row left, the slot is free),
        # the column its tokens start at, the token the next decode feeds it.
        self.owners: list[Any] = []
        self.row_start: list[int] = []
        self.last_tokens: list[int] = []
        self._slot_of: dict[Any, int] = {}

    @property
    def rows(self) -> int:
        """Live rows (a free slot is not one)."""
        return len(self._slot_of)

    def __contains__(self, owner: Any) -> bool:
        return owner in self._slot_of

    @property
    def length(self) -> int:
        """Columns the model attends over (those some live row uses)."""
        return self.geometry.end - self.geometry.start if self.rows else 0

    def nbytes(self) -> int:
        """Bytes the KV buffers hold now (spare slots and columns included: that memory is
        really allocated)."""
        cache = self.cache  # read by admission from other threads: one snapshot
        if cache is None:
            return 0
        return sum(layer.nbytes() for layer in cache.layers)

    # ---- prefill and join -----------------------------------------------------------------
    def prefill(self, prompts: list[list[int]]) -> list[PrefixKV]:
        """Each prompt's KV cache from one left-padded forward (views of its output); an empty
        prompt gets an empty cache."""
        torch = self.torch
        width = max(len(p) for p in prompts)
        if width == 0:
            return [self.empty_prefix() for _ in prompts]
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):
            if p:
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
        layers = list(out.cache.layers)
        return [
            PrefixKV(
                [layer.keys[i, :, width - len(p) :] for layer in layers],
                [layer.values[i, :, width - len(p) :] for layer in layers],
                len(p),
            )
            for i, p in enumerate(prompts)
        ]

    def empty_prefix(self) -> PrefixKV:
        shape = (self.kv_heads, 0, self.head_dim)
        empty = [
            self.torch.zeros(shape, dtype=self.dtype, device=self.device)
            for _ in range(self.layers)
        ]
        return PrefixKV(empty, list(empty), 0)

    def join(self, prefixes: list[PrefixKV], next_tokens: list[int], owners: list[Any]) -> None:
        """Add one row per prefix for `owners` (hashable, one row each): into the slots of rows
        that left first (no row moves then), the rest after the used slots. Each row's
        `next_tokens` entry (its prompt's last token) is what the next decode step feeds it.
        Rows sharing one prefix object are copied in one go."""
        torch = self.torch
        if self.cache is None:
            self._allocate()
        free = [i for i, o in enumerate(self.owners) if o is None][: len(prefixes)]
        used, grow = len(self.owners), len(prefixes) - len(free)
        slots = free + list(range(used, used + grow))
        self._make_room(used + grow, max(p.length for p in prefixes), 1)
        self.owners += [None] * grow
        self.row_start += [0] * grow
        self.last_tokens += [0] * grow
        g = self.geometry
        index = torch.tensor(slots, dtype=torch.long, device=self.mask.device)
        self.mask[index] = 0
        groups: dict[int, tuple[PrefixKV, list[int]]] = {}
        for slot, p, token, owner in zip(slots, prefixes, next_tokens, owners, strict=True):
            groups.setdefault(id(p), (p, []))[1].append(slot)
            self.owners[slot] = owner
            self._slot_of[owner] = slot
            self.row_start[slot] = g.end - p.length
            self.last_tokens[slot] = token
        for p, group in groups.values():
            if p.length == 0:
                continue
            idx = torch.tensor(group, dtype=torch.long, device=self.mask.device)
            cols = slice(g.end - p.length, g.end)
            for layer, keys, values in zip(self.cache.layers, p.keys, p.values, strict=True):
                layer.kbuf[idx, :, cols] = keys
                layer.vbuf[idx, :, cols] = values
            self.mask[idx, cols] = 1
        self.next_pos[index, 0] = torch.tensor([p.length for p in prefixes], dtype=torch.long)
        self._set_rows()

    def leave(self, owners: list[Any]) -> None:
        """Drop the rows of `owners` at once; nothing is copied (a joiner takes the slot, or
        the next decode moves a row from the end into it)."""
        for owner in owners:
            self.owners[self._slot_of.pop(owner)] = None
        while self.owners and self.owners[-1] is None:
            self.owners.pop()
            self.row_start.pop()
            self.last_tokens.pop()
        self._set_rows()

    # ---- decode ---------------------------------------------------------------------------
    def decode(self) -> Any:
        """One forward over every row's last token; returns logits [rows, vocab]."""
        torch = self.torch
        self._compact()
        self._make_room(self.rows, 0, 1)
        g = self.geometry
        rows = g.rows
        self.mask[:rows, g.end] = 1
        out = self.model(
            input_ids=torch.tensor(self.last_tokens, dtype=torch.long)
            .view(rows, 1)
            .to(self.device),
            attention_mask=self.mask[:rows, g.start : g.end + 1],
            position_ids=self.next_pos[:rows],
            cache=self.cache,
            use_cache=True,
        )
        g.end += 1
        self.next_pos[:rows] += 1
        self._refresh()
        return out.logits[:, -1, :].float()

    def _compact(self) -> None:
        """Move rows from the end into the free slots below the live count, so the forward's
        rows are exactly the live ones (in steady state joiners filled the slots already)."""
        n = self.rows
        if len(self.owners) == n:
            return
        holes = [i for i in range(n) if self.owners[i] is None]
        movers = [i for i in range(n, len(self.owners)) if self.owners[i] is not None]
        g, torch = self.geometry, self.torch
        dst = torch.tensor(holes, dtype=torch.long, device=self.mask.device)
        src = torch.tensor(movers, dtype=torch.long, device=self.mask.device)
        for layer in self.cache.layers:
            for buf in (layer.kbuf, layer.vbuf):
                buf[dst, :, g.start : g.end] = buf[src, :, g.start : g.end]
        self.mask[dst] = self.mask[src]
        self.next_pos[dst] = self.next_pos[src]
        for h, m in zip(holes, movers, strict=True):
            self.owners[h] = owner = self.owners[m]
            self._slot_of[owner] = h
            self.row_start[h], self.last_tokens[h] = self.row_start[m], self.last_tokens[m]
        del self.owners[n:], self.row_start[n:], self.last_tokens[n:]
        self._set_rows()

    def release(self) -> None:
        """Free the buffers of an empty batch (the engine calls it once it has been idle for a
        while: reallocating after every momentary empty batch page-faulted a whole new buffer,
        7 % of a busy engine core with clients finishing in lockstep)."""
        if self.rows:
            raise RuntimeError("release() needs an empty batch")
        self.cache, self.mask, self.next_pos = None, None, None
        g = self.geometry
        g.start = g.end = 0

    # ---- layout ---------------------------------------------------------------------------
    def _allocate(self) -> None:
        """Empty buffers (the layout is made by _make_room)."""
        torch = self.torch
        g = self.geometry
        shape = (0, self.kv_heads, 0, self.head_dim)
        cache = DynamicCache()
        cache.layers = [
            SlotLayer(
                g,
                torch.zeros(shape, dtype=self.dtype, device=self.device),
                torch.zeros(shape, dtype=self.dtype, device=self.device),
            )
            for _ in range(self.layers)
        ]
        self.cache = cache
        self.mask = torch.zeros((0, 0), dtype=torch.long, device=self.device)
        self.next_pos = torch.zeros((0, 1), dtype=torch.long, device=self.device)

    def _make_room(self, slots: int, width: int, new_columns: int) -> None:
        """Make room for `slots` slots, `width` columns left of `end` and `new_columns` right
        of it: shift the live region within the buffers when they are big enough (the common
        case: a batch that never empties runs out of columns every SPARE_COLUMNS steps), else
        relay it into bigger ones. Either way the live region is copied once."""
        g = self.geometry
        have_slots, have_cols = int(self.mask.shape[0]), int(self.mask.shape[1])
        if slots <= have_slots and width <= g.end and g.end + new_columns <= have_cols:
            return
        live = g.end - g.start if g.rows else 0
        base = max(0, width - live)  # new start: room for a `width`-wide prompt ending at end
        cols = base + live + new_columns + SPARE_COLUMNS
        if slots <= have_slots and cols <= have_cols:
            self._shift(base, live)
        else:  # slots double; columns grow in whole SPARE_COLUMNS (not one per relayout)
            self._relay(
                max(slots, 2 * have_slots, MIN_SLOTS) if slots > have_slots else have_slots,
                max(have_cols, -(-cols // SPARE_COLUMNS) * SPARE_COLUMNS),
                base,
                live,
            )
        shift = base - g.start
        self.row_start = [s + shift for s in self.row_start]
        g.start, g.end = base, base + live
        self._refresh()

    def _shift(self, base: int, live: int) -> None:
        """Move the live region to columns [base, base + live) of the same buffers. (A fresh
        allocation per relayout page-faulted the whole new buffer: 11 % of a busy engine.)"""
        g = self.geometry
        rows, old, new = g.rows, slice(g.start, g.end), slice(base, base + live)
        overlap = base < g.end and g.start < base + live
        for layer in self.cache.layers:
            for buf in (layer.kbuf, layer.vbuf):
                src = buf[:rows, :, old]
                buf[:rows, :, new] = src.clone() if overlap else src
        moved = self.mask[:rows, old].clone()
        self.mask[:rows, : new.start] = 0
        self.mask[:rows, new] = moved  # right of the new end: decode sets each column it reaches

    def _relay(self, cap: int, cols: int, base: int, live: int) -> None:
        """Copy the live region into new buffers of `cap` slots and `cols` columns."""
        g = self.geometry
        rows, old, new = g.rows, slice(g.start, g.end), slice(base, base + live)
        for layer in self.cache.layers:
            _, heads, _, dim = layer.kbuf.shape
            k = layer.kbuf.new_zeros((cap, heads, cols, dim))
            v = layer.vbuf.new_zeros((cap, heads, cols, dim))
            k[:rows, :, new] = layer.kbuf[:rows, :, old]
            v[:rows, :, new] = layer.vbuf[:rows, :, old]
            layer.kbuf, layer.vbuf = k, v
        mask = self.mask.new_zeros((cap, cols))
        mask[:rows, new] = self.mask[:rows, old]
        next_pos = self.next_pos.new_zeros((cap, 1))
        next_pos[:rows] = self.next_pos[:rows]
        self.mask, self.next_pos = mask, next_pos

    def _set_rows(self) -> None:
        g = self.geometry
        g.rows = len(self.owners)
        starts = [s for s, o in zip(self.row_start, self.owners, strict=True) if o is not None]
        g.start = min(starts) if starts else g.end
        if self.cache is not None:
            self._refresh()

    def _refresh(self) -> None:
        for layer in self.cache.layers:
            layer.refresh()
