"""Request workloads: prompt and output lengths drawn from distributions, prompts built to exact
token counts, output lengths forced where the server allows it.

A `Workload` turns into a pool of `samples` request bodies, drawn once with the run's seed; the
engine cycles through the pool by request number (as GuideLLM's synthetic data has `samples`),
so a bounded run holds a bounded set of bodies, and records keep which sample each request was.

Prompts are exact for a tokenizer: with `tokenizer` (a local Hugging Face tokenizer folder, or
`server`: the target's own /tokenize and /detokenize) a prompt of n tokens is cut from a fixed
text's token ids and checked by re-encoding; without one, prompts are ASCII text of n bytes,
exact for byte-level tokenizers such as the reference model's, and the run says so. Output
lengths are forced with vLLM's `ignore_eos` and `min_tokens` when `force_output` is on (vLLM,
the reference service); the output tokens each stream reports are measured either way.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.errors import InputError
from harness.load.trace import TraceReplay

MAX_LENGTH = 1_000_000
SERVER = "server"  # tokenizer: the target's own /tokenize and /detokenize
CORPUS = (
    "Gauntlet sends this text to measure how an inference service behaves under load. "
    "The quick brown fox jumps over the lazy dog, and every replica must keep its promises "
    "on time to first token, inter-token latency and goodput while faults are injected. "
)


class LengthDist(BaseModel):
    """Token counts: fixed, uniform [min, max], normal / lognormal (mean, std) clipped to
    [min, max], or an empirical table of values (with optional weights)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["fixed", "uniform", "normal", "lognormal", "empirical"] = "fixed"
    mean: float | None = Field(None, gt=0)
    std: float | None = Field(None, ge=0)
    min: int = Field(1, ge=1)
    max: int = Field(MAX_LENGTH, ge=1, le=MAX_LENGTH)
    values: list[int] = Field(default_factory=list)
    weights: list[float] = Field(default_factory=list)

    @model_validator(mode="after")
    def _complete(self) -> LengthDist:
        need = {
            "fixed": ["mean"],
            "uniform": [],
            "normal": ["mean", "std"],
            "lognormal": ["mean", "std"],
            "empirical": ["values"],
        }[self.kind]
        missing = [f for f in need if not getattr(self, f)]
        if missing:
            raise ValueError(f"a {self.kind} length needs {', '.join(missing)}")
        if self.min > self.max:
            raise ValueError(f"min {self.min} > max {self.max}")
        if self.kind == "uniform" and self.max == MAX_LENGTH:
            raise ValueError("a uniform length needs max")
        if self.weights and len(self.weights) != len(self.values):
            raise ValueError("weights must match values one to one")
        return self

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.kind == "fixed":
            raw = np.full(n, float(self.mean or 1))
        elif self.kind == "uniform":
            raw = rng.integers(self.min, self.max + 1, size=n).astype(float)
        elif self.kind == "normal":
            raw = rng.normal(float(self.mean or 1), float(self.std or 0), size=n)
        elif self.kind == "lognormal":
            # parameters of the underlying normal that give this mean and std
            m, s = float(self.mean or 1), float(self.std or 0)
            sigma2 = np.log1p((s / m) ** 2)
            raw = rng.lognormal(np.log(m) - sigma2 / 2, np.sqrt(sigma2), size=n)
        else:
            w = np.asarray(self.weights or [1.0] * len(self.values), dtype=float)
            raw = rng.choice(np.asarray(self.values, dtype=float), size=n, p=w / w.sum())
        return np.clip(np.rint(raw), self.min, self.max).astype(np.int64)


class SharedPrefix(BaseModel):
    """Every prompt starts with one of `groups` prefixes of `tokens` tokens (sample i gets
    prefix i mod groups), as a system prompt or a few-shot preamble shared across users is."""

    model_config = ConfigDict(extra="forbid")

    tokens: int = Field(ge=1, le=MAX_LENGTH)
    groups: int = Field(1, ge=1, le=100_000)


class MultiTurn(BaseModel):
    """Samples grouped into conversations of `turns` turns: turn k's request carries the whole
    history before it (user turns and assistant turns of their output length), so a server
    sees a conversation's prefix grow. The assistant turns are synthetic text, not the server's
    answers: an open-loop schedule sends turn k+1 at its time, without waiting for turn k."""

    model_config = ConfigDict(extra="forbid")

    turns: int = Field(ge=2, le=64)


class Workload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt_tokens: LengthDist
    output_tokens: LengthDist
    samples: int = Field(256, ge=1, le=100_000, description="distinct request bodies")
    tokenizer: Literal["server"] | Path | None = Field(
        None,
        description="exact prompts: a local tokenizer folder, or `server` (the target's "
        "/tokenize and /detokenize, as vLLM has them)",
    )
    force_output: bool = Field(True, description="send ignore_eos + min_tokens = max_tokens")
    chat: bool = Field(False, description="messages (chat completions) instead of prompt")
    shared_prefix: SharedPrefix | None = Field(
        None, description="prompts share prefixes (counted in prompt_tokens)"
    )
    multi_turn: MultiTurn | None = Field(
        None, description="conversations (needs chat); prompt_tokens is each new user turn"
    )

    @model_validator(mode="after")
    def _prefix_fits(self) -> Workload:
        sp = self.shared_prefix
        if self.multi_turn is not None and not self.chat:
            raise ValueError("multi_turn needs chat: true (a conversation is chat messages)")
        if self.multi_turn is not None and self.shared_prefix is not None:
            raise ValueError("multi_turn and shared_prefix: a conversation's history is its prefix")
        p = self.prompt_tokens
        shortest = int(p.mean or 1) if p.kind == "fixed" else p.min
        if sp is not None and sp.tokens >= shortest:
            raise ValueError(
                f"shared_prefix.tokens ({sp.tokens}) must be below the shortest prompt "
                f"({'the fixed length' if p.kind == 'fixed' else 'prompt_tokens.min'} "
                f"{shortest}): every prompt holds its prefix"
            )
        return self


class SamplePool(BaseModel):
    """The bodies a run cycles through, with each one's intended lengths."""

    bodies: list[dict[str, Any]]
    prompt_tokens: list[int]
    output_tokens: list[int]
    exact_prompts: bool = Field(description="prompt lengths were checked with a tokenizer")


class _LocalTokenizer:
    """A Hugging Face tokenizer folder on this machine."""

    def __init__(self, folder: Path) -> None:
        try:
            from transformers import AutoTokenizer

            self.tok = AutoTokenizer.from_pretrained(str(folder))
        except Exception as err:
            raise InputError(
                f"cannot load a tokenizer from {folder}: {err}",
                field="workload.tokenizer",
                fix="point it at a local Hugging Face tokenizer folder (tokenizer.json)",
            ) from err

    def encode(self, text: str) -> list[int]:
        return list(self.tok.encode(text, add_special_tokens=False))

    def decode(self, ids: list[int]) -> str:
        return str(self.tok.decode(ids))


class _ServerTokenizer:
    """The target's own `POST /tokenize` and `/detokenize` (vLLM's, and the reference
    service's): exact for whatever tokenizer the server runs."""

    def __init__(self, target: str | None) -> None:
        if not target:
            raise InputError(
                "tokenizer: server needs the load's target", field="workload.tokenizer"
            )
        import httpx

        self.http = httpx.Client(base_url=target.rstrip("/"), timeout=30.0)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        import httpx

        try:
            resp = self.http.post(path, json=body)
            resp.raise_for_status()
            out: dict[str, Any] = resp.json()
            return out
        except (httpx.HTTPError, ValueError) as err:
            raise InputError(
                f"the target's {path} failed: {err}",
                field="workload.tokenizer",
                fix="a server with vLLM's /tokenize and /detokenize, or a local tokenizer folder",
            ) from err

    def encode(self, text: str) -> list[int]:
        return [
            int(t)
            for t in self._post("/tokenize", {"prompt": text, "add_special_tokens": False})[
                "tokens"
            ]
        ]

    def decode(self, ids: list[int]) -> str:
        return str(self._post("/detokenize", {"tokens": ids})["prompt"])


class _Tokens:
    """Prompt text of exactly n tokens for one tokenizer (a local folder, or `server`: the
    target's /tokenize), or n ASCII bytes without one."""

    def __init__(self, tokenizer: Path | str | None, target: str | None = None) -> None:
        self.tok: _LocalTokenizer | _ServerTokenizer | None = None
        if tokenizer == SERVER:
            self.tok = _ServerTokenizer(target)
        elif tokenizer is not None:
            self.tok = _LocalTokenizer(Path(tokenizer))
        if self.tok is not None:  # two copies: short enough for a server's prompt limit
            self.ids: list[int] = self.tok.encode(CORPUS * 2)

    def text(self, n: int, blocks: tuple[int, ...] = (), block_tokens: int = 512) -> str:
        """n tokens; with `blocks` (Mooncake hash ids), block k of the prompt is the corpus read
        from an offset that depends only on its id, so equal ids give an equal prefix."""
        if self.tok is None:
            parts = [_cycle(_rotated(CORPUS, h * 7919), block_tokens) for h in blocks]
            return ("".join(parts) + _cycle(CORPUS, n))[:n]
        id_parts = [_cycle(_rotated(self.ids, h * 7919), block_tokens) for h in blocks]
        ids = [*itertools.chain.from_iterable(id_parts), *_cycle(self.ids, n)][:n]
        text = self.tok.decode(ids)
        got = len(self.tok.encode(text))
        if got != n:  # a merge across the cut: trim or pad with the corpus until it matches
            for _ in range(8):
                text = text[:-1] if got > n else text + CORPUS[0]
                got = len(self.tok.encode(text))
                if got == n:
                    break
        return text


def _rotated(source: Any, k: int) -> Any:
    """`source` (a str or a list) read from offset k, wrapping around."""
    k %= len(source)
    return source[k:] + source[:k]


def _cycle(source: Any, n: int) -> Any:
    """The first n items of `source` repeated."""
    return (source * (n // len(source) + 1))[:n]


def load_workload(path: Path) -> Workload:
    """A workload file (YAML or JSON); errors name the file and field."""
    import yaml
    from pydantic import ValidationError

    from harness.errors import from_validation_error

    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise InputError(f"cannot read workload: {err}", file=path, fix="a YAML mapping") from err
    try:
        workload = Workload.model_validate(data)
    except ValidationError as err:
        raise from_validation_error(err, path) from None
    if isinstance(workload.tokenizer, Path) and not workload.tokenizer.is_absolute():
        workload = workload.model_copy(
            update={"tokenizer": (Path(path).parent / workload.tokenizer).resolve()}
        )
    return workload


def _body(
    keep: dict[str, Any], text: str, output: int, *, chat: bool, force_output: bool
) -> dict[str, Any]:
    body: dict[str, Any] = dict(keep)
    if chat:
        body["messages"] = [{"role": "user", "content": text}]
    else:
        body["prompt"] = text
    body["max_tokens"] = output
    if force_output:
        body.update(ignore_eos=True, min_tokens=output)
    return body


def _base(base: dict[str, Any]) -> dict[str, Any]:
    """What every body keeps from `LoadSpec.body` (model, temperature...)."""
    return {k: v for k, v in base.items() if k not in ("prompt", "messages", "max_tokens")}


def build_pool(
    workload: Workload, base: dict[str, Any], seed: int, target: str | None = None
) -> SamplePool:
    """`samples` bodies: `base` (model, temperature...) plus a prompt and max_tokens each
    (`target`: the server whose /tokenize a `tokenizer: server` workload uses)."""
    rng = np.random.default_rng(seed)
    prompts = workload.prompt_tokens.sample(rng, workload.samples)
    outputs = workload.output_tokens.sample(rng, workload.samples)
    tokens = _Tokens(workload.tokenizer, target)
    keep = _base(base)
    sp, mt = workload.shared_prefix, workload.multi_turn

    def text(i: int, n: int) -> str:
        if sp is not None:
            return tokens.text(n, (i % sp.groups,), sp.tokens)
        if mt is not None:  # every turn its own text: conversations share no prefix by chance
            return tokens.text(n, (i,), n)
        return tokens.text(n)

    bodies = [
        _body(
            keep,
            text(i, p),
            o,
            chat=workload.chat,
            force_output=workload.force_output,
        )
        for i, (p, o) in enumerate(zip(prompts.tolist(), outputs.tolist(), strict=True))
    ]
    if mt is not None:
        _add_history(bodies, outputs.tolist(), mt.turns, tokens)
    return SamplePool(
        bodies=bodies,
        prompt_tokens=prompts.tolist(),
        output_tokens=outputs.tolist(),
        exact_prompts=tokens.tok is not None,
    )


def _add_history(
    bodies: list[dict[str, Any]], outputs: list[int], turns: int, tokens: _Tokens
) -> None:
    """Turn k of each conversation (samples i // turns) gets the turns before it as history;
    each earlier assistant turn is text of that turn's output length."""
    history: list[dict[str, str]] = []
    for i, body in enumerate(bodies):
        if i % turns == 0:
            history = []
        user = body["messages"][-1]
        body["messages"] = [*history, user]
        reply = tokens.text(outputs[i], (1_000_003 + i,), outputs[i])
        history = [*history, user, {"role": "assistant", "content": reply}]


def build_trace_pool(
    trace: TraceReplay, base: dict[str, Any], target: str | None = None
) -> SamplePool:
    """One body per replayed trace row, in the trace's order (request n replays row n)."""
    rows = trace.rows()
    tokens = _Tokens(trace.tokenizer, target)
    keep = _base(base)
    bodies = [
        _body(
            keep,
            tokens.text(r.prompt_tokens, r.hash_ids, trace.block_tokens),
            r.output_tokens,
            chat=trace.chat,
            force_output=trace.force_output,
        )
        for r in rows
    ]
    return SamplePool(
        bodies=bodies,
        prompt_tokens=[r.prompt_tokens for r in rows],
        output_tokens=[r.output_tokens for r in rows],
        exact_prompts=tokens.tok is not None,
    )


def encoded(pool: SamplePool, stream_options: dict[str, Any] | None) -> list[str]:
    """JSON bodies as the worker sends them (streaming switched on when asked)."""
    out = []
    for body in pool.bodies:
        if stream_options is not None:
            body = {**body, "stream": True, "stream_options": stream_options}
        out.append(json.dumps(body, separators=(",", ":")))
    return out
