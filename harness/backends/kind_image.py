"""The ONE build path of the reference image (`reference_service/Dockerfile`), used by the kind
backend and by `scripts/image_smoke.sh` (`python -m harness.backends.kind_image`).

The Dockerfile starts `FROM gauntlet-base:bookworm` and copies `wheels/`, so a build needs three
steps before `docker build`, all offline apart from Debian's mirror and the host's pip config:
1. the base image, when the engine lacks it: `debootstrap --variant=minbase bookworm` piped into
   `docker import` (no registry is needed);
2. a build context with the repo's files the Dockerfile copies;
3. `wheels/`: `pip download` on the host of the pinned service dependencies (the host's pip
   config knows the local wheel folder, e.g. the CPU torch wheel).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.backends.base import BackendError
from harness.errors import SetupError

log = logging.getLogger("harness.backends.kind_image")

DEFAULT_IMAGE = "gauntlet-inference:dev"
DEFAULT_BASE = "gauntlet-base:bookworm"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
#: Where the image bakes the model (`gauntlet build-model --out` and `ENV GAUNTLET_MODEL_DIR` in
#: the Dockerfile); the kind manifests point GAUNTLET_MODEL_DIR here (tests parse the Dockerfile).
IMAGE_MODEL_DIR = "/opt/model"
#: What the Dockerfile copies from the build context.
CONTEXT_PATHS = ("pyproject.toml", "README.md", "harness", "reference_service")
#: The Dockerfile's pip install line, as the host downloads it (python 3.11: bookworm's python3).
WHEELS = (
    "torch==2.13.0+cpu",
    "transformers==5.24.0",
    "tokenizers>=0.23,<0.24",
    "safetensors>=0.8,<0.9",
    "fastapi>=0.165,<0.166",
    "uvicorn>=0.54,<0.55",
    "prometheus-client>=0.26,<0.27",
    "pydantic>=2.14,<3",
    "pydantic-settings>=2.14,<3",
    "click>=8.5,<9",
    "psutil>=7.2,<8",
    "httpx>=0.28,<0.29",
    "pyyaml>=6.0.4,<7",
    "locust==2.47.0",  # the in-cluster load Job runs the generator from this image
    "rich>=15,<16",
    "setuptools>=68",
    "wheel",
)
IMAGE_PYTHON = "3.11"

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


@dataclass
class BuildResult:
    image: str
    base_built: bool
    seconds: dict[str, float] = field(default_factory=dict)  # step -> wall seconds


def _run(cmd: Sequence[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload]


def image_exists(image: str, runner: Runner = _run) -> bool:
    return runner(["docker", "image", "inspect", image]).returncode == 0


def _check(res: subprocess.CompletedProcess[str], what: str) -> None:
    if res.returncode != 0:
        tail = (res.stderr or res.stdout or "").strip()[-800:]
        raise BackendError(f"{what} failed (exit {res.returncode}): {tail}")


def build_base_image(base: str, workdir: Path, runner: Runner = _run) -> None:
    """`debootstrap --variant=minbase bookworm` + `docker import` (root and debootstrap needed)."""
    if shutil.which("debootstrap") is None and runner is _run:
        raise SetupError(
            f"base image {base} is not in the docker engine and debootstrap is missing "
            "(Debian: `apt-get install debootstrap`, or pass --base with an image you have)"
        )
    rootfs = workdir / "rootfs"
    log.info("making base image %s: debootstrap --variant=minbase %s", base, DEBIAN_SUITE)
    _check(
        runner(
            ["debootstrap", "--variant=minbase", DEBIAN_SUITE, str(rootfs), DEBIAN_MIRROR],
            timeout=1800,
        ),
        "debootstrap",
    )
    tarball = workdir / "rootfs.tar"
    _check(runner(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], timeout=600), "tar")
    _check(runner(["docker", "import", str(tarball), base], timeout=600), "docker import")
    shutil.rmtree(rootfs, ignore_errors=True)
    tarball.unlink(missing_ok=True)


def prepare_context(root: Path, context: Path, runner: Runner = _run) -> None:
    """The files the Dockerfile copies, plus `wheels/` from `pip download` on the host."""
    context.mkdir(parents=True, exist_ok=True)
    for name in CONTEXT_PATHS:
        src = root / name
        if not src.exists():
            raise SetupError(f"{src} not found: the image build needs gauntlet's source checkout")
        if src.is_dir():
            shutil.copytree(src, context / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, context / name)
    wheels = context / "wheels"
    wheels.mkdir(exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "-q",
        "--dest",
        str(wheels),
        "--python-version",
        IMAGE_PYTHON,
        "--only-binary=:all:",
        *WHEELS,
    ]
    _check(runner(cmd, timeout=1800), "pip download of the image's wheels")


def build_reference_image(
    image: str = DEFAULT_IMAGE,
    *,
    root: Path,
    base: str = DEFAULT_BASE,
    dockerfile: Path | None = None,
    runner: Runner = _run,
    workdir: Path | None = None,
) -> BuildResult:
    """Base image (if missing), context with wheels, then `docker build` of `image`."""
    dockerfile = dockerfile or root / "reference_service" / "Dockerfile"
    if not dockerfile.exists():
        raise SetupError(f"{dockerfile} not found: cannot build {image}")
    result = BuildResult(image=image, base_built=False)
    with tempfile.TemporaryDirectory(prefix="gauntlet-image-", dir=workdir) as tmp:
        work = Path(tmp)
        t0 = time.monotonic()
        if not image_exists(base, runner):
            build_base_image(base, work, runner)
            result.base_built = True
            result.seconds["base"] = round(time.monotonic() - t0, 1)
        t0 = time.monotonic()
        context = work / "context"
        prepare_context(root, context, runner)
        result.seconds["context"] = round(time.monotonic() - t0, 1)
        # the Dockerfile from the prepared context, so a build reads only what was copied
        inside = context / dockerfile.relative_to(root) if dockerfile.is_relative_to(root) else None
        df = inside if inside is not None and inside.exists() else dockerfile
        t0 = time.monotonic()
        log.info("docker build -t %s (base %s) from %s", image, base, context)
        _check(
            runner(
                [
                    "docker",
                    "build",
                    "--network",
                    "host",
                    "--build-arg",
                    f"BASE_IMAGE={base}",
                    "-f",
                    str(df),
                    "-t",
                    image,
                    str(context),
                ],
                timeout=3600,
            ),
            f"docker build of {image}",
        )
        result.seconds["build"] = round(time.monotonic() - t0, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    """`python -m harness.backends.kind_image [--image I] [--base B]`: what image_smoke.sh runs."""
    from harness.resources import source_checkout

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--image", default=DEFAULT_IMAGE)
    p.add_argument("--base", default=DEFAULT_BASE)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[image-build] %(message)s")
    root = source_checkout()
    if root is None:
        print("FAIL: the image build needs gauntlet's source checkout", file=sys.stderr)
        return 2
    try:
        res = build_reference_image(args.image, root=root, base=args.base)
    except (BackendError, SetupError) as err:
        print(f"FAIL: {err}", file=sys.stderr)
        return 1
    steps = ", ".join(f"{k} {v}s" for k, v in res.seconds.items())
    print(f"built {res.image} (base {'made' if res.base_built else 'present'}; {steps})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
