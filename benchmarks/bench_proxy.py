"""Latency the local Service proxy adds: the same requests direct to a pod vs through service_url().

Run: python benchmarks/bench_proxy.py  -> prints p50/p90/p99 both ways and writes
reports/bench/proxy.json. Both paths use one keep-alive connection, interleaved, same pod.
"""

from __future__ import annotations

import http.client
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests/backends/local"))

from standin_specs import bundle, deployment  # noqa: E402

from harness.backends.local import LocalBackend  # noqa: E402

N = 2000


def _conn(url: str) -> http.client.HTTPConnection:
    u = urlparse(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=10)


def _one(c: http.client.HTTPConnection) -> float:
    t = time.perf_counter()
    c.request("GET", "/x")
    r = c.getresponse()
    r.read()
    assert r.status == 200
    return (time.perf_counter() - t) * 1000


def pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100)[int(q) - 1]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, LocalBackend(Path(tmp), probe_jitter=False) as b:
        b.deploy(bundle(deployment(replicas=1)))
        b.wait_ready(timeout_s=60)
        direct, proxied = _conn(b.pod_url(b.pods()[0].name)), _conn(b.service_url())
        for _ in range(100):
            _one(direct), _one(proxied)
        d, p = [], []
        for _ in range(N):
            d.append(_one(direct))
            p.append(_one(proxied))
    res = {
        "requests": N,
        "direct_ms": {"p50": pct(d, 50), "p90": pct(d, 90), "p99": pct(d, 99)},
        "proxy_ms": {"p50": pct(p, 50), "p90": pct(p, 90), "p99": pct(p, 99)},
    }
    res["added_p50_ms"] = res["proxy_ms"]["p50"] - res["direct_ms"]["p50"]
    res["ratio_p50"] = res["proxy_ms"]["p50"] / res["direct_ms"]["p50"]
    res["goal_added_p50_ms"] = 1.0
    res["meets_goal"] = res["added_p50_ms"] < 1.0
    print(json.dumps(res, indent=2))
    out = ROOT / "reports/bench/proxy.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
