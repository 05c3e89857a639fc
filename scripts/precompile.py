"""Byte-compile what Gauntlet actually imports, after `pip install --no-compile`.

pip's own compile step byte-compiles every file of every wheel (all of torch): about two thirds
of a fresh install here (161 s -> 52 s without it). Importing the modules that run writes their
.pyc instead (~20 s), so replicas do not recompile torch on every start, even where
PYTHONDONTWRITEBYTECODE is set for everything else. Called by ./run after an install.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

GROUPS = (
    # gevent monkey-patches ssl/threading: locust must be the first import of its process.
    "import locust, locust.main",
    "import torch, transformers, safetensors, tokenizers, fastapi, uvicorn, httpx, kubernetes, "
    "numpy, chaoslib, chaostoolkit, matplotlib.pyplot, jinja2, rich, tenacity, yaml, click, "
    "psutil, pydantic_settings, pytest\n"
    "from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast\n"
    "import reference_service.server, reference_service.loader, reference_service.engine\n"
    "import harness.cli, harness.run.engine, harness.chaos.control",
)


def main() -> int:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for code in GROUPS:
        proc = subprocess.run(
            [sys.executable, "-W", "ignore", "-c", code],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        if proc.returncode != 0:  # not fatal: modules then compile in memory at import
            warnings.warn(
                f"precompile of {code.split()[1]}... failed: {proc.stderr.strip()[-300:]}",
                stacklevel=1,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
