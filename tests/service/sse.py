"""A strict reader of OpenAI-style SSE streams for the service tests."""

from __future__ import annotations

import json
from typing import Any

import httpx


def events(lines: list[str]) -> list[Any]:
    """Each `data:` payload in order (JSON, or the string "[DONE]"); anything else fails."""
    out: list[Any] = []
    for line in lines:
        if not line:
            continue
        assert line.startswith("data: "), line
        data = line[len("data: ") :]
        out.append(data if data == "[DONE]" else json.loads(data))
    return out


def post_stream(url: str, body: dict[str, Any], timeout: float = 120) -> tuple[int, list[Any]]:
    with httpx.stream("POST", url, json={**body, "stream": True}, timeout=timeout) as r:
        if r.status_code != 200:
            r.read()
            return r.status_code, [r.json()]
        assert r.headers["content-type"].startswith("text/event-stream")
        return 200, events(list(r.iter_lines()))
