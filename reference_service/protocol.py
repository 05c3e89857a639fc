"""OpenAI's wire format for the requests this service honours and the bodies it sends.

Unknown request fields are ignored (as OpenAI-compatible servers do); `ignore_eos` and
`min_tokens` are vLLM's extensions, which benchmark tools send to force an output length.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_STOP_SEQUENCES = 4


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False
    continuous_usage_stats: bool = False


class _GenerationFields(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = Field(None, max_length=256)
    temperature: float = Field(1.0, ge=0.0, le=2.0, description="0 = greedy.")
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    stop: str | list[str] | None = Field(
        None, description=f"Up to {MAX_STOP_SEQUENCES} stop strings."
    )
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1, le=1, description="Only one choice per request.")
    ignore_eos: bool = Field(False, description="vLLM extension: generate exactly max_tokens.")
    min_tokens: int = Field(0, ge=0, description="vLLM extension: no EOS before this many.")

    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])


class CompletionRequest(_GenerationFields):
    prompt: str = Field(..., description="Text to continue.")
    max_tokens: int = Field(
        16, ge=1, description="Tokens to generate (limit: GAUNTLET_MAX_TOKENS_LIMIT)."
    )

    def output_limit(self) -> int:
        return self.max_tokens


class TokenizeRequest(BaseModel):
    """vLLM's `POST /tokenize` (its completion form)."""

    model_config = ConfigDict(extra="ignore")

    prompt: str
    add_special_tokens: bool = True


class DetokenizeRequest(BaseModel):
    """vLLM's `POST /detokenize`."""

    model_config = ConfigDict(extra="ignore")

    tokens: list[int]


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["text"] = "text"
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] = ""


class ChatCompletionRequest(_GenerationFields):
    messages: list[ChatMessage] = Field(..., min_length=1)
    max_tokens: int | None = Field(None, ge=1, description="Deprecated name of the limit.")
    max_completion_tokens: int | None = Field(None, ge=1)
    add_generation_prompt: bool = True

    def output_limit(self) -> int:
        return self.max_completion_tokens or self.max_tokens or 16

    def template_messages(self) -> list[dict[str, str]]:
        """Messages with content parts joined into one string, as a text-only template wants."""
        out = []
        for m in self.messages:
            text = m.content if isinstance(m.content, str) else "".join(p.text for p in m.content)
            out.append({"role": m.role, "content": text})
        return out


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def error_body(status: int, message: str, *, kind: str, param: str | None, code: Any) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class ChunkWriter:
    """Builds one response's SSE chunks (`text_completion` or `chat.completion.chunk`)."""

    def __init__(self, chat: bool, model: str) -> None:
        self.chat = chat
        self.model = model
        self.id = new_id("chatcmpl" if chat else "cmpl")
        self.created = int(time.time())
        self.object = "chat.completion.chunk" if chat else "text_completion"
        # The envelope of every content chunk, rendered once: a stream sends one per step.
        head = json.dumps(self._envelope([]), separators=(",", ":"))[: -len('"choices":[]}')]
        self._chunk_head = (
            head + '"choices":[{"index":0,' + ('"delta":{"content":' if chat else '"text":')
        )
        self._chunk_mid = "}," if chat else ","

    def delta_json(self, text: str, finish_reason: str | None) -> str:
        """`delta(text, finish_reason, None)` as compact JSON, without building the dict."""
        if self.chat and not text:
            return json.dumps(self.delta(text, finish_reason, None), separators=(",", ":"))
        finish = "null" if finish_reason is None else json.dumps(finish_reason)
        return (
            f"{self._chunk_head}{json.dumps(text)}{self._chunk_mid}"
            f'"logprobs":null,"finish_reason":{finish}}}]}}'
        )

    def _envelope(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": self.object,
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }

    def role(self) -> dict[str, Any]:
        """Chat's first chunk: the assistant role with empty content (sent with the first
        token, as vLLM does, so 'first chunk' means 'first token')."""
        choice = {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None}
        return self._envelope([{**choice, "finish_reason": None}])

    def delta(self, text: str, finish_reason: str | None, usage_now: dict | None) -> dict:
        if self.chat:
            choice: dict[str, Any] = {"index": 0, "delta": {"content": text} if text else {}}
        else:
            choice = {"index": 0, "text": text}
        choice.update(logprobs=None, finish_reason=finish_reason)
        extra = {"usage": usage_now} if usage_now is not None else {}
        return self._envelope([choice], **extra)

    def usage(self, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
        return self._envelope([], usage=usage(prompt_tokens, completion_tokens))

    def whole(self, text: str, finish_reason: str, prompt: int, completion: int) -> dict:
        """The non-streaming body."""
        if self.chat:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
            }
        else:
            choice = {"index": 0, "text": text}
        choice.update(logprobs=None, finish_reason=finish_reason)
        body = self._envelope([choice], usage=usage(prompt, completion))
        body["object"] = "chat.completion" if self.chat else "text_completion"
        return body
