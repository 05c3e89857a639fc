"""Streaming and chat over HTTP: OpenAI's chunk format, usage, [DONE], disconnects."""

from __future__ import annotations

import httpx
import pytest

from tests.service.conftest import ServerProcess
from tests.service.sse import post_stream
from tests.service.test_service_api import complete

pytestmark = pytest.mark.timeout(300)


def test_completion_stream_matches_the_non_streaming_answer(server: ServerProcess) -> None:
    body = {"prompt": "stream", "max_tokens": 12, "temperature": 0}
    whole = complete(server, **body).json()
    code, evs = post_stream(
        server.url + "/v1/completions", {**body, "stream_options": {"include_usage": True}}
    )
    assert code == 200 and evs[-1] == "[DONE]"
    chunks, usage = evs[:-2], evs[-2]
    assert {c["object"] for c in chunks} == {"text_completion"}
    assert len({c["id"] for c in evs[:-1]}) == 1 and chunks[0]["id"].startswith("cmpl-")
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"][0]["finish_reason"] == whole["choices"][0]["finish_reason"]
    assert "".join(c["choices"][0]["text"] for c in chunks) == whole["choices"][0]["text"]
    assert usage["choices"] == [] and usage["usage"] == whole["usage"]
    assert all("usage" not in c or c["usage"] is None for c in chunks)


def test_without_include_usage_there_is_no_usage_chunk(server: ServerProcess) -> None:
    code, evs = post_stream(server.url + "/v1/completions", {"prompt": "x", "max_tokens": 3})
    assert code == 200 and evs[-1] == "[DONE]"
    assert all(e["choices"] for e in evs[:-1])


def test_continuous_usage_counts_up(server: ServerProcess) -> None:
    opts = {"include_usage": True, "continuous_usage_stats": True}
    body = {"prompt": "y", "max_tokens": 6, "ignore_eos": True, "stream_options": opts}
    _, evs = post_stream(server.url + "/v1/completions", body)
    counts = [e["usage"]["completion_tokens"] for e in evs[:-2]]
    assert counts == sorted(counts) and counts[-1] == 6


def test_chat_stream_role_first_then_content_then_finish(server: ServerProcess) -> None:
    body = {
        "messages": [{"role": "user", "content": "hello"}],
        "max_completion_tokens": 6,
        "temperature": 0,
        "ignore_eos": True,
    }
    whole = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=60).json()
    assert whole["object"] == "chat.completion"
    message = whole["choices"][0]["message"]
    assert message["role"] == "assistant" and whole["usage"]["completion_tokens"] == 6
    # <bos> + "<|user|>\nhello\n<|assistant|>\n", one token per byte: the template's own BOS
    assert whole["usage"]["prompt_tokens"] == 1 + len("<|user|>\nhello\n<|assistant|>\n")
    code, evs = post_stream(
        server.url + "/v1/chat/completions", {**body, "stream_options": {"include_usage": True}}
    )
    assert code == 200 and evs[-1] == "[DONE]"
    chunks = evs[:-2]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == message["content"]
    assert evs[-2]["usage"]["completion_tokens"] == 6


def test_chat_content_parts_and_bad_messages(server: ServerProcess) -> None:
    parts = {
        "role": "user",
        "content": [{"type": "text", "text": "hel"}, {"type": "text", "text": "lo"}],
    }
    plain = {"role": "user", "content": "hello"}
    a, b = (
        httpx.post(
            server.url + "/v1/chat/completions",
            json={"messages": [m], "max_tokens": 4, "temperature": 0},
            timeout=60,
        ).json()
        for m in (parts, plain)
    )
    assert a["choices"][0]["message"] == b["choices"][0]["message"]
    bad = httpx.post(server.url + "/v1/chat/completions", json={"messages": []}, timeout=30)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "messages"
    bad = httpx.post(
        server.url + "/v1/chat/completions",
        json={"messages": [{"role": "robot", "content": "x"}]},
        timeout=30,
    )
    assert bad.status_code == 400 and bad.json()["error"]["param"].startswith("messages")


def test_refusals_before_the_first_token_are_http_statuses(server: ServerProcess) -> None:
    code, evs = post_stream(server.url + "/v1/completions", {"prompt": "x" * 300, "max_tokens": 4})
    assert code == 413 and evs[0]["error"]["param"] == "prompt"
