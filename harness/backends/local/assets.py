"""What a node would have pulled before starting the container: here, the reference model.

A Deployment whose pod template is annotated `gauntlet.dev/model-preset: tiny|small` and whose
container has `GAUNTLET_MODEL_DIR` gets that model built there (once; later runs reuse it) by
`gauntlet build-model`, in a subprocess so torch never loads into the harness. This is the local
analogue of an image pull and is not part of any cold-start measurement.
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.backends.base import BackendError

PRESET_ANNOTATION = "gauntlet.dev/model-preset"


def model_to_prepare(deployment: dict[str, Any]) -> tuple[str, Path] | None:
    template = deployment.get("spec", {}).get("template", {})
    preset = (template.get("metadata", {}).get("annotations") or {}).get(PRESET_ANNOTATION)
    if not preset:
        return None
    for c in template.get("spec", {}).get("containers", []):
        for e in c.get("env") or []:
            if e.get("name") == "GAUNTLET_MODEL_DIR" and e.get("value"):
                return preset, Path(e["value"])
    return None


def ensure_model(deployment: dict[str, Any], timeout_s: float = 600.0) -> str | None:
    """Build the annotated model if its folder has none (or one from an older builder format);
    returns a message for the event log."""
    from reference_service.model_builder import is_current

    wanted = model_to_prepare(deployment)
    if wanted is None:
        return None
    preset, out = wanted
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent runs build once
        if is_current(out):
            return f"model {preset} already present at {out}"
        cmd = [
            sys.executable,
            "-m",
            "harness.cli",
            "build-model",
            "--preset",
            preset,
            "--out",
            str(out),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        if proc.returncode != 0:
            raise BackendError(
                f"building model {preset} into {out} failed: {proc.stderr.strip()[-500:]}"
            )
        return f"built model {preset} into {out}"
