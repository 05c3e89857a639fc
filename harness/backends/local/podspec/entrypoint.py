"""What runs when the process runtime has no image to read an ENTRYPOINT from."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


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


def default_entrypoint(image: str) -> list[str] | None:
    """The image's ENTRYPOINT when the process runtime has no image to read it from."""
    repo = image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
    if repo.startswith("gauntlet"):
        return ["gauntlet", "serve"]
    return None


def process_argv(command: list[str], args: list[str], image: str) -> list[str]:
    """The host argv for a container: its command (else the image's known entrypoint) and args;
    a leading `gauntlet` is this venv's script."""
    argv = (command or list(default_entrypoint(image) or [])) + args
    if argv and argv[0] == "gauntlet":
        argv = gauntlet_command() + argv[1:]
    return argv
