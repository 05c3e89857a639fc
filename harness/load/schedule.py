"""The global open-loop arrival schedule: intended send times, seeded and reproducible.

Arrivals follow the shape's piecewise-linear rate r(t). With the cumulative rate L(t), constant
arrivals sit at L(t_k) = k + 0.5 and Poisson arrivals at L(t_k) = E_1 + ... + E_k with E_i ~
Exp(1) (time-rescaling: an exact non-homogeneous Poisson process). Gamma arrivals use
Gamma(shape=b, scale=1/b) gaps instead (mean 1, coefficient of variation 1/sqrt(b)): vLLM's
`--burstiness b`, where b = 1 is Poisson, b < 1 burstier, b > 1 more even. A trace replays its
own arrival times. Workers take every W-th arrival, so together they send exactly this one
schedule.
"""

from __future__ import annotations

import numpy as np

from harness.load.spec import LoadSpec


def rate_function(spec: LoadSpec) -> tuple[np.ndarray, np.ndarray]:
    ts, rs = spec.effective_shape().breakpoints(spec.rate_rps, spec.duration_s)
    return np.asarray(ts, dtype=float), np.asarray(rs, dtype=float)


def cumulative(ts: np.ndarray, rs: np.ndarray, t: np.ndarray) -> np.ndarray:
    """L(t) = integral of r from 0 to t for the piecewise-linear (possibly stepped) rate."""
    seg = np.concatenate([[0.0], np.cumsum(np.diff(ts) * (rs[:-1] + rs[1:]) / 2)])
    out = np.zeros_like(t, dtype=float)
    for i in range(len(ts) - 1):
        t0, t1 = ts[i], ts[i + 1]
        if t1 <= t0:
            continue
        m = (t > t0) & (t <= t1) if i else (t >= t0) & (t <= t1)
        dt = t[m] - t0
        slope = (rs[i + 1] - rs[i]) / (t1 - t0)
        out[m] = seg[i] + rs[i] * dt + slope * dt * dt / 2
    out[t > ts[-1]] = seg[-1]
    return out


def requested_per_bucket(spec: LoadSpec, n_buckets: int, width: float = 1.0) -> np.ndarray:
    """Mean requested rate in each [i*width, (i+1)*width) bucket."""
    if spec.trace is not None:  # what the trace asked for in each bucket
        edges = np.arange(n_buckets + 1, dtype=float) * width
        return np.histogram(arrival_times(spec), bins=edges)[0] / width
    ts, rs = rate_function(spec)
    edges = np.arange(n_buckets + 1, dtype=float) * width
    lam = cumulative(ts, rs, np.minimum(edges, spec.duration_s))
    return np.diff(lam) / width


def arrival_times(spec: LoadSpec) -> np.ndarray:
    """Intended send offsets (s from start), sorted, capped at the spec's request bound."""
    if spec.trace is not None:
        off = spec.trace.offsets()
        return off[off < spec.duration_s][: spec.request_bound()]
    ts, rs = rate_function(spec)
    total = float(cumulative(ts, rs, np.array([spec.duration_s]))[0])
    if spec.arrival == "constant":
        marks = np.arange(0.5, total, 1.0)
    else:
        rng = np.random.default_rng(spec.seed)
        b = spec.burstiness if spec.arrival == "gamma" else 1.0

        def gaps(n: int) -> np.ndarray:
            return rng.gamma(b, 1.0 / b, size=n) if b != 1.0 else rng.exponential(1.0, size=n)

        n_guess = int(total + 10 * np.sqrt(total / min(b, 1.0) + 1) + 20)
        marks = np.cumsum(gaps(n_guess))
        while marks[-1] < total:  # rare (very bursty gaps); extend
            marks = np.concatenate([marks, marks[-1] + np.cumsum(gaps(n_guess))])
        marks = marks[marks < total]
    # invert L on a fine grid (1 ms or finer), linear in between
    n_grid = int(min(max(spec.duration_s * 1000, 1000), 5_000_000)) + 1
    grid = np.linspace(0.0, spec.duration_s, n_grid)
    lam = cumulative(ts, rs, grid)
    # np.interp needs increasing xp: flat (zero-rate) stretches get no arrivals anyway
    keep = np.concatenate([[True], np.diff(lam) > 0])
    times = np.interp(marks, lam[keep], grid[keep])
    return times[: spec.request_bound()]


def split(times: np.ndarray, workers: int) -> list[np.ndarray]:
    """Round-robin split so every worker sees the same rate profile at 1/W of the rate."""
    return [times[k::workers] for k in range(workers)]
