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

from reference_service.admission import ModelShape
from reference_service.config import ServiceSettings

PHASES = ("imports", "storage_delay", "weights", "warmup")
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    device: str
    dtype: str
    name: str
    phases: dict[str, float] = field(default_factory=dict)

    def shape(self) -> ModelShape:
        return ModelShape.from_config(self.model.config, DTYPE_BYTES[self.dtype])


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
    model_dir = require_model_dir(settings)
    t0 = time.perf_counter()
    import torch
    import transformers
    from transformers import AutoConfig
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
    tokenizer = load_tokenizer(model_dir)
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


def require_model_dir(settings: ServiceSettings) -> Path:
    if settings.model_dir is None:
        raise ValueError("no model folder: set GAUNTLET_MODEL_DIR or pass --model-dir")
    return Path(settings.model_dir)


def load_tokenizer(model_dir: Path) -> Any:
    """The model folder's tokenizer (chat template included), left-padding."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    tokenizer.padding_side = "left"
    return tokenizer
