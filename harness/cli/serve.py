"""`gauntlet serve` (the reference inference service) and `gauntlet build-model`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from harness.errors import InputError, from_validation_error


@click.command()
@click.option(
    "--model-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Model folder from `gauntlet build-model` [env GAUNTLET_MODEL_DIR].",
)
@click.option("--host", default=None, help="Bind address [env GAUNTLET_HOST, default 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [env GAUNTLET_PORT, default 8000].")
@click.option(
    "--max-num-seqs", type=int, default=None, help="Running batch size [env GAUNTLET_MAX_NUM_SEQS]."
)
@click.option(
    "--max-num-batched-tokens",
    type=int,
    default=None,
    help="Tokens per engine step [env GAUNTLET_MAX_NUM_BATCHED_TOKENS].",
)
@click.option("--max-queue", type=int, default=None, help="[env GAUNTLET_MAX_QUEUE]")
@click.option("--torch-threads", type=int, default=None, help="[env GAUNTLET_TORCH_THREADS]")
@click.option(
    "--engine-process/--no-engine-process",
    default=None,
    help="Run the engine in a process of its own, as vLLM's EngineCore [env "
    "GAUNTLET_ENGINE_PROCESS, default off].",
)
@click.option(
    "--debug-endpoints/--no-debug-endpoints",
    default=None,
    help="Enable /debug/hang and /debug/allocate [env GAUNTLET_DEBUG_ENDPOINTS].",
)
def serve(**options: Any) -> None:
    """Serve the reference model (settings also from GAUNTLET_* env vars; options win)."""
    from reference_service.config import ServiceSettings

    given = {k: v for k, v in options.items() if v is not None}
    try:
        settings = ServiceSettings(**given)
    except ValidationError as err:
        raise from_validation_error(err, file="GAUNTLET_* environment / options") from None
    if settings.model_dir is None:
        raise InputError(
            "no model folder given",
            field="GAUNTLET_MODEL_DIR / --model-dir",
            fix="run `gauntlet build-model --preset tiny --out DIR` and pass --model-dir DIR",
        )
    if not (settings.model_dir / "config.json").is_file():
        raise InputError(
            "not a model folder (no config.json)",
            file=settings.model_dir,
            field="GAUNTLET_MODEL_DIR / --model-dir",
            fix="point it at a folder written by `gauntlet build-model`",
        )
    from reference_service.server import run_server

    run_server(settings)


@click.command("build-model")
@click.option("--preset", type=click.Choice(["tiny", "small"]), default="tiny", show_default=True)
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder to write (config, model.safetensors, tokenizer).",
)
@click.option(
    "--seed", type=int, default=None, help="RNG seed (default 1234); same seed = same bytes."
)
def build_model(preset: str, out: Path, seed: int | None) -> None:
    """Build the reference causal LM locally (no download)."""
    from reference_service.model_builder import DEFAULT_SEED
    from reference_service.model_builder import build_model as build

    if out.exists() and not out.is_dir():
        raise InputError(
            "exists and is not a folder", file=out, field="--out", fix="choose a new folder path"
        )
    summary = build(preset, out, DEFAULT_SEED if seed is None else seed)
    click.echo(json.dumps(summary))
