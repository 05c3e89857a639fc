"""Write the synthetic trace samples in scenarios/traces/ (seeded: the same files every time).

Not real traffic: shaped like the public traces (bursty arrivals, lognormal lengths, Mooncake's
shared prefix blocks) and sized for the tiny reference model (prompts <= 480 tokens, under its
512-token limit).
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "scenarios" / "traces"
N = 120
SPAN_S = 60.0


def arrivals(rng: np.random.Generator) -> np.ndarray:
    """Gamma gaps (burstiness 0.5) scaled to N requests in SPAN_S seconds."""
    gaps = rng.gamma(0.5, 2.0, size=N)
    t = np.cumsum(gaps)
    return (t - t[0]) * (SPAN_S / t[-1])


def lengths(rng: np.random.Generator, mean: float, std: float, lo: int, hi: int) -> np.ndarray:
    sigma2 = np.log1p((std / mean) ** 2)
    raw = rng.lognormal(np.log(mean) - sigma2 / 2, np.sqrt(sigma2), size=N)
    return np.clip(np.rint(raw), lo, hi).astype(int)


def azure(rng: np.random.Generator) -> str:
    start = datetime.datetime(2023, 11, 16, 18, 15, 46)
    t = arrivals(rng)
    ctx = lengths(rng, 180, 140, 8, 480)
    gen = lengths(rng, 24, 16, 2, 64)
    rows = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    for s, c, g in zip(t, ctx, gen, strict=True):
        when = start + datetime.timedelta(seconds=float(s))
        rows.append(f"{when:%Y-%m-%d %H:%M:%S.%f}0,{c},{g}")  # 7 digits, as Azure writes them
    return "\n".join(rows) + "\n"


def mooncake(rng: np.random.Generator, block: int = 512) -> str:
    t = arrivals(rng)
    ctx = lengths(rng, 300, 150, 16, 480)
    gen = lengths(rng, 16, 10, 2, 64)
    lines = []
    next_id = 4  # ids 0-3: four shared "system prompt" blocks
    for s, c, g in zip(t, ctx, gen, strict=True):
        n_blocks = -(-int(c) // block)
        ids = [int(rng.integers(0, 4)), *range(next_id, next_id + n_blocks - 1)]
        next_id += n_blocks - 1
        row = {"timestamp": int(s * 1000), "input_length": int(c), "output_length": int(g)}
        lines.append(json.dumps({**row, "hash_ids": ids}))
    return "\n".join(lines) + "\n"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "azure-sample.csv").write_text(azure(np.random.default_rng(16)))
    (OUT / "mooncake-sample.jsonl").write_text(mooncake(np.random.default_rng(17)))


if __name__ == "__main__":
    main()
