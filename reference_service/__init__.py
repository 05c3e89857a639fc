"""Gauntlet's reference inference service: a small causal LM behind an OpenAI-style API.

Importing this package stays cheap (no torch): the CLI and the harness import it to read
settings; torch and transformers are imported lazily by the model loader and timed as the
"imports" start-up phase.
"""

from __future__ import annotations

__all__ = ["MODEL_PRESETS"]

# Preset names accepted by `gauntlet build-model --preset`; the configs live in model_builder.
MODEL_PRESETS = ("tiny", "small")
