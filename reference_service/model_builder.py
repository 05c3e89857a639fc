"""Build the reference causal LM from a config with a fixed seed (no download, same seed = same
bytes).

Presets: `tiny` (~3 M parameters, fast enough for CI on 2 cores) and `small` (~100 M).
Weights are saved as safetensors (memory-mappable) and every file is made readable by all
users, so a non-root container can load a model built by root.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

from reference_service.tokenizer import VOCAB_SIZE, save_tokenizer

# LlamaConfig keyword arguments per preset (vocab/special ids are added by `llama_config`).
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        hidden_size=256,
        intermediate_size=688,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=1024,
    ),
    "small": dict(
        hidden_size=768,
        intermediate_size=2048,
        num_hidden_layers=14,
        num_attention_heads=12,
        num_key_value_heads=12,
        max_position_embeddings=2048,
    ),
}
DEFAULT_SEED = 1234
# Bumped when what a built folder holds changes (2: the tokenizer carries a chat template), so
# a folder from an older builder is rebuilt rather than served without what is now expected.
MODEL_FORMAT = 2
MARKER = "gauntlet-model.txt"


def is_current(out_dir: Path) -> bool:
    """Whether `out_dir` holds a model written by this builder's format."""
    try:
        lines = (out_dir / MARKER).read_text().splitlines()
    except OSError:
        return False
    return f"format={MODEL_FORMAT}" in lines and (out_dir / "config.json").is_file()


def llama_config(preset: str) -> Any:
    from transformers import LlamaConfig

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    return LlamaConfig(
        vocab_size=VOCAB_SIZE,
        bos_token_id=256,
        eos_token_id=257,
        pad_token_id=258,
        tie_word_embeddings=False,
        rms_norm_eps=1e-5,
        initializer_range=0.02,
        dtype="float32",
        **PRESETS[preset],
    )


def build_model(preset: str, out_dir: Path, seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """Write config, safetensors weights and tokenizer into `out_dir`; return a summary."""
    import torch
    from transformers import LlamaForCausalLM

    config = llama_config(preset)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    with torch.no_grad():
        model = LlamaForCausalLM(config)
        # Larger-than-default output weights give the random model non-degenerate greedy text.
        model.lm_head.weight.normal_(0.0, 0.2, generator=torch.Generator().manual_seed(seed))
    model.eval()
    model.save_pretrained(str(out_dir), safe_serialization=True)
    save_tokenizer(out_dir)
    (out_dir / MARKER).write_text(f"preset={preset}\nseed={seed}\nformat={MODEL_FORMAT}\n")
    make_world_readable(out_dir)
    params = sum(p.numel() for p in model.parameters())
    return {
        "preset": preset,
        "seed": seed,
        "parameters": params,
        "out": str(out_dir),
        "digest": tree_digest(out_dir),
    }


def make_world_readable(root: Path) -> None:
    """chmod a+r on files, a+rx on folders (the container user is not the builder)."""
    root.chmod(
        root.stat().st_mode
        | stat.S_IRUSR
        | stat.S_IRGRP
        | stat.S_IROTH
        | stat.S_IXUSR
        | stat.S_IXGRP
        | stat.S_IXOTH
    )
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            p = Path(dirpath, name)
            p.chmod(p.stat().st_mode | 0o555)
        for name in filenames:
            p = Path(dirpath, name)
            p.chmod(p.stat().st_mode | 0o444)


def tree_digest(root: Path) -> str:
    """sha256 over the relative paths and bytes of every file (used to prove determinism)."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode())
        h.update(b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()
