"""The in-cluster generator's entry point (`python -m harness.load.incluster`), run for real
against a loopback server: what it prints is parsed back into the very result it measured."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from harness.load import LoadResult, LoadSpec, incluster

Server = Callable[..., str]


def _spec(url: str, **kw: object) -> LoadSpec:
    kw.setdefault("body", {"prompt": "hi", "max_tokens": 1, "temperature": 0})
    kw.setdefault("arrival", "constant")
    return LoadSpec(target=url, **kw)


def _generator(spec_json: str, out: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, **{incluster.SPEC_ENV: spec_json, incluster.OUT_ENV: str(out)})
    return subprocess.Popen(
        [sys.executable, "-m", "harness.load.incluster"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_printed_result_round_trips_the_generators_own(
    loopback_server: Server, tmp_path: Path
) -> None:
    url = loopback_server("--delay-ms", "20")
    spec = _spec(url, rate_rps=20, duration_s=2, load_path="service")
    pod_out = tmp_path / "pod"
    proc = _generator(spec.model_dump_json(), pod_out)
    stdout, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, stdout
    assert all(len(line) <= incluster.LINE_CHARS + 200 for line in stdout.splitlines())

    got = incluster.parse_output(stdout)
    assert got.error is None and got.payload_problem is None and got.payload is not None
    back = incluster.unpack_result(got.payload, tmp_path / "harness")
    mine = LoadResult.load(pod_out)  # what the generator wrote in its pod
    assert back.model_dump(exclude={"records_path"}) == mine.model_dump(exclude={"records_path"})
    assert back.ok == back.requests == 40 and back.load_path == "service"
    assert got.started_at == pytest.approx(back.started_at)
    assert back.records().tobytes() == np.load(pod_out / "records.npy").tobytes()  # NaNs too
    w = back.window(back.started_at, back.started_at + 1)
    assert w.requests == 20 and w.availability == 1.0
    # load.json in the harness's folder points at the records beside it
    data = json.loads((tmp_path / "harness" / "load.json").read_text())
    assert data["records_path"] == "records.npy"


def test_cut_or_corrupt_output_gives_no_result(loopback_server: Server, tmp_path: Path) -> None:
    payload = b"not really a zip, but bytes to carry" * 500
    import io

    buf = io.StringIO()
    incluster.emit_result(buf, payload)
    text = buf.getvalue()
    assert incluster.parse_output(text).payload == payload
    cut = "\n".join(text.splitlines()[:-1])
    assert incluster.parse_output(cut).payload is None
    assert "cut off" in (incluster.parse_output(cut).payload_problem or "")
    lines = text.splitlines()
    lines[1] = ("A" if lines[1][0] != "A" else "B") + lines[1][1:]
    bad = incluster.parse_output("\n".join(lines))
    assert bad.payload is None and "sha256" in (bad.payload_problem or "")


def test_a_refused_spec_is_an_error_line_and_exit_code(tmp_path: Path) -> None:
    raw = json.dumps({"target": "http://10.1.2.3:80", "duration_s": 1})  # not allowed
    proc = _generator(raw, tmp_path)
    stdout, _ = proc.communicate(timeout=60)
    got = incluster.parse_output(stdout)
    assert proc.returncode == 1 and got.payload is None
    assert got.error is not None and "10.1.2.3" in got.error


def test_sigterm_stops_gracefully_and_still_prints_the_result(
    loopback_server: Server, tmp_path: Path
) -> None:
    url = loopback_server()
    spec = _spec(url, rate_rps=10, duration_s=60, timeout_s=2)
    proc = _generator(spec.model_dump_json(), tmp_path)
    assert proc.stdout is not None
    deadline = time.monotonic() + 90
    lines = []
    while time.monotonic() < deadline:  # the schedule has started
        line = proc.stdout.readline()
        lines.append(line)
        if line.startswith(incluster.EVENT) and '"started"' in line:
            break
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)  # what the kubelet sends when the pod is deleted
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    got = incluster.parse_output("".join(lines) + rest)
    assert got.payload is not None
    res = incluster.unpack_result(got.payload, tmp_path / "back")
    assert res.stopped_early and 5 <= res.requests < 100 and res.ok == res.requests
