"""Benchmark the reference service: batched vs naive per-request serving vs the no-HTTP bound.

- throughput at p90 < 300 ms: closed loops at rising concurrency against (a) the service with
  dynamic batching and (b) the same service with max batch 1 (the naive per-request baseline);
  the best throughput whose p90 stays under 300 ms counts.
- bound: the engine's batched generate called directly (no HTTP), best batch size whose batch
  time stays under 300 ms.
- cold start: the server's phase timings vs a bare `import torch, transformers` in a fresh process.
Writes reports/bench/service.json. Usage: python benchmarks/bench_service.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
P90_TARGET_S = 0.300
PROMPT = "The reference service answers this prompt"
MAX_TOKENS = 16


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(model_dir: Path, **env: str) -> tuple[subprocess.Popen[bytes], str, float]:
    port = free_port()
    full = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "GAUNTLET_MODEL_DIR": str(model_dir),
        "GAUNTLET_PORT": str(port),
        "GAUNTLET_HOST": "127.0.0.1",
        "HF_HUB_OFFLINE": "1",
        **{f"GAUNTLET_{k.upper()}": v for k, v in env.items()},
    }
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "reference_service.server"],
        env=full,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    while time.monotonic() - t0 < 300:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited rc={proc.returncode}")
        try:
            if httpx.get(url + "/startup", timeout=5).status_code == 200:
                return proc, url, time.monotonic() - t0
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not start in 300 s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def closed_loop(url: str, concurrency: int, duration_s: float) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    body = {"prompt": PROMPT, "max_tokens": MAX_TOKENS, "temperature": 0}
    limits = httpx.Limits(max_connections=concurrency + 4)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        await client.post("/v1/completions", json=body)  # warm connection
        start = time.monotonic()
        end = start + duration_s

        async def worker() -> None:
            nonlocal errors
            while time.monotonic() < end:
                t = time.monotonic()
                r = await client.post("/v1/completions", json=body)
                if r.status_code == 200:
                    latencies.append(time.monotonic() - t)
                else:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.monotonic() - start
    latencies.sort()
    p90 = latencies[int(0.9 * (len(latencies) - 1))] if latencies else float("inf")
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": errors,
        "throughput_rps": len(latencies) / elapsed,
        "p90_s": p90,
        "p50_s": statistics.median(latencies) if latencies else float("inf"),
    }


def sweep(url: str, levels: list[int], duration_s: float) -> dict[str, object]:
    points = []
    for c in levels:
        point = asyncio.run(closed_loop(url, c, duration_s))
        points.append(point)
        print(
            f"  c={c:3d} {point['throughput_rps']:7.1f} req/s p90 {point['p90_s'] * 1000:6.0f} ms"
        )
        if point["p90_s"] > 2 * P90_TARGET_S:
            break
    ok = [p for p in points if p["p90_s"] < P90_TARGET_S and p["errors"] == 0]
    best = max(ok, key=lambda p: p["throughput_rps"]) if ok else None
    return {
        "points": points,
        "best": best,
        "throughput_at_p90_rps": best["throughput_rps"] if best else 0.0,
    }


def batched_bound(model_dir: Path, threads: int | None) -> dict[str, object]:
    from reference_service.config import ServiceSettings
    from reference_service.engine import Engine, GenRequest
    from reference_service.loader import load_model

    loaded = load_model(ServiceSettings(model_dir=model_dir, torch_threads=threads), {})
    tok = loaded.tokenizer
    engine = Engine(
        loaded.model, tok, loaded.device, max_batch_size=256, max_wait_ms=0, max_queue=1
    )
    ids = [tok.bos_token_id, *tok.encode(PROMPT, add_special_tokens=False)]
    points = []
    for bsz in (1, 2, 4, 8, 16, 32, 48, 64):
        reqs = lambda n=bsz: [GenRequest(prompt_ids=ids, max_tokens=MAX_TOKENS) for _ in range(n)]  # noqa: E731
        engine.generate_batch(reqs())
        times = []
        for _ in range(3):
            t = time.monotonic()
            engine.generate_batch(reqs())
            times.append(time.monotonic() - t)
        t_batch = statistics.median(times)
        points.append({"batch": bsz, "batch_s": t_batch, "throughput_rps": bsz / t_batch})
        print(f"  batch {bsz:3d}: {t_batch * 1000:6.0f} ms -> {bsz / t_batch:7.1f} req/s")
        if t_batch > P90_TARGET_S:
            break
    # An upper bound: requests that arrive exactly together and never wait for a running batch.
    # (Halving the target for one batch of waiting made a "bound" the service beat by 171 %.)
    ok = [p for p in points if p["batch_s"] < P90_TARGET_S]
    best = max(ok or points[:1], key=lambda p: p["throughput_rps"])
    return {"points": points, "best": best, "throughput_rps": best["throughput_rps"]}


def bare_imports_s() -> float:
    t = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import torch, transformers; from transformers import LlamaForCausalLM",
        ],
        check=True,
    )
    return time.monotonic() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="shorter loops (CI smoke)")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: least contention on a shared CPU)",
    )
    args = ap.parse_args()
    duration = 3.0 if args.quick else 8.0
    threads = {"torch_threads": str(args.threads)} if args.threads else {}
    from reference_service.model_builder import build_model

    model_dir = Path(tempfile.mkdtemp(prefix="gauntlet-bench-")) / "tiny"
    build_model("tiny", model_dir)
    result: dict[str, object] = {
        "model": "tiny",
        "prompt_tokens": len(PROMPT) + 1,
        "max_tokens": MAX_TOKENS,
        "p90_target_s": P90_TARGET_S,
        "cpu_count": os.cpu_count(),
    }

    print("cold start (service) vs bare imports")
    imports = statistics.median(bare_imports_s() for _ in range(2))
    proc, url, to_ready = start_server(
        model_dir, max_batch_size="32", max_wait_ms="5", max_queue="512", **threads
    )
    phases = httpx.get(url + "/startup", timeout=10).json()["phases"]
    result["cold_start"] = {
        "bare_imports_s": imports,
        "process_to_started_s": to_ready,
        "phases_s": phases,
        "ratio_to_bare_imports": to_ready / imports,
    }
    print(
        f"  bare imports {imports:.2f}s, process->started {to_ready:.2f}s "
        f"({to_ready / imports:.2f}x), "
        f"phases {json.dumps({k: round(v, 3) for k, v in phases.items()})}"
    )

    print("service (dynamic batching, max batch 32)")
    try:
        result["service"] = sweep(url, [1, 4, 8, 16, 24, 32, 48, 64], duration)
    finally:
        stop(proc)
    print("naive baseline (same service, max batch 1)")
    proc, url, _ = start_server(
        model_dir, max_batch_size="1", max_wait_ms="0", max_queue="512", **threads
    )
    try:
        result["naive"] = sweep(url, [1, 2, 4, 8], duration)
    finally:
        stop(proc)
    print("no-HTTP batched-generate bound")
    result["bound"] = batched_bound(model_dir, args.threads)

    svc = result["service"]["throughput_at_p90_rps"]  # type: ignore[index]
    naive = result["naive"]["throughput_at_p90_rps"]  # type: ignore[index]
    bound = result["bound"]["throughput_rps"]  # type: ignore[index]
    result["ratios"] = {
        "service_vs_naive": svc / naive if naive else None,
        "service_vs_bound": svc / bound if bound else None,
    }
    print(
        f"\nthroughput at p90<{P90_TARGET_S * 1000:.0f}ms: service {svc:.1f} req/s, "
        f"naive {naive:.1f} req/s, bound {bound:.1f} req/s"
    )

    def fmt(x: float | None, spec: str) -> str:
        return "n/a (nothing met the p90 target)" if x is None else format(x, spec)

    ratios = result["ratios"]
    print(
        f"service/naive = {fmt(ratios['service_vs_naive'], '.2f')}x (goal >= 5x); "  # type: ignore[index]
        f"service/bound = {fmt(ratios['service_vs_bound'], '.0%')} (goal >= 70%)"
    )  # type: ignore[index]
    out = REPO / "reports" / "bench" / "service.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
