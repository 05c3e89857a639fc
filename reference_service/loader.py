"""Model loading, split into the timed cold-start phases Gauntlet reports.

Phases (seconds, in order): `imports` (torch + transformers), `storage_delay` (the emulated
slow storage of GAUNTLET_STARTUP_DELAY_S, never folded into weights), `weights`
(`from_pretrained`, memory-mapped safetensors) and `warmup` (first batched forward passes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reference_service.config import ServiceSettings

PHASES = ("imports", "storage_delay", "weights", "warmup")


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    device: str
    dtype: str
    name: str
    phases: dict[str, float] = field(default_factory=dict)


def resolve_device(settings: ServiceSettings, torch: Any) -> str:
    if settings.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return settings.device


def resolve_dtype(settings: ServiceSettings, device: str) -> str:
    if settings.dtype != "auto":
        return settings.dtype
    return "bfloat16" if device == "cuda" else "float32"


def load_model(settings: ServiceSettings, phases: dict[str, float]) -> LoadedModel:
    """Import, wait for 'storage', load weights; fills `phases` as each one ends (warm-up is the
    engine's)."""
    if settings.model_dir is None:
        raise ValueError("no model folder: set GAUNTLET_MODEL_DIR or pass --model-dir")
    model_dir = Path(settings.model_dir)
    t0 = time.perf_counter()
    import torch
    import transformers
    from transformers import AutoConfig, AutoTokenizer
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    # Resolve the model class now so its (lazy) module import counts as "imports", not "weights".
    model_class: Any = MODEL_FOR_CAUSAL_LM_MAPPING[type(AutoConfig.from_pretrained(str(model_dir)))]
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    phases["imports"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    if settings.startup_delay_s > 0:
        time.sleep(settings.startup_delay_s)
    phases["storage_delay"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    device = resolve_device(settings, torch)
    dtype = resolve_dtype(settings, device)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    tokenizer.padding_side = "left"
    model = model_class.from_pretrained(
        str(model_dir), dtype=getattr(torch, dtype), attn_implementation="sdpa"
    )
    model.to(device)
    model.eval()
    phases["weights"] = time.perf_counter() - t0
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        device=device,
        dtype=dtype,
        name=settings.model_name or model_dir.resolve().name,
        phases=phases,
    )
