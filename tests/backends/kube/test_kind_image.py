"""issue 18 item 1: one build path for the reference image (kind backend and image_smoke.sh).

The steps are checked with a recording runner (no Docker needed); the real build ran through
`python -m harness.backends.kind_image` (docs/kubernetes.md has the timings).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from harness.backends import kind_image
from harness.backends.kind_image import CONTEXT_PATHS, WHEELS, build_reference_image

REPO = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO / "reference_service" / "Dockerfile"


class Recorder:
    def __init__(self, have: set[str]) -> None:
        self.have = have
        self.calls: list[list[str]] = []
        self.context_seen: dict[str, bool] = {}

    def __call__(self, cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(cmd)
        if cmd[:3] == ["docker", "image", "inspect"]:
            return subprocess.CompletedProcess(cmd, 0 if cmd[3] in self.have else 1, "", "")
        if cmd[:2] == ["docker", "build"]:
            ctx = Path(cmd[-1])
            dockerfile = Path(cmd[cmd.index("-f") + 1])
            self.context_seen = {
                "wheels": (ctx / "wheels").is_dir(),
                "dockerfile_inside": dockerfile.is_relative_to(ctx) and dockerfile.exists(),
                **{p: (ctx / p).exists() for p in CONTEXT_PATHS},
            }
        return subprocess.CompletedProcess(cmd, 0, "", "")


def test_missing_base_is_made_with_debootstrap_and_docker_import(tmp_path: Path) -> None:
    rec = Recorder(have=set())
    res = build_reference_image("img:t", root=REPO, runner=rec, workdir=tmp_path)
    assert res.base_built
    names = [" ".join(c[:2]) for c in rec.calls]
    assert names.index("debootstrap --variant=minbase") < names.index("docker import")
    assert rec.calls[names.index("docker import")][-1] == kind_image.DEFAULT_BASE
    assert names.index("docker import") < names.index("docker build")


def test_build_uses_a_prepared_context_with_wheels_not_the_repo_root(tmp_path: Path) -> None:
    rec = Recorder(have={kind_image.DEFAULT_BASE})
    res = build_reference_image("img:t", root=REPO, runner=rec, workdir=tmp_path)
    assert not res.base_built
    assert not any(c[0] == "debootstrap" for c in rec.calls)
    (build,) = [c for c in rec.calls if c[:2] == ["docker", "build"]]
    assert f"BASE_IMAGE={kind_image.DEFAULT_BASE}" in build
    assert Path(build[-1]) != REPO  # what the old kind backend did: no wheels/ there
    assert all(rec.context_seen.values()), rec.context_seen
    (download,) = [c for c in rec.calls if "download" in c]
    assert download[download.index("--dest") + 1].endswith("wheels")


def test_the_context_holds_everything_the_dockerfile_copies() -> None:
    text = DOCKERFILE.read_text()
    sources: set[str] = set()
    for line in text.splitlines():
        m = re.match(r"COPY\s+(?!--from)(.+)\s+\S+$", line.strip())
        if m:
            sources.update(s.rstrip("/") for s in m.group(1).split())
    assert sources, "no COPY found"
    assert sources <= {*CONTEXT_PATHS, "wheels"}, sources - {*CONTEXT_PATHS, "wheels"}
    assert re.search(r"^ARG BASE_IMAGE=" + re.escape(kind_image.DEFAULT_BASE), text, re.M)


def test_the_host_downloads_what_the_dockerfile_installs() -> None:
    text = DOCKERFILE.read_text()
    torch = re.search(r'ARG TORCH_SPEC="([^"]+)"', text)
    assert torch and torch.group(1) in WHEELS
    transformers = re.search(r"ARG TRANSFORMERS_VERSION=(\S+)", text)
    assert transformers and f"transformers=={transformers.group(1)}" in WHEELS
    for spec in WHEELS:
        if spec.startswith(("torch==", "transformers==")):
            continue
        assert f'"{spec}"' in text or f" {spec}" in text, f"{spec} not in the Dockerfile"


def test_kind_backend_builds_through_the_one_path(monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.backends.kind as kind_mod
    from harness.backends.kind_cluster import KindCluster

    seen: dict[str, Any] = {}

    def fake_build(image: str, **kw: Any) -> kind_image.BuildResult:
        seen.update(image=image, **kw)
        return kind_image.BuildResult(image=image, base_built=False)

    monkeypatch.setattr(kind_mod, "build_reference_image", fake_build)
    loaded: list[str] = []

    class Manager:
        def load_image(self, image: str) -> None:
            loaded.append(image)

    before, after = kind_mod._setup_steps(
        kubectl=None,
        image="gauntlet-inference:dev",
        build_image=True,
        dockerfile=None,
        metrics_server=False,
        metrics_server_manifest=None,
        metrics_pipeline=False,
        metrics_timeout_s=1,
        fake_gpus_per_node=0,
    )
    cluster = KindCluster.__new__(KindCluster)
    cluster.name = "gauntlet"
    cluster.manager = Manager()  # type: ignore[assignment]
    for step in before:  # before the cluster is created
        step(cluster)
    assert seen["image"] == "gauntlet-inference:dev" and seen["root"] == REPO
    assert loaded == []
    for step in after:
        step(cluster)
    assert loaded == ["gauntlet-inference:dev"]
