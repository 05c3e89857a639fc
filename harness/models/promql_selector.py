"""The PromQL a KEDA prometheus trigger may use on the local backend, evaluated over the
replicas' scraped metrics (a real cluster's Prometheus runs any PromQL): `AGG(metric{matchers})`
with AGG one of sum/avg/max/min/count, or a bare selector."""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.models._k8s import ModelInputError

_QUERY = re.compile(
    r"^\s*(?:(?P<agg>sum|avg|max|min|count)\s*\(\s*)?"
    r"(?P<metric>[A-Za-z_:][A-Za-z0-9_:]*)\s*(?:\{(?P<labels>[^}]*)\})?\s*(?(agg)\))\s*$"
)
_MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*')


@dataclass(frozen=True)
class Query:
    """`AGG(metric{matchers})` (AGG one of sum/avg/max/min/count) or a bare selector."""

    metric: str
    agg: str | None
    matchers: tuple[tuple[str, str, str], ...]

    def evaluate(self, series: list[tuple[dict[str, str], float]]) -> float | None:
        """Over (labels, value) series; None for an empty result. A bare selector over several
        series is KEDA's 'returned multiple elements' error (ValueError)."""
        picked = [v for labels, v in series if self._matches(labels)]
        if not picked:
            return None if self.agg != "count" else 0.0
        if self.agg is None:
            if len(picked) > 1:
                raise ValueError(f"prometheus query {self.metric} returned multiple elements")
            return picked[0]
        if self.agg == "sum":
            return sum(picked)
        if self.agg == "avg":
            return sum(picked) / len(picked)
        if self.agg == "max":
            return max(picked)
        if self.agg == "min":
            return min(picked)
        return float(len(picked))

    def _matches(self, labels: dict[str, str]) -> bool:
        for name, op, want in self.matchers:
            have = labels.get(name, "")
            ok = {
                "=": have == want,
                "!=": have != want,
                "=~": re.fullmatch(want, have) is not None,
                "!~": re.fullmatch(want, have) is None,
            }[op]
            if not ok:
                return False
        return True


def parse_query(text: str, where: str) -> Query:
    m = _QUERY.match(text)
    if m is None:
        raise ModelInputError(
            f"query {text!r} is beyond what the local backend evaluates",
            where,
            'use AGG(metric{label="v"}) with AGG one of sum, avg, max, min, count '
            "(a real cluster's Prometheus runs any PromQL)",
        )
    matchers: list[tuple[str, str, str]] = []
    body = m.group("labels")
    if body and body.strip():
        for part in filter(str.strip, body.split(",")):
            mm = _MATCHER.fullmatch(part)
            if mm is None:
                raise ModelInputError(f"label matcher {part.strip()!r} not understood", where)
            matchers.append((mm.group(1), mm.group(2), mm.group(3)))
    return Query(m.group("metric"), m.group("agg"), tuple(matchers))
