"""How fast this machine runs the reference model, measured apart from the service under test.

A profile's rates and latencies are sized on some machine (`local`: a 2-core CI runner). On a
much slower one, capacity and hpa fail on the machine rather than the manifests: the same good
overlay's capacity per replica was 48.0 req/s on one runner and 3.84 on another 2.9x slower
one (p90 < 300 ms holds far fewer requests when each decode step takes longer). So the profile
records the step time it was sized at (`machine:`, harness.profile.MachineSizing), and a run
measures its own: greedy decode steps of the preset's architecture at batch 1 on one thread,
through plain transformers (not the reference service's engine, so a slow engine cannot pass
for a slow machine), in a fresh process (the harness's own threads don't count), weights from
a fixed seed in memory (nothing read from disk, nothing downloaded).
"""

from __future__ import annotations

import functools
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

PROMPT_TOKENS = 16
DECODE_STEPS = 48
REPEATS = 5
PROBE_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class MachineSpeed:
    """The median decode step of `preset` on this machine, or why it could not be measured."""

    preset: str
    decode_step_ms: float | None
    how: str


def _measure(preset: str) -> float:
    """Median ms per decode step over REPEATS generations (run in the probe's own process)."""
    import torch
    from transformers import LlamaForCausalLM

    from reference_service.model_builder import llama_config

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = LlamaForCausalLM(llama_config(preset)).eval()
    prompt = torch.randint(0, 250, (1, PROMPT_TOKENS))
    steps: list[float] = []
    with torch.inference_mode():
        for _ in range(REPEATS + 1):  # the first warms up
            out = model(input_ids=prompt, use_cache=True, logits_to_keep=1)
            token = out.logits[:, -1:].argmax(-1)
            t0 = time.perf_counter()
            for _ in range(DECODE_STEPS):
                out = model(input_ids=token, cache=out.cache, use_cache=True, logits_to_keep=1)
                token = out.logits[:, -1:].argmax(-1)
            steps.append((time.perf_counter() - t0) * 1000 / DECODE_STEPS)
    return statistics.median(steps[1:])


@functools.lru_cache(maxsize=4)
def probe(preset: str = "tiny") -> MachineSpeed:
    """This machine's decode step for `preset`, measured once per process (a few seconds)."""
    cmd = [sys.executable, "-m", "harness.machine_speed", preset]
    try:
        out = subprocess.run(
            cmd, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=True
        )
        ms = float(json.loads(out.stdout.strip().splitlines()[-1])["decode_step_ms"])
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, IndexError) as err:
        detail = getattr(err, "stderr", None) or str(err)
        return MachineSpeed(preset, None, f"the probe failed: {str(detail).strip()[-300:]}")
    how = (
        f"{preset} preset, batch 1, one thread, plain transformers: median of {REPEATS} x "
        f"{DECODE_STEPS} greedy decode steps"
    )
    return MachineSpeed(preset, round(ms, 3), how)


if __name__ == "__main__":
    print(json.dumps({"decode_step_ms": _measure(sys.argv[1] if len(sys.argv) > 1 else "tiny")}))
