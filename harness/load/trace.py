"""Trace replay: arrival times and request lengths from a production trace file.

Two public formats are read as their publishers wrote them:

- the Azure LLM inference trace (CSV; `TIMESTAMP`, `ContextTokens`, `GeneratedTokens`, one row
  per request, timestamps as wall-clock date-times);
- the Mooncake trace (JSON lines; `timestamp` in ms, `input_length`, `output_length`,
  `hash_ids`: the request's prompt as blocks of `block_tokens` tokens, equal ids = an equal
  prefix, as a prefix cache sees it).

Each row becomes one request at its offset from the first row (divided by `time_scale`), with a
prompt of its token count (blocks with equal hash ids get equal text, so shared prefixes stay
shared) and its output length forced where the server allows it. The run's records keep the
row each request replayed (`sample`).
"""

from __future__ import annotations

import csv
import datetime
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from harness.errors import InputError

AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
MOONCAKE_FIELDS = ("timestamp", "input_length", "output_length")
MAX_ROWS = 1_000_000


@dataclass(frozen=True)
class TraceRow:
    offset_s: float  # from the trace's first request, before time_scale
    prompt_tokens: int
    output_tokens: int
    hash_ids: tuple[int, ...] = ()


class TraceReplay(BaseModel):
    """Replay `path` (`LoadSpec.trace`): its arrivals and lengths, sped up by `time_scale`."""

    model_config = ConfigDict(extra="forbid")

    path: Path
    format: Literal["auto", "azure", "mooncake"] = Field(
        "auto", description="auto: .csv is Azure, .jsonl/.json Mooncake"
    )
    time_scale: float = Field(
        1.0, gt=0, le=1000, description="replay this many times faster than recorded"
    )
    max_rows: int | None = Field(None, ge=1, le=MAX_ROWS, description="replay the first N rows")
    block_tokens: int = Field(512, ge=1, description="Mooncake: tokens per hash-id block")
    tokenizer: Literal["server"] | Path | None = Field(
        None, description="exact prompts: a local tokenizer folder, or `server` (its /tokenize)"
    )
    force_output: bool = Field(True, description="send ignore_eos + min_tokens = max_tokens")
    chat: bool = Field(False, description="messages (chat completions) instead of prompt")

    _rows: list[TraceRow] | None = PrivateAttr(default=None)

    def rows(self) -> list[TraceRow]:
        """The replayed rows, sorted by time (read once)."""
        if self._rows is None:
            self._rows = read_trace(self.path, self.format)[: self.max_rows]
        return self._rows

    def offsets(self) -> np.ndarray:
        """Intended send times (s from the run start) of every replayed row."""
        return np.asarray([r.offset_s for r in self.rows()], dtype=float) / self.time_scale

    def natural_duration(self) -> float:
        """Up to the last arrival, plus one second for it to be due inside the run."""
        off = self.offsets()
        return float(off[-1]) + 1.0 if len(off) else 1.0


def _fmt(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    if path.suffix.lower() == ".csv":
        return "azure"
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        return "mooncake"
    raise InputError(
        f"cannot tell the trace format from {path.suffix!r}",
        file=path,
        field="trace.format",
        fix="name it .csv (Azure) or .jsonl (Mooncake), or set format: azure | mooncake",
    )


def read_trace(path: Path, fmt: str = "auto") -> list[TraceRow]:
    """Rows of an Azure (CSV) or Mooncake (JSONL) trace, sorted by time; errors name the file,
    the line and the field."""
    path = Path(path)
    kind = _fmt(path, fmt)
    try:
        text = path.read_text()
    except OSError as err:
        raise InputError(f"cannot read trace: {err}", file=path, field="trace.path") from err
    rows = _azure(path, text) if kind == "azure" else _mooncake(path, text)
    if not rows:
        raise InputError("the trace has no request rows", file=path, fix="a non-empty trace")
    rows.sort(key=lambda r: r.offset_s)
    t0 = rows[0].offset_s
    return [TraceRow(r.offset_s - t0, r.prompt_tokens, r.output_tokens, r.hash_ids) for r in rows]


def _count(value: Any, path: Path, where: str) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise InputError(
            f"{value!r} is not a token count", file=path, field=where, fix="a whole number >= 1"
        ) from None
    if n < 1:
        raise InputError(f"token count {n} < 1", file=path, field=where, fix="a count >= 1")
    return n


def _azure(path: Path, text: str) -> list[TraceRow]:
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in AZURE_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise InputError(
            f"missing Azure trace columns {', '.join(missing)}",
            file=path,
            field="header",
            fix="the Azure LLM inference trace header: TIMESTAMP,ContextTokens,GeneratedTokens",
        )
    out = []
    for i, row in enumerate(reader, start=2):
        stamp = row["TIMESTAMP"]
        try:
            # the published files carry 7 fractional digits; Python parses up to 6
            head, _, frac = stamp.strip().partition(".")
            when = datetime.datetime.fromisoformat(head + (f".{frac[:6]}" if frac else ""))
        except ValueError:
            raise InputError(
                f"TIMESTAMP {stamp!r} is not a date-time",
                file=path,
                field=f"line {i}: TIMESTAMP",
                fix="e.g. 2023-11-16 18:15:46.6805900",
            ) from None
        out.append(
            TraceRow(
                when.replace(tzinfo=datetime.UTC).timestamp(),
                _count(row["ContextTokens"], path, f"line {i}: ContextTokens"),
                _count(row["GeneratedTokens"], path, f"line {i}: GeneratedTokens"),
            )
        )
        if len(out) > MAX_ROWS:
            break
    return out


def _mooncake(path: Path, text: str) -> list[TraceRow]:
    out = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as err:
            raise InputError(f"not JSON: {err}", file=path, field=f"line {i}") from None
        if not isinstance(obj, dict) or any(k not in obj for k in MOONCAKE_FIELDS):
            raise InputError(
                f"a Mooncake row needs {', '.join(MOONCAKE_FIELDS)}",
                file=path,
                field=f"line {i}",
                fix='e.g. {"timestamp": 0, "input_length": 120, "output_length": 16}',
            )
        ts = obj["timestamp"]
        if isinstance(ts, bool) or not isinstance(ts, int | float) or ts < 0:
            raise InputError(
                f"timestamp {ts!r} is not a time in ms", file=path, field=f"line {i}: timestamp"
            )
        ids = obj.get("hash_ids") or []
        if not isinstance(ids, list) or not all(isinstance(h, int) for h in ids):
            raise InputError(
                "hash_ids must be a list of integers", file=path, field=f"line {i}: hash_ids"
            )
        out.append(
            TraceRow(
                float(ts) / 1000.0,
                _count(obj["input_length"], path, f"line {i}: input_length"),
                _count(obj["output_length"], path, f"line {i}: output_length"),
                tuple(ids),
            )
        )
        if len(out) > MAX_ROWS:
            break
    return out
