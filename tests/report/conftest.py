from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import fakes_report
import pytest

from harness import machine_speed
from harness.manifests.bundle import ManifestBundle
from harness.run import options
from harness.scenarios import base as scenarios_base


@pytest.fixture
def manifests_file(tmp_path: Path) -> Path:
    path = tmp_path / "manifests.yaml"
    path.write_text(fakes_report.DEPLOYMENT_YAML)
    return path


@pytest.fixture
def fake_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str]], None]:
    """Swap the scenario registry for fast fakes and the backend for FakeBackend."""
    fakes_report.FakeBackend.created.clear()
    fakes_report.FakeBackend.torn_down.clear()
    # fake scenarios measure nothing of the machine: it is as fast as the profile was sized on
    monkeypatch.setattr(
        machine_speed, "probe", lambda preset="tiny": machine_speed.MachineSpeed(preset, 1.0, "")
    )
    monkeypatch.setattr(
        options, "make_backend_factory", lambda name, opts: fakes_report.fake_factory
    )
    monkeypatch.setattr(
        options,
        "load_manifests",
        lambda path: ManifestBundle.from_yaml(Path(path).read_text(), source=str(path)),
    )

    def use(registry: dict[str, str]) -> None:
        monkeypatch.setattr(
            scenarios_base, "SCENARIOS", {k: f"fakes_report:{v}" for k, v in registry.items()}
        )

    return use
