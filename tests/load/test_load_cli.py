"""`gauntlet load` end to end and its input errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.cli import main


def test_cli_writes_load_json(
    loopback_server: Callable[..., str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = loopback_server()
    main(["load", "--target", url, "--rate", "10", "--duration", "1", "--arrival", "constant",
          "--out", str(tmp_path), "--no-progress"])  # fmt: skip
    data = json.loads((tmp_path / "load.json").read_text())
    assert data["requests"] == 10 and data["valid"] is True and data["mode"] == "open"
    assert (tmp_path / data["records_path"]).exists()
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args",
    [
        ["--target", "http://10.1.2.3:80", "--rate", "1"],
        ["--target", "http://127.0.0.1:1", "--body", "{not json"],
        ["--target", "http://127.0.0.1:1", "--rate", "-3"],
        ["--target", "http://127.0.0.1:1", "--factor", "3"],
    ],
)
def test_cli_bad_input_exits_2(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as err:
        main(["load", *args, "--out", str(tmp_path), "--no-progress"])
    assert err.value.code == 2
    assert "error:" in capsys.readouterr().err
    assert not (tmp_path / "load.json").exists()
