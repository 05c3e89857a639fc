"""The field's own benchmark tool against the reference service, as a user would run it.

GuideLLM (the vLLM project's benchmark tool) first checks `GET /health`, then streams chat
completions and reads TTFT / inter-token latency from the SSE chunks and token counts from the
usage chunk; before the service spoke streaming and `/health` it stopped before sending a
request. Installs GuideLLM into a cached venv of its own (about a minute, once).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from harness.servers.venvs import EnvUnavailable, ensure_guidellm_env
from tests.service.conftest import ServerProcess

pytestmark = [pytest.mark.extended, pytest.mark.timeout(900)]


def test_guidellm_benchmarks_the_service(
    server: ServerProcess, tiny_model_dir: Path, tmp_path: Path
) -> None:
    try:
        python = ensure_guidellm_env(log=tmp_path / "install.log")
    except EnvUnavailable as err:
        pytest.skip(f"GuideLLM cannot be installed here: {err}")
    out = tmp_path / "guidellm.json"
    cmd = [
        str(python),
        "-m",
        "guidellm",
        "run",
        "--backend",
        f"kind=openai_http,target={server.url},model=tiny",
        "--profile",
        "kind=constant,rate=5",
        "--data",
        "kind=synthetic_text,prompt_tokens=16,output_tokens=16",
        "--tokenizer",
        f"kind=hf_auto,model={tiny_model_dir}",
        "--constraint",
        "kind=max_duration,seconds=10",
        "--output",
        f"kind=json,path={out}",
        "--disable-console-interactive",
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(out.read_text())
    bench = report["benchmarks"][0]
    totals = bench["metrics"]["request_totals"]
    assert totals["successful"] >= 20, totals
    assert totals["errored"] == 0, totals
    ttft = bench["metrics"]["time_to_first_token_ms"]["successful"]
    assert 0 < ttft["median"] < 1000, ttft
