"""Per-request sampling parameters and the batched token pick (greedy or seeded temperature)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

SAMPLING_EPS = 1e-5  # temperatures below this sample greedily (as vLLM does)


@dataclass
class SamplingParams:
    max_tokens: int
    temperature: float = 0.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    ignore_eos: bool = False  # vLLM's extension: generate exactly max_tokens
    min_tokens: int = 0  # vLLM's extension: no EOS before this many tokens

    @property
    def greedy(self) -> bool:
        return self.temperature < SAMPLING_EPS

    def generator(self, torch: Any) -> Any:
        """A per-request RNG (seeded when asked) so a row samples the same alone or batched.

        Below SAMPLING_EPS sampling is greedy: logits / 1e-309 overflow to inf and softmax gives
        NaN (a 500 found by the schema test), and the distribution is one-hot anyway."""
        if self.greedy:
            return None
        seed = self.seed if self.seed is not None else random.getrandbits(63)
        return torch.Generator(device="cpu").manual_seed(seed)


def pick_tokens(
    torch: Any, logits: Any, params: list[SamplingParams], gens: list[Any]
) -> list[int]:
    """One token per row of `logits` [rows, vocab]: argmax for greedy rows, else a draw from
    the row's own generator."""
    greedy = logits.argmax(dim=-1).tolist()
    if all(g is None for g in gens):
        return [int(t) for t in greedy]
    chosen = [int(t) for t in greedy]
    for i, (p, g) in enumerate(zip(params, gens, strict=True)):
        if g is None:
            continue
        probs = torch.softmax(logits[i].cpu() / p.temperature, dim=-1)
        chosen[i] = int(torch.multinomial(probs, 1, generator=g)[0])
    return chosen


def block_eos(logits: Any, rows: list[int], eos_id: int) -> None:
    """Make EOS impossible for `rows` (ignore_eos, or fewer than min_tokens generated)."""
    if rows:
        logits[rows, eos_id] = float("-inf")
