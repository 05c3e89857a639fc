"""Prometheus text exposition, read with prometheus_client's parser: a replica's /metrics, a
node's cAdvisor metrics."""

from __future__ import annotations

import contextlib

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[str, list[tuple[dict[str, str], float]]]  # sample name -> [(labels, value)]


def parse(text: str) -> Samples:
    """Every sample by its name; what follows a malformed line is dropped, not raised."""
    out: Samples = {}
    with contextlib.suppress(ValueError):
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                out.setdefault(s.name, []).append((dict(s.labels), float(s.value)))
    return out


def scrape(url: str, timeout_s: float = 3.0) -> Samples:
    """GET `url` and parse it; {} when it cannot be reached."""
    try:
        return parse(httpx.get(url, timeout=timeout_s).text)
    except httpx.HTTPError:
        return {}


def total(samples: Samples, name: str) -> float | None:
    """Sum of a metric over its label sets. Counters are found with or without `_total`, and a
    recording-rule name with or without its `:` (`gauntlet:x` or `gauntlet_x`); `a+b` adds two."""
    result = 0.0
    for part in name.split("+"):
        spellings = (part, part.replace(":", "_"), part.replace("_", ":", 1))
        keys = [k for s in spellings for k in (s, s + "_total", s.removesuffix("_total"))]
        key = next((k for k in keys if k in samples), None)
        if key is None:
            return None
        result += sum(v for _, v in samples[key])
    return result
