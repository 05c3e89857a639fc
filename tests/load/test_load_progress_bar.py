"""The live status line; the workers import the installed harness (no PYTHONPATH, any cwd)."""

from __future__ import annotations

import ast
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from rich.console import Console

from harness.load import LoadSpec, run_load
from harness.load import progress_bar as bar


@dataclass
class _FakeLoad:
    spec: LoadSpec
    polls_left: int = 0
    counts: dict[str, float] = field(
        default_factory=lambda: {
            "t": 2.0, "sent": 40, "ok": 38, "errors": 1, "dropped": 1, "in_flight": 3
        }
    )  # fmt: skip

    @property
    def running(self) -> bool:
        self.polls_left -= 1
        return self.polls_left >= 0

    def progress(self) -> dict[str, float]:
        return self.counts


def _spec() -> LoadSpec:
    return LoadSpec(target="http://127.0.0.1:9", rate_rps=20, duration_s=5, arrival="constant")


def test_status_line_shows_rate_and_counts() -> None:
    text = bar.render(_FakeLoad(_spec())).plain
    assert text.startswith("load open [20 req/s constant")
    assert "2.0/5 s" in text and "sent 40 (20/s)" in text and "ok 38" in text
    assert "errors 1" in text and "dropped 1" in text and "in-flight 3" in text


def test_show_progress_returns_when_the_load_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(bar, "Console", lambda file: Console(file=out, width=200))
    monkeypatch.setattr(bar.time, "sleep", lambda s: None)
    bar.show_progress(_FakeLoad(_spec(), polls_left=3))
    assert "sent 40" in out.getvalue()


def test_progress_bar_does_not_import_the_runner() -> None:
    """No import cycle: the bar knows a running load only by its protocol (`LiveLoad`)."""
    tree = ast.parse(Path(bar.__file__).read_text())
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert "harness.load.runner" not in imported
    assert not any(m == "harness.load" or m.startswith("harness.load.runner") for m in imported)


def test_worker_imports_the_installed_package_without_pythonpath_or_cwd(
    loopback_server: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.chdir(tmp_path)  # nor from the working directory
    url = loopback_server()
    spec = LoadSpec(target=url, rate_rps=10, duration_s=1, arrival="constant", workers=2)
    r = run_load(spec, Path("out"))  # relative: the workers run in out/workers, not here
    assert r.valid, r.invalid_reasons
    assert r.ok == r.requests == 10
    assert (tmp_path / "out" / "load.json").is_file()
