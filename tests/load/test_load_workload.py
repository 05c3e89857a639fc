"""Workloads: length distributions, prompts built to exact token counts, a pool of bodies the
engine cycles through, and what came back checked against what was asked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from harness.errors import InputError
from harness.load import LoadSpec, run_load
from harness.load.workload import LengthDist, Workload, build_pool, load_workload
from tests.load.test_load_engine import Server

RNG_SEED = 11


def draw(**kw: object) -> np.ndarray:
    return LengthDist.model_validate(kw).sample(np.random.default_rng(RNG_SEED), 20_000)


def test_distributions_have_their_moments_and_bounds() -> None:
    assert (draw(kind="fixed", mean=7) == 7).all()
    u = draw(kind="uniform", min=10, max=20)
    assert u.min() == 10 and u.max() == 20 and abs(u.mean() - 15) < 0.2
    n = draw(kind="normal", mean=100, std=10, min=80, max=120)
    assert abs(n.mean() - 100) < 0.5 and abs(n.std() - 10) < 0.5 and n.min() >= 80
    ln = draw(kind="lognormal", mean=200, std=100)
    assert abs(ln.mean() - 200) < 5 and abs(ln.std() - 100) < 8 and ln.min() >= 1
    e = draw(kind="empirical", values=[5, 50], weights=[3, 1])
    assert set(np.unique(e)) == {5, 50} and abs((e == 5).mean() - 0.75) < 0.02


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "normal", "mean": 10},
        {"kind": "uniform", "min": 5},
        {"kind": "empirical"},
        {"kind": "fixed", "mean": 5, "min": 9, "max": 3},
        {"kind": "empirical", "values": [1, 2], "weights": [1]},
    ],
)
def test_incomplete_distributions_are_refused(bad: dict) -> None:
    with pytest.raises(ValidationError):
        LengthDist.model_validate(bad)


def test_prompts_are_exact_for_the_tokenizer(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from reference_service.tokenizer import save_tokenizer

    tiny_model_dir = tmp_path / "tokenizer"
    save_tokenizer(tiny_model_dir)
    workload = Workload(
        prompt_tokens=LengthDist(kind="uniform", min=5, max=300),
        output_tokens=LengthDist(kind="fixed", mean=9),
        samples=40,
        tokenizer=tiny_model_dir,
    )
    pool = build_pool(workload, {"model": "tiny", "temperature": 0, "prompt": "ignored"}, seed=1)
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    assert pool.exact_prompts and len(pool.bodies) == 40
    for body, n in zip(pool.bodies, pool.prompt_tokens, strict=True):
        assert len(tok.encode(body["prompt"], add_special_tokens=False)) == n
        assert body["model"] == "tiny" and body["max_tokens"] == 9
        assert body["ignore_eos"] is True and body["min_tokens"] == 9
    chat = build_pool(workload.model_copy(update={"chat": True}), {}, seed=1)
    assert chat.bodies[0]["messages"][0]["role"] == "user" and "prompt" not in chat.bodies[0]


def test_a_bad_workload_file_names_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(
        "prompt_tokens: {kind: normal, mean: 10}\noutput_tokens: {kind: fixed, mean: 4}\n"
    )
    with pytest.raises(InputError) as err:
        load_workload(path)
    assert err.value.file == str(path) and "prompt_tokens" in str(err.value.field)


def test_the_engine_cycles_the_pool_and_checks_the_output(
    loopback_server: Server, tmp_path: Path
) -> None:
    url = loopback_server("--sse-from-body")
    workload = Workload(
        prompt_tokens=LengthDist(kind="uniform", min=4, max=64),
        output_tokens=LengthDist(kind="empirical", values=[2, 6]),
        samples=8,
    )
    spec = LoadSpec(
        target=url,
        body={"temperature": 0},
        workload=workload,
        stream=True,
        rate_rps=20,
        duration_s=2,
        arrival="constant",
        workers=2,
    )
    r = run_load(spec, tmp_path)
    assert r.ok == r.requests == 40, r.errors
    rec = r.records()
    assert sorted(rec["sample"].tolist()) == sorted([n % 8 for n in range(40)])  # each once a cycle
    w = r.workload
    assert w is not None and w.samples == 8 and not w.exact_prompts
    assert w.output_mismatches == 0  # the server streamed what max_tokens asked for
    assert r.stream is not None and set(rec["tokens"].tolist()) <= {2, 6}
