"""The OpenAI-style API, metrics, bad inputs and overload against a real server."""

from __future__ import annotations

import concurrent.futures
import re
import time

import httpx
import pytest

from tests.service.conftest import ServerProcess

pytestmark = pytest.mark.timeout(300)


def complete(srv: ServerProcess, **body: object) -> httpx.Response:
    return httpx.post(srv.url + "/v1/completions", json=body, timeout=120)


def metric(srv: ServerProcess, name: str, labels: str = "") -> float:
    """One sample's value: `labels` is the exact label set, else any (vLLM's model_name/engine)."""
    text = httpx.get(srv.url + "/metrics", timeout=30).text
    pattern = (
        rf"^{re.escape(name)}{re.escape(labels)}\s+(\S+)$"
        if labels
        else rf"^{re.escape(name)}(?:\{{[^}}]*\}})?\s+(\S+)$"
    )
    m = re.search(pattern, text, re.M)
    return float(m.group(1)) if m else 0.0


def test_completion_shape_and_usage(server: ServerProcess) -> None:
    r = complete(server, prompt="Hello", max_tokens=5, temperature=0)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "text_completion"
    choice = body["choices"][0]
    assert choice["finish_reason"] in {"length", "stop"}
    usage = body["usage"]
    assert usage["prompt_tokens"] == 1 + len(b"Hello")  # <bos> + one token per byte
    assert 0 < usage["completion_tokens"] <= 5
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_greedy_is_deterministic_and_seeded_sampling_reproducible(server: ServerProcess) -> None:
    a = complete(server, prompt="abc", max_tokens=8, temperature=0).json()
    b = complete(server, prompt="abc", max_tokens=8, temperature=0).json()
    assert a["choices"][0]["text"] == b["choices"][0]["text"]
    s1 = complete(server, prompt="abc", max_tokens=12, temperature=1.5, seed=7).json()
    s2 = complete(server, prompt="abc", max_tokens=12, temperature=1.5, seed=7).json()
    assert s1["choices"][0]["text"] == s2["choices"][0]["text"]


def test_a_vanishing_temperature_is_greedy_not_a_500(server: ServerProcess) -> None:
    # Found by the schema test: temperature 2.2e-309 made logits / T overflow -> NaN -> HTTP 500.
    greedy = complete(server, prompt="abc", max_tokens=6, temperature=0).json()
    tiny = complete(server, prompt="abc", max_tokens=6, temperature=2.225073858507203e-309, seed=1)
    assert tiny.status_code == 200, tiny.text
    assert tiny.json()["choices"][0]["text"] == greedy["choices"][0]["text"]


def test_batched_equals_alone_over_http(server: ServerProcess) -> None:
    prompts = ["a", "The quick brown fox", "0123456789" * 3, "zz top", "Once upon a time", "?"]
    alone = [complete(server, prompt=p, max_tokens=10, temperature=0).json() for p in prompts]
    steps_before = metric(server, "gauntlet:batch_size_count")
    seq_steps_before = metric(server, "gauntlet:batch_size_sum")
    with concurrent.futures.ThreadPoolExecutor(len(prompts)) as pool:
        together = list(
            pool.map(
                lambda p: complete(server, prompt=p, max_tokens=10, temperature=0).json(), prompts
            )
        )
    steps = metric(server, "gauntlet:batch_size_count") - steps_before
    seq_steps = metric(server, "gauntlet:batch_size_sum") - seq_steps_before
    assert [x["choices"][0]["text"] for x in together] == [x["choices"][0]["text"] for x in alone]
    assert seq_steps / steps > 1, "concurrent requests should have shared engine steps"


def test_stop_sequence_truncates(server: ServerProcess) -> None:
    full = complete(server, prompt="xyz", max_tokens=16, temperature=0).json()["choices"][0]["text"]
    assert len(full) >= 3
    stop = full[2:4] or full[2]
    r = complete(server, prompt="xyz", max_tokens=16, temperature=0, stop=[stop]).json()
    assert r["choices"][0]["finish_reason"] == "stop"
    assert stop not in r["choices"][0]["text"]
    assert full.startswith(r["choices"][0]["text"])


def test_models_openapi_and_metrics(server: ServerProcess) -> None:
    models = httpx.get(server.url + "/v1/models", timeout=30).json()
    assert models["data"][0]["id"] == "tiny"
    spec = httpx.get(server.url + "/openapi.json", timeout=30).json()
    assert {"/v1/completions", "/v1/chat/completions"} <= set(spec["paths"])
    assert httpx.get(server.url + "/health", timeout=30).status_code == 200
    assert httpx.get(server.url + "/ping", timeout=30).status_code == 200
    assert httpx.post(server.url + "/ping", timeout=30).status_code == 200
    complete(server, prompt="count me", max_tokens=3, temperature=0)
    from prometheus_client.parser import text_string_to_metric_families

    families = {
        f.name: f for f in text_string_to_metric_families(httpx.get(server.url + "/metrics").text)
    }
    vllm_types = {
        "vllm:num_requests_running": "gauge",
        "vllm:num_requests_waiting": "gauge",
        "vllm:kv_cache_usage_perc": "gauge",
        "vllm:time_to_first_token_seconds": "histogram",
        "vllm:inter_token_latency_seconds": "histogram",
        "vllm:request_time_per_output_token_seconds": "histogram",
        "vllm:e2e_request_latency_seconds": "histogram",
        "vllm:request_queue_time_seconds": "histogram",
        "vllm:request_prefill_time_seconds": "histogram",
        "vllm:request_decode_time_seconds": "histogram",
        "vllm:iteration_tokens_total": "histogram",
        "vllm:prompt_tokens": "counter",
        "vllm:generation_tokens": "counter",
        "vllm:request_success": "counter",
        "vllm:prefix_cache_queries": "counter",
        "vllm:prefix_cache_hits": "counter",
    }
    for name, kind in vllm_types.items():
        assert name in families, name
        assert families[name].type == kind, (name, families[name].type)
        for sample in families[name].samples:
            assert sample.labels["model_name"] == "tiny" and sample.labels["engine"] == "0"
    ttft_buckets = [
        s.labels["le"]
        for s in families["vllm:time_to_first_token_seconds"].samples
        if "le" in s.labels
    ]
    assert ttft_buckets[:3] == ["0.001", "0.005", "0.01"]  # vLLM's buckets
    success = {
        s.labels["finished_reason"]
        for s in families["vllm:request_success"].samples
        if s.name.endswith("_total")
    }
    assert success & {"length", "stop"}
    for name in (
        "gauntlet:batch_size",
        "gauntlet:model_load_seconds",
        "gauntlet:requests_while_unready",
        "gauntlet:admission_rejections",
        "process_resident_memory_bytes",
    ):
        assert name in families, name
    assert not any(
        n.startswith("gauntlet:") and n[9:] in {v[5:] for v in vllm_types} for n in families
    )


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"prompt": "hi", "max_tokens": 65}, 400, "max_tokens"),
        ({"prompt": "hi", "max_tokens": 0}, 400, "max_tokens"),
        ({"prompt": "x" * 300, "max_tokens": 4}, 413, "prompt"),
        ({"prompt": "é" * 200, "max_tokens": 4}, 413, "prompt"),  # 400 bytes = 400 tokens
        ({"max_tokens": 4}, 400, "prompt"),
        ({"prompt": 5}, 400, "prompt"),
        ({"prompt": "hi", "temperature": -1}, 400, "temperature"),
        ({"prompt": "hi", "stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
        ({"prompt": "hi", "n": 2}, 400, "n"),
        ({"prompt": "hi", "max_tokens": 4, "min_tokens": 5}, 400, "min_tokens"),
        ({"prompt": "hi", "seed": 2**64}, 400, "seed"),
    ],
)
def test_bad_inputs_name_the_field(
    server: ServerProcess, body: dict, status: int, param: str
) -> None:
    r = complete(server, **body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["param"] == param


def test_malformed_json_and_lone_surrogate_are_client_errors(server: ServerProcess) -> None:
    r = httpx.post(
        server.url + "/v1/completions",
        content=b"{not json",
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 400
    r = httpx.post(
        server.url + "/v1/completions",
        content=b'{"prompt": "\\ud800", "max_tokens": 2}',
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 200, r.text


def test_overload_burst_gets_only_200_or_429_and_liveness_stays_up(server: ServerProcess) -> None:
    burst = 5 * 8  # 5x the queue
    rejected_before = metric(server, "gauntlet:admission_rejections_total", '{reason="queue_full"}')

    def one(i: int) -> httpx.Response:
        return complete(server, prompt=f"burst {i}", max_tokens=48, temperature=0)

    with concurrent.futures.ThreadPoolExecutor(burst) as pool:
        futures = [pool.submit(one, i) for i in range(burst)]
        health = [httpx.get(server.url + "/healthz", timeout=10).status_code for _ in range(3)]
        responses = [f.result() for f in futures]
    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 429}, codes
    assert codes.count(429) > 0 and codes.count(200) > 0, codes
    for r in responses:
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1
            assert r.json()["error"]["code"] == "queue_full"
    assert health == [200, 200, 200]
    rejected = metric(server, "gauntlet:admission_rejections_total", '{reason="queue_full"}')
    assert rejected - rejected_before == codes.count(429)


def test_memory_budget_rejects_before_exceeding(server: ServerProcess) -> None:
    budget = metric(server, "gauntlet:memory_budget_bytes")
    rss = httpx.post(server.url + "/debug/allocate", params={"mb": 1}, timeout=60).json()[
        "rss_bytes"
    ]
    free_mb = int((budget - rss) // (1 << 20))
    assert free_mb > 0, "the test budget must exceed the idle RSS"
    try:
        httpx.post(server.url + "/debug/allocate", params={"mb": free_mb + 16}, timeout=120)
        r = complete(server, prompt="hi", max_tokens=4)
        assert r.status_code == 429, r.text
        assert r.json()["error"]["code"] == "memory"
        assert "retry-after" in r.headers
    finally:
        httpx.delete(server.url + "/debug/allocate", timeout=60)
    assert complete(server, prompt="hi", max_tokens=4).status_code == 200


def test_debug_hang_fails_liveness_then_recovers(server: ServerProcess) -> None:
    assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200
    httpx.post(server.url + "/debug/hang", params={"seconds": 4}, timeout=10).raise_for_status()
    deadline = time.monotonic() + 30
    seen_503 = False
    while time.monotonic() < deadline and not seen_503:
        seen_503 = httpx.get(server.url + "/healthz", timeout=10).status_code == 503
        time.sleep(0.1)
    assert seen_503, "liveness never failed while the inference thread was hung"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if httpx.get(server.url + "/healthz", timeout=10).status_code == 200:
            break
        time.sleep(0.2)
    else:
        pytest.fail("liveness did not recover after the hang ended")
    assert complete(server, prompt="after", max_tokens=2).status_code == 200
