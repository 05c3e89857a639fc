"""GPU check for `nox -s gpu`: build the tiny model, serve it on CUDA, send 200 requests.

Prints throughput, latency and GPU memory; prints "SKIP: <reason>" and exits 0 without CUDA.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
REQUESTS = 200
CONCURRENCY = 32


def main() -> int:
    import torch

    if not torch.cuda.is_available():
        print(
            f"SKIP: no CUDA device visible to torch {torch.__version__} "
            f"(cuda build: {torch.version.cuda or 'none'})"
        )
        return 0
    import httpx

    from reference_service.model_builder import build_model

    model_dir = Path(tempfile.mkdtemp(prefix="gauntlet-gpu-")) / "tiny"
    build_model("tiny", model_dir)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "GAUNTLET_MODEL_DIR": str(model_dir),
        "GAUNTLET_PORT": str(port),
        "GAUNTLET_DEVICE": "cuda",
        "GAUNTLET_MAX_NUM_SEQS": "32",
        "GAUNTLET_MAX_QUEUE": "512",
    }
    proc = subprocess.Popen([sys.executable, "-m", "reference_service.server"], env=env, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    try:
        t0 = time.monotonic()
        while True:
            if proc.poll() is not None:
                print(f"FAIL: server exited rc={proc.returncode}")
                return 1
            try:
                if httpx.get(url + "/startup", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() - t0 > 300:
                print("FAIL: server not started after 300 s")
                return 1
            time.sleep(0.1)
        phases = httpx.get(url + "/startup").json()["phases"]
        print(f"started in {time.monotonic() - t0:.1f}s phases={phases}")

        async def run() -> tuple[list[float], int, float]:
            sem = asyncio.Semaphore(CONCURRENCY)
            lat: list[float] = []
            bad = 0
            async with httpx.AsyncClient(base_url=url, timeout=120) as client:

                async def one(i: int) -> None:
                    nonlocal bad
                    async with sem:
                        t = time.monotonic()
                        r = await client.post(
                            "/v1/completions",
                            json={"prompt": f"gpu check {i}", "max_tokens": 32, "temperature": 0},
                        )
                        if r.status_code == 200:
                            lat.append(time.monotonic() - t)
                        else:
                            bad += 1

                start = time.monotonic()
                await asyncio.gather(*(one(i) for i in range(REQUESTS)))
                return lat, bad, time.monotonic() - start

        lat, bad, elapsed = asyncio.run(run())
        lat.sort()
        metrics = httpx.get(url + "/metrics").text
        rss = next(
            (
                ln.split()[-1]
                for ln in metrics.splitlines()
                if ln.startswith("process_resident_memory_bytes")
            ),
            "?",
        )
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.used,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
        )
        print(
            f"requests {REQUESTS} ok {len(lat)} failed {bad} in {elapsed:.2f}s -> "
            f"{len(lat) / elapsed:.1f} req/s; p50 {lat[len(lat) // 2] * 1000:.0f} ms "
            f"p90 {lat[int(0.9 * (len(lat) - 1))] * 1000:.0f} ms"
        )
        print(f"GPU: {smi.stdout.strip() or torch.cuda.get_device_name(0)}; server RSS {rss} bytes")
        return 0 if bad == 0 else 1
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    sys.exit(main())
