"""The server kind decides what the scenarios may assume; the process runtime runs known images."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.backends.local.podspec.entrypoint import (
    VLLM_CLI,
    HostImage,
    host_image,
    process_argv,
)
from harness.errors import InputError
from harness.manifests.render import render
from harness.servers import kinds
from harness.verdict import Check, Verdict

REPO = Path(__file__).resolve().parents[2]

# lines of a real vLLM CPU 0.32 start on this machine (shortened)
_W, _E = "(Worker pid=7529) INFO 12-01", "(EngineCore pid=7518) INFO 12-01"
VLLM_LOG = "\n".join(
    [
        "--- container vllm start 1764600000.000 restart 0",
        f"{_W} 16:58:10 [base_loader.py:82] Initializing model took 0.094704 seconds",
        f"{_W} 16:58:10 [default_loader.py:501] Loading weights took 0.01 seconds",
        f"{_W} 16:58:11 [cpu_model_runner.py:87] Warming up model for the compilation...",
        f"{_W} 16:58:32 [cpu_model_runner.py:91] Warming up done.",
        f"{_E} 16:58:33 [core.py:402] init engine (profile, create kv cache, warmup model) "
        "took 22.64 s",
        "",
    ]
)


def test_the_kind_is_read_from_the_manifests() -> None:
    assert kinds.detect(render(REPO / "manifests/vllm/local").deployment).name == "vllm"
    assert kinds.detect(render(REPO / "manifests/overlays/local").deployment).name == "reference"
    plain = {"spec": {"template": {"spec": {"containers": [{"image": "ghcr.io/x/tgi:1"}]}}}}
    assert kinds.detect(plain).name == "openai"
    module = {"spec": {"template": {"spec": {"containers": [{"image": "python:3.11",
              "command": ["python3", "-m", "vllm.entrypoints.openai.api_server"]}]}}}}  # fmt: skip
    assert kinds.detect(module).name == "vllm"


def test_a_declared_kind_wins_and_a_wrong_one_names_the_field() -> None:
    annotations = {kinds.SERVER_ANNOTATION: "vllm"}
    dep = {"spec": {"template": {"metadata": {"annotations": annotations},
           "spec": {"containers": [{"image": "my/wrapper:1"}]}}}}  # fmt: skip
    assert kinds.detect(dep).name == "vllm"
    annotations[kinds.SERVER_ANNOTATION] = "sglang"
    with pytest.raises(InputError) as err:
        kinds.detect(dep, "m.yaml")
    assert "m.yaml" in str(err.value) and kinds.SERVER_ANNOTATION in str(err.value)
    assert "reference, vllm, openai" in str(err.value)


def test_vllm_phases_come_from_its_last_start_in_the_log() -> None:
    older = VLLM_LOG.replace("22.64", "61.00")
    phases = kinds.VLLM.load_phases({}, older + VLLM_LOG)
    assert phases == {"model_init": 0.095, "weights": 0.01, "engine_init": 22.64,
                      "compile_warmup": 21.0}  # fmt: skip
    assert kinds.OPENAI.load_phases({}, VLLM_LOG) == {}


def test_vllm_images_run_with_their_own_interpreter(tmp_path: Path) -> None:
    python = tmp_path / "venv" / "bin" / "python"
    image = HostImage("vllm", ["vllm", "serve"], {"HF_HUB_OFFLINE": "1"}, python)
    assert image.argv([], ["/m", "--port=8000"]) == [
        str(python), "-c", VLLM_CLI, "serve", "/m", "--port=8000",
    ]  # fmt: skip
    assert image.argv(["python3", "-m", "vllm.entrypoints.openai.api_server"], []) == [
        str(python), "-m", "vllm.entrypoints.openai.api_server",
    ]  # fmt: skip
    env = image.environment({"PATH": "/usr/bin", "PYTHONPATH": "/work", "VIRTUAL_ENV": "/v"})
    assert env == {"PATH": f"{python.parent}:/usr/bin", "HF_HUB_OFFLINE": "1"}
    assert host_image("vllm/vllm-openai:v0.32.0") is not None
    assert host_image("registry.local/other:1") is None
    assert process_argv(["/bin/server"], ["-x"], "registry.local/other:1") == ["/bin/server", "-x"]


def test_a_skipped_check_neither_passes_nor_fails_a_verdict() -> None:
    met = Check(name="a", measured=1, target=1, ok=True)
    skipped = Check.skip("b", 0, "a vllm server counts no such thing")
    v = Verdict.from_checks("s", "p", [met, skipped])
    assert v.status == "pass" and "all 1 checks met" in v.reason and "skipped: b" in v.reason
    assert skipped.outcome == "skipped" and not skipped.failed and not skipped.ok
    bad = Check(name="c", measured=2, target=1, ok=False)
    assert Verdict.from_checks("s", "p", [bad, skipped]).status == "fail"
