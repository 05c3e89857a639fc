"""The load generator as a Job's pod runs it: `python -m harness.load.incluster`.

It reads a LoadSpec as JSON from $GAUNTLET_LOAD_SPEC, runs it with the ordinary engine
(`harness.load.runner`: the same locust workers, the same records) and prints everything the
harness needs on stdout, which the kube backend reads back through the pod's log:

    GAUNTLET-LOAD {"event": "started", "started_at": ...}     once the schedule's clock starts
    GAUNTLET-LOAD {"event": "progress", "sent": ..., ...}     every PROGRESS_S
    GAUNTLET-LOAD-RESULT-BEGIN {"bytes": n, "sha256": "..."}
    <base64 of a zip holding load.json and records.npy, LINE_CHARS per line>
    GAUNTLET-LOAD-RESULT-END
    GAUNTLET-LOAD {"event": "error", "error": "..."}          instead of a result, exit code 1

Short lines: container runtimes split log lines longer than 16 KiB. SIGTERM (the pod deleted,
the Job stopped) stops the load gracefully, as Ctrl-C does locally: the result of what ran is
still printed within the pod's termination grace period.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import signal
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

SPEC_ENV = "GAUNTLET_LOAD_SPEC"
OUT_ENV = "GAUNTLET_LOAD_OUT"
DEFAULT_OUT = "/tmp/gauntlet-load"
EVENT = "GAUNTLET-LOAD "
BEGIN = "GAUNTLET-LOAD-RESULT-BEGIN "
END = "GAUNTLET-LOAD-RESULT-END"
LINE_CHARS = 4096
PROGRESS_S = 2.0


class GeneratorOutputError(RuntimeError):
    """The generator's output holds no usable result (its error, or a cut/corrupt payload)."""


def _emit(out: IO[str], event: str, **data: Any) -> None:
    out.write(EVENT + json.dumps({"event": event, **data}) + "\n")
    out.flush()


def pack_result(out_dir: Path) -> bytes:
    """load.json and records.npy of a finished run, zipped."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.write(out_dir / "load.json", "load.json")
        if (out_dir / "records.npy").exists():
            z.write(out_dir / "records.npy", "records.npy")
    return buf.getvalue()


def emit_result(out: IO[str], payload: bytes) -> None:
    text = base64.b64encode(payload).decode()
    head = {"bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}
    out.write(BEGIN + json.dumps(head) + "\n")
    for i in range(0, len(text), LINE_CHARS):
        out.write(text[i : i + LINE_CHARS] + "\n")
    out.write(END + "\n")
    out.flush()


@dataclass
class GeneratorOutput:
    """What a generator printed, parsed (`parse_output`)."""

    started_at: float | None = None
    progress: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    payload: bytes | None = None  # the zip, checked against its announced size and sha256
    payload_problem: str | None = None  # a result began but was cut or corrupt
    log: list[str] = field(default_factory=list)  # every other line (the generator's own log)


def parse_output(text: str) -> GeneratorOutput:
    """Parse a generator's stdout (the pod's log); tolerant of a log cut anywhere."""
    got = GeneratorOutput()
    head: dict[str, Any] | None = None
    chunks: list[str] = []
    ended = False
    for line in text.splitlines():
        line = line.rstrip("\r")
        if head is not None and not ended:
            if line == END:
                ended = True
            else:
                chunks.append(line.strip())
            continue
        if line.startswith(BEGIN):
            try:
                head = json.loads(line[len(BEGIN) :])
            except ValueError:
                got.payload_problem = f"unreadable result header {line[:200]!r}"
            chunks, ended = [], False
            continue
        if line.startswith(EVENT):
            try:
                ev = json.loads(line[len(EVENT) :])
            except ValueError:
                got.log.append(line)
                continue
            kind = ev.pop("event", None)
            if kind == "started":
                got.started_at = float(ev["started_at"])
            elif kind == "progress":
                got.progress = {k: float(v) for k, v in ev.items()}
            elif kind == "error":
                got.error = str(ev.get("error"))
            continue
        got.log.append(line)
    if head is not None:
        if not ended:
            got.payload_problem = "the result was cut off (no end marker)"
        else:
            try:
                payload = base64.b64decode("".join(chunks), validate=True)
            except ValueError as err:
                got.payload_problem = f"the result is not valid base64: {err}"
            else:
                if len(payload) != head.get("bytes") or (
                    hashlib.sha256(payload).hexdigest() != head.get("sha256")
                ):
                    got.payload_problem = "the result does not match its size/sha256"
                else:
                    got.payload = payload
    return got


def unpack_result(payload: bytes, out_dir: Path) -> Any:
    """Write the payload's load.json and records.npy into `out_dir`; the LoadResult read back."""
    from harness.load.result import LoadResult

    out_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(payload)) as z:
        names = set(z.namelist())
        if "load.json" not in names:
            raise GeneratorOutputError("the generator's result holds no load.json")
        (out_dir / "load.json").write_bytes(z.read("load.json"))
        if "records.npy" in names:
            (out_dir / "records.npy").write_bytes(z.read("records.npy"))
    result = LoadResult.load(out_dir)
    if result.records_path and Path(result.records_path).exists():
        result.attach_records(np.load(result.records_path))
    return result


def run(spec_json: str, out_dir: Path, out: IO[str]) -> int:
    """Run the spec and print the protocol above; the exit code (0 with a result)."""
    from harness.load.runner import request_stop_all, start_load
    from harness.load.spec import LoadSpec

    signal.signal(signal.SIGTERM, lambda *_: request_stop_all())
    try:
        spec = LoadSpec.model_validate_json(spec_json)
        handle = start_load(spec, out_dir)
        announced = False
        next_progress = 0.0
        while handle.running:
            if not announced and handle.started_at is not None:
                _emit(out, "started", started_at=handle.started_at)
                announced = True
            if announced and time.monotonic() >= next_progress:
                _emit(out, "progress", **handle.progress())
                next_progress = time.monotonic() + PROGRESS_S
            time.sleep(0.05)
        if not announced and handle.started_at is not None:
            _emit(out, "started", started_at=handle.started_at)
        handle.wait()
    except Exception as err:  # the harness shows it as the load's failure
        _emit(out, "error", error=f"{type(err).__name__}: {err}")
        return 1
    emit_result(out, pack_result(out_dir))
    return 0


def main() -> int:
    raw = os.environ.get(SPEC_ENV)
    if not raw:
        _emit(sys.stdout, "error", error=f"${SPEC_ENV} is empty: no LoadSpec to run")
        return 2
    return run(raw, Path(os.environ.get(OUT_ENV) or DEFAULT_OUT), sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
