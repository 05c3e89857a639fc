"""Service settings, read from `GAUNTLET_*` environment variables as a container would get them.

`ServiceSettings()` reads the environment; keyword arguments (CLI options) win over it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ENV_PREFIX = "GAUNTLET_"
# Share of the container memory limit the service lets itself use (the rest is headroom).
MEMORY_SAFETY_FRACTION = 0.8
# cgroup "limits" at or above this are the kernel's way of saying "unlimited".
_UNLIMITED = 1 << 60
_FALLBACK_BUDGET = 4 << 30

try:  # pydantic-settings is declared in pyproject; fall back to plain env reading if absent.
    from pydantic_settings import BaseSettings as _Base
    from pydantic_settings import SettingsConfigDict

    _MODEL_CONFIG: Any = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", case_sensitive=False
    )
except ImportError:  # pragma: no cover - depends on the environment

    class _Base(BaseModel):  # type: ignore[no-redef]
        """Minimal stand-in for pydantic_settings.BaseSettings (env prefix, kwargs win)."""

        def __init__(self, **data: Any) -> None:
            fields = type(self).model_fields
            env = {
                key[len(ENV_PREFIX) :].lower(): value
                for key, value in os.environ.items()
                if key.upper().startswith(ENV_PREFIX) and key[len(ENV_PREFIX) :].lower() in fields
            }
            super().__init__(**{**env, **data})

    _MODEL_CONFIG = ConfigDict(extra="ignore")


def cgroup_memory_limit(
    proc_root: Path = Path("/proc"), cg_root: Path = Path("/sys/fs/cgroup")
) -> int | None:
    """The memory limit of this process's cgroup (v1 or v2), the tightest up the tree; None if
    unlimited."""
    limits: list[int] = []
    try:
        lines = (proc_root / "self" / "cgroup").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        rel = Path(path.lstrip("/"))
        if "memory" in controllers.split(","):
            base, name = cg_root / "memory", "memory.limit_in_bytes"
        elif controllers == "":
            base, name = cg_root, "memory.max"
        else:
            continue
        candidates = [base / p / name for p in [rel, *rel.parents]] + [base / name]
        for file in candidates:
            try:
                text = file.read_text().strip()
            except OSError:
                continue
            if text and text != "max" and text.isdigit() and int(text) < _UNLIMITED:
                limits.append(int(text))
    return min(limits) if limits else None


def default_memory_budget() -> int:
    """Budget = cgroup limit (else physical RAM) x the safety fraction."""
    limit = cgroup_memory_limit()
    if limit is None:
        try:
            import psutil

            limit = int(psutil.virtual_memory().total)
        except Exception:
            limit = _FALLBACK_BUDGET
    return int(limit * MEMORY_SAFETY_FRACTION)


class ServiceSettings(_Base):
    """Every knob of `gauntlet serve`; env var = GAUNTLET_<NAME>."""

    model_config = _MODEL_CONFIG

    model_dir: Path | None = Field(None, description="Folder written by `gauntlet build-model`.")
    model_name: str | None = Field(
        None, description="Name served in /v1/models (default: folder name)."
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    probe_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description=(
            "Also serve /startup /ready /healthz on this port from a thread of their own, so "
            "probes stay fast while the API's event loop is flooded (retry storms, overload)."
        ),
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    torch_threads: int | None = Field(
        None, ge=1, description="torch intra-op threads (default: torch's)."
    )
    max_num_seqs: int = Field(
        32, ge=1, le=1024, description="Sequences in the running batch (vLLM's --max-num-seqs)."
    )
    max_num_batched_tokens: int = Field(
        2048,
        ge=1,
        le=1_000_000,
        description="Tokens per engine step, decode tokens plus new prompts (vLLM's "
        "--max-num-batched-tokens): bounds how long a new prefill can stall the running batch.",
    )
    max_queue: int = Field(
        64, ge=1, le=100_000, description="Waiting requests beyond the running batch."
    )
    max_queue_wait_s: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="A request still waiting this long is shed with 429 (queue_timeout): it "
        "could not start in time for its client.",
    )
    enable_prefix_caching: bool = Field(
        True,
        description="Reuse the KV cache of a prompt seen before (vLLM's "
        "--enable-prefix-caching, on by default there too); whole prompts only.",
    )
    prefix_cache_bytes: int = Field(
        16 << 20, ge=0, description="Memory the prefix cache may hold (least recently used go)."
    )
    engine_process: bool = Field(
        False,
        description="Run the engine in a process of its own (vLLM's EngineCore cut): the HTTP "
        "side and the model step stop sharing one GIL. Costs a second interpreter with torch "
        "imported (~300 MB RSS on CPU); the memory budget counts both processes.",
    )
    max_prompt_tokens: int = Field(512, ge=1)
    max_tokens_limit: int = Field(256, ge=1)
    memory_budget_bytes: int = Field(default_factory=default_memory_budget, ge=1)
    drain_timeout_s: float = Field(25.0, ge=0)
    startup_delay_s: float = Field(
        0.0, ge=0, description="Emulated slow model storage, reported as phase 'storage_delay'."
    )
    liveness_stall_s: float = Field(
        10.0,
        gt=0,
        description="/healthz fails when the inference loop has not beaten for this long.",
    )
    debug_endpoints: bool = False
    log_level: str = "info"

    @model_validator(mode="after")
    def _budget_fits_a_prompt(self) -> ServiceSettings:
        if self.max_num_batched_tokens < self.max_prompt_tokens + 1:
            raise ValueError(
                f"max_num_batched_tokens ({self.max_num_batched_tokens}) must be at least "
                f"max_prompt_tokens + 1 ({self.max_prompt_tokens + 1}): a prompt that does not "
                "fit one step would never start (set GAUNTLET_MAX_NUM_BATCHED_TOKENS higher "
                "or GAUNTLET_MAX_PROMPT_TOKENS lower)"
            )
        return self
