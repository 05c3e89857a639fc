"""Load-engine capacity: the highest open-loop rate one generator core sustains, beside wrk.

    python benchmarks/bench_load.py [--duration 5] [--rates 1000,2000,...] [--stream]

A trivial HTTP/1.1 endpoint (asyncio protocol, fixed 2-byte body; with `--stream` a fixed
OpenAI SSE stream of 16 one-token chunks, a usage chunk and `[DONE]`, which the generator
parses event by event as it does any stream) runs on one CPU; the
generator (one locust worker, open loop, constant arrivals) is pinned to the other. For each
rate the run counts as sustained when it is valid (schedule-delay p50 <= 10 ms, >= 95 % of the
schedule sent, < 1 % dropped), schedule-delay p99 < 10 ms and no errors. `wrk` (closed loop,
as fast as it can, also pinned to the generator CPU) measures the endpoint's max rate in the
same run. Writes reports/bench/load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
STREAM_TOKENS = 16


def _sse_response(tokens: int) -> bytes:
    chunk = b'data: {"choices":[{"index":0,"text":"t","finish_reason":null}]}\n\n'
    usage = b'data: {"choices":[],"usage":{"completion_tokens":%d}}\n\n' % tokens
    body = chunk * tokens + usage + b"data: [DONE]\n\n"
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n\r\n"
    return head % len(body) + body


class _Trivial(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            head_end = self.buf.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buf[:head_end].lower()
            m = re.search(rb"content-length:\s*(\d+)", head)
            n = int(m.group(1)) if m else 0
            if len(self.buf) < head_end + 4 + n:
                return
            self.buf = self.buf[head_end + 4 + n :]
            self.t.write(self.response)  # type: ignore[attr-defined]

    response = RESPONSE


class _Streams(_Trivial):
    response = _sse_response(STREAM_TOKENS)


def serve(port_file: str, stream: bool) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        proto = _Streams if stream else _Trivial
        srv = await loop.create_server(proto, "127.0.0.1", 0, backlog=4096)
        Path(port_file).write_text(str(srv.sockets[0].getsockname()[1]))
        await srv.serve_forever()

    asyncio.run(main())


def start_server(cpu: int, stream: bool) -> tuple[subprocess.Popen[bytes], str]:
    port_file = tempfile.mktemp(prefix="bench-load-port-")
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", port_file, *(["--stream"] if stream else [])],
        preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
    )
    for _ in range(200):
        if Path(port_file).exists() and Path(port_file).read_text():
            break
        time.sleep(0.05)
    port = Path(port_file).read_text()
    os.unlink(port_file)
    return proc, f"http://127.0.0.1:{port}"


def wrk_max(url: str, cpu: int, duration: int) -> float | None:
    if not shutil.which("wrk"):
        return None
    out = subprocess.run(
        ["taskset", "-c", str(cpu), "wrk", "-t1", "-c32", f"-d{duration}s", url + "/"],
        capture_output=True, text=True, timeout=duration + 30,
    ).stdout  # fmt: skip
    m = re.search(r"Requests/sec:\s*([\d.]+)", out)
    return float(m.group(1)) if m else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--attempts", type=int, default=2, help="tries per rate before giving up")
    ap.add_argument("--rates", default=None, help="default: by mode, up past the goal")
    ap.add_argument("--stream", action="store_true", help="streamed requests of 16 tokens")
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.stream)
        return
    goal = 1500 if args.stream else 2500
    plain = "1000,2000,2500,3000,3500,4000,5000,6000,8000"
    rates = args.rates or ("1000,1500,2000,3000,4000,5000,6000" if args.stream else plain)

    from harness.load import LoadSpec, run_load

    ncpu = len(os.sched_getaffinity(0))
    gen_cpu, srv_cpu = (0, 1) if ncpu >= 2 else (0, 0)
    server, url = start_server(srv_cpu, args.stream)
    rows = []
    try:
        wrk = wrk_max(url, gen_cpu, max(3, int(args.duration)))
        best = 0.0
        for rate in [float(r) for r in rates.split(",")]:
            request: dict[str, Any] = (
                {"method": "POST", "stream": True, "body": {"prompt": "x", "max_tokens": 16}}
                if args.stream
                else {"method": "GET"}
            )
            spec = LoadSpec(
                target=url, path="/", rate_rps=rate, duration_s=args.duration, **request,
                arrival="constant", timeout_s=5.0, worker_cpus=[gen_cpu], max_in_flight=256,
            )  # fmt: skip
            for _attempt in range(args.attempts):  # the CI machine is shared: retry a noisy run
                with tempfile.TemporaryDirectory() as tmp:
                    r = run_load(spec, Path(tmp))
                p99 = r.schedule_delay_ms["p99"] or 0.0
                parsed = r.stream is None or r.stream.output_tokens.get("min") == STREAM_TOKENS
                ok = r.valid and p99 < 10.0 and not r.errors and parsed
                if ok:
                    break
            rows.append(
                {
                    "rate": rate, "achieved": r.achieved_rate,
                    "sched_p50_ms": r.schedule_delay_ms["p50"], "sched_p99_ms": p99,
                    "latency_p99_ms": r.latency_ms["p99"], "dropped": r.dropped,
                    "errors": r.errors, "generator_cpu": r.generator_cpu, "valid": r.valid,
                    "sustained": ok,
                }
            )  # fmt: skip
            verdict = (
                "OK" if ok else "NOT sustained: " + "; ".join(r.invalid_reasons) or "sched p99"
            )
            print(
                f"rate {rate:7.0f}  achieved {r.achieved_rate:8.1f}  "
                f"sched p50 {r.schedule_delay_ms['p50']} "
                f"p99 {p99:.2f} ms  latency p99 {r.latency_ms['p99']} ms  cpu {r.generator_cpu}  "
                f"{verdict}",
                flush=True,
            )
            if ok:
                best = max(best, r.achieved_rate)
            else:
                break
    finally:
        server.terminate()
        server.wait(5)
    ratio = best / wrk if wrk else None
    what = f"streamed ({STREAM_TOKENS} tokens each)" if args.stream else "plain"
    print(
        f"\nopen-loop max sustained, {what} (1 core, schedule-delay p99 < 10 ms): {best:.0f} req/s"
    )
    print(
        "wrk max (1 thread, 32 connections, same core and endpoint):  "
        f"{wrk or float('nan'):.0f} req/s"
    )
    if ratio is not None:
        print(
            f"ratio gauntlet/wrk: {ratio:.3f}   "
            f"goal >= {goal} req/s: {'met' if best >= goal else 'NOT met'}"
        )
    out = ROOT / "reports" / "bench" / ("load-stream.json" if args.stream else "load.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "max_sustained_rps": best,
                "wrk_rps": wrk,
                "ratio": ratio,
                "goal_rps": goal,
                "stream_tokens": STREAM_TOKENS if args.stream else None,
                "runs": rows,
            },
            indent=1,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
