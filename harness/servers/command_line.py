"""A container's command line as the server process sees it, and the flags read from it."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Flag:
    """A server flag as the container's command line gives it."""

    name: str  # as the server spells it, e.g. --shutdown-timeout
    raw: str | None  # the value as written, $(VAR) expanded (None: not on the command line)
    #: not on the command line but a `--config FILE` is, which may set it (unknown)
    maybe_in_config: bool = False

    @property
    def given(self) -> bool:
        return self.raw is not None

    @property
    def number(self) -> float | None:
        """The value as a number (None: not given, or not a number, e.g. an unset $(VAR))."""
        try:
            return float(self.raw) if self.raw is not None else None
        except ValueError:
            return None

    @property
    def known(self) -> bool:
        """Whether the server's value is known: a number given, or a default (absent, no
        config file)."""
        return self.number is not None if self.given else not self.maybe_in_config

    def __str__(self) -> str:
        return f"{self.name}={self.raw}" if self.raw is not None else f"no {self.name}"


_ENV_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def command_words(container: dict[str, Any]) -> list[str]:
    """command + args as the process sees them: $(VAR) expanded from the container's literal env
    values as the kubelet does ($$ is a literal $, an unknown $(VAR) stays as written), and a
    shell script (`sh -c "vllm serve ..."`) split into its words."""
    env = {
        str(e.get("name")): str(e["value"])
        for e in container.get("env") or []
        if isinstance(e, dict) and "value" in e
    }

    def expand(word: str) -> str:
        return _ENV_REF.sub(
            lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), word
        )

    out: list[str] = []
    for word in [str(x) for x in (container.get("command") or []) + (container.get("args") or [])]:
        word = expand(word)
        if any(ch.isspace() for ch in word.strip()):
            try:
                out.extend(shlex.split(word))
            except ValueError:
                out.extend(word.split())
        else:
            out.append(word)
    return out


def _flag_key(word: str) -> str:
    """`--max_num_seqs=4` -> `--max-num-seqs` (vLLM's FlexibleArgumentParser accepts `_` for
    `-` in a flag's name, up to the first `.`)."""
    key = word.split("=", 1)[0]
    head, dot, rest = key[2:].partition(".")
    return "--" + head.replace("_", "-") + dot + rest


def flag_value(container: dict[str, Any], name: str) -> Flag:
    """A flag of the container's command line, as `--name=V` or `--name V`; the last one wins
    (argparse)."""
    words = command_words(container)
    raw: str | None = None
    for i, word in enumerate(words):
        if not word.startswith("--") or _flag_key(word) != name:
            continue
        if "=" in word:
            raw = word.split("=", 1)[1]
        elif i + 1 < len(words) and not words[i + 1].startswith("--"):
            raw = words[i + 1]
    config = any(w == "--config" or w.startswith("--config=") for w in words)
    return Flag(name, raw, maybe_in_config=raw is None and config)
