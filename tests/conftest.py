"""Fixtures shared by every test folder.

`tiny_model` is the model the local overlay's manifests read (GAUNTLET_MODEL_DIR, hostPath
/tmp/gauntlet/models/tiny). It is built by the local backend's own step for the
`gauntlet.dev/model-preset` annotation (`ensure_model`: `gauntlet build-model` in a subprocess,
once, under a file lock), so a fresh machine builds it and later sessions reuse it.
tests/service builds a separate copy into a temporary folder (`tiny_model_dir`): those tests
check the builder itself (same seed, same bytes).
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOCAL_OVERLAY = ROOT / "manifests" / "overlays" / "local"


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    from harness.backends.local.assets import ensure_model, model_to_prepare
    from harness.manifests.render import render

    deployment = render(LOCAL_OVERLAY).deployment
    wanted = model_to_prepare(deployment)
    assert wanted is not None, f"{LOCAL_OVERLAY}: no gauntlet.dev/model-preset annotation"
    preset, out = wanted
    assert preset == "tiny", f"{LOCAL_OVERLAY}: model preset {preset!r}, expected tiny"
    ensure_model(deployment)
    weights = out / "model.safetensors"
    assert weights.is_file(), (
        f"{out} has config.json but no {weights.name} (an interrupted "
        f"build?): remove {out} and rerun"
    )
    return out
