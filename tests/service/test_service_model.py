"""Model building, tokenizer, settings and the engine's batching equivalence (in-process)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from reference_service.config import ServiceSettings, cgroup_memory_limit
from reference_service.model_builder import build_model, tree_digest


def test_same_seed_same_bytes_other_seed_differs(tiny_model_dir: Path, tmp_path: Path) -> None:
    again = build_model("tiny", tmp_path / "again")
    assert again["digest"] == tree_digest(tiny_model_dir)
    other = build_model("tiny", tmp_path / "other", seed=99)
    assert other["digest"] != again["digest"]
    assert 2_500_000 < again["parameters"] < 4_000_000


def test_files_are_world_readable_safetensors(tiny_model_dir: Path) -> None:
    names = {p.name for p in tiny_model_dir.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= names
    assert not any(n.endswith((".bin", ".pt")) for n in names)
    for p in tiny_model_dir.iterdir():
        assert p.stat().st_mode & stat.S_IROTH, p


def test_small_preset_is_about_100m_parameters() -> None:
    import torch
    from transformers import LlamaForCausalLM

    from reference_service.model_builder import llama_config

    with torch.device("meta"):
        model = LlamaForCausalLM(llama_config("small"))
    assert 80e6 < sum(p.numel() for p in model.parameters()) < 120e6


def test_tokenizer_loads_offline_and_round_trips(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    text = "héllo ☃\n\tworld"
    ids = tok.encode(text, add_special_tokens=False)
    assert ids == list(text.encode())
    assert tok.decode(ids) == text
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (256, 257, 258)


def test_settings_from_env_and_kwargs_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAUNTLET_PORT", "9123")
    monkeypatch.setenv("GAUNTLET_MAX_NUM_SEQS", "3")
    monkeypatch.setenv("GAUNTLET_DEBUG_ENDPOINTS", "true")
    s = ServiceSettings(max_num_seqs=5)
    assert (s.port, s.max_num_seqs, s.debug_endpoints) == (9123, 5, True)
    assert ServiceSettings.model_fields["port"].default == 8000


def test_a_step_budget_smaller_than_a_prompt_is_refused_with_the_fix() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="GAUNTLET_MAX_NUM_BATCHED_TOKENS"):
        ServiceSettings(max_num_batched_tokens=100, max_prompt_tokens=512)


def test_chat_template_is_in_tokenizer_config(tiny_model_dir: Path) -> None:
    import json

    from transformers import AutoTokenizer

    config = json.loads((tiny_model_dir / "tokenizer_config.json").read_text())
    assert "{{ bos_token }}" in config["chat_template"]
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == "<bos><|system|>\nbe brief\n<|user|>\nhi\n<|assistant|>\n"
    ids = tok.encode(text, add_special_tokens=False)
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1


def test_cgroup_v1_and_v2_limits(tmp_path: Path) -> None:
    proc = tmp_path / "proc" / "self"
    proc.mkdir(parents=True)
    cg = tmp_path / "cg"
    (proc / "cgroup").write_text("4:memory:/pod/ctr\n0::/\n")
    (cg / "memory" / "pod" / "ctr").mkdir(parents=True)
    (cg / "memory" / "pod" / "ctr" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    (cg / "memory" / "pod" / "memory.limit_in_bytes").write_text(str(2 << 30))
    assert cgroup_memory_limit(tmp_path / "proc", cg) == 2 << 30
    (proc / "cgroup").write_text("0::/box\n")
    (cg / "box").mkdir()
    (cg / "box" / "memory.max").write_text("max\n")
    assert cgroup_memory_limit(tmp_path / "proc", cg) is None
    (cg / "box" / "memory.max").write_text(str(1 << 30))
    assert cgroup_memory_limit(tmp_path / "proc", cg) == 1 << 30


def test_memory_estimate_grows_with_length() -> None:
    from reference_service.admission import ModelShape, estimate_request_bytes

    shape = ModelShape(
        layers=4,
        hidden=256,
        intermediate=688,
        heads=4,
        kv_heads=4,
        head_dim=64,
        vocab=259,
        dtype_bytes=4,
        max_positions=1024,
    )
    short = estimate_request_bytes(shape, 10, 10)
    long = estimate_request_bytes(shape, 500, 200)
    kv_long = 2 * 4 * 4 * 64 * 700 * 4
    assert long > short and long > kv_long
