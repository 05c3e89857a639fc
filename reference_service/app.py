"""FastAPI app: OpenAI's completions and chat completions (streaming or not), the probes, vLLM's
`/health` and `/ping`, metrics and chaos hooks. Probe meanings: see `reference_service.state`.

A request is checked and admitted (lengths, memory, queue) before anything is sent, and a
streaming response starts only once the engine produced its first output: every refusal before
the first token is an HTTP status with Retry-After. After the first byte an error is an SSE
`error` event followed by `data: [DONE]` (vLLM's convention), never a reset.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse

from reference_service.admission import Rejection, check_lengths, estimate_request_bytes
from reference_service.config import ServiceSettings
from reference_service.events import log_json
from reference_service.protocol import (
    MAX_STOP_SEQUENCES,
    ChatCompletionRequest,
    ChunkWriter,
    CompletionRequest,
    DetokenizeRequest,
    TokenizeRequest,
    error_body,
    usage,
)
from reference_service.sampling import SamplingParams
from reference_service.scheduler import EngineDead, EngineStopped, QueueFull, QueueTimeout
from reference_service.sequence import AsyncSink, Sequence, StepOutput
from reference_service.state import PROCESS_T0, ServiceState

__all__ = ["ServiceState", "create_app", "log_json"]


def error_type(status: int) -> str:
    return "invalid_request_error" if status < 500 and status != 429 else "server_unavailable"


def error_response(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    retry_after_s: int | None = None,
) -> JSONResponse:
    headers = {"Retry-After": str(retry_after_s)} if retry_after_s is not None else None
    return JSONResponse(
        error_body(status, message, kind=error_type(status), param=param, code=code),
        status_code=status,
        headers=headers,
    )


def rejection_for(err: BaseException) -> Rejection:
    """The HTTP answer for an engine outcome that ended a request before its first token."""
    if isinstance(err, QueueFull):
        return Rejection(429, "queue_full", f"queue full: {err}", retry_after_s=1)
    if isinstance(err, QueueTimeout):
        return Rejection(429, "queue_timeout", str(err), retry_after_s=1)
    if isinstance(err, EngineDead):
        return Rejection(503, "engine_dead", str(err), retry_after_s=1)
    if isinstance(err, EngineStopped):
        return Rejection(503, "draining", str(err), retry_after_s=1)
    return Rejection(500, "engine_error", f"generation failed: {type(err).__name__}: {err}")


def coalesce(out: StepOutput, pending: asyncio.Queue[StepOutput]) -> StepOutput:
    """Merge outputs that queued up while the client was being written to into one chunk (as
    vLLM does under load: one chunk can carry several tokens); an error or the finish ends it."""
    while out.error is None and out.finish_reason is None and not pending.empty():
        nxt = pending.get_nowait()
        out = StepOutput(
            out.token_ids + nxt.token_ids, out.text + nxt.text, nxt.finish_reason, nxt.error
        )
    return out


def sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


class Admitted:
    """A request that passed admission: its memory reservation, released exactly once."""

    def __init__(self, st: ServiceState, nbytes: int) -> None:
        self.st, self.nbytes, self._open = st, nbytes, True
        st.inflight += 1
        st.metrics.memory_reserved.set(st.budget.reserved)

    def release(self) -> None:
        if self._open:
            self._open = False
            self.st.budget.release(self.nbytes)
            self.st.metrics.memory_reserved.set(self.st.budget.reserved)
            self.st.inflight -= 1


def create_app(
    settings: ServiceSettings, *, state: ServiceState | None = None, load: bool = True
) -> FastAPI:
    st = state or ServiceState(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if load:
            st.load_in_background()  # the socket binds right after this returns
        yield
        if st.engine is not None:
            st.engine.stop()

    app = FastAPI(title="Gauntlet reference inference service", version="0.2.0", lifespan=lifespan)
    app.state.service = st

    def reject(rej: Rejection) -> JSONResponse:
        st.metrics.rejections.labels(reason=rej.reason).inc()
        return error_response(
            rej.status,
            rej.message,
            param=rej.param,
            code=rej.reason,
            retry_after_s=rej.retry_after_s,
        )

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        loc = [str(x) for x in first.get("loc", ()) if x not in ("body", "query")]
        param = "body" if first.get("type") == "json_invalid" else (".".join(loc) or "body")
        msgs = "; ".join(
            f"{'.'.join(str(x) for x in e.get('loc', ()) if x != 'body') or 'body'}: {e.get('msg')}"
            for e in errors[:5]
        )
        st.metrics.rejections.labels(reason="invalid").inc()
        return error_response(400, msgs or "invalid request", param=param, code="invalid")

    def not_ready() -> Rejection | None:
        if st.ready:
            return None
        st.metrics.unready_requests.inc()
        if st.draining:
            return Rejection(
                503, "draining", "server is draining; retry elsewhere", retry_after_s=1
            )
        if st.started:
            return Rejection(
                503, "engine_dead", "the engine is gone; retry elsewhere", retry_after_s=1
            )
        return Rejection(503, "not_ready", "model is still loading", retry_after_s=1)

    def encode_prompt(text: str, *, add_bos: bool) -> list[int]:
        s = st.settings
        text = text.encode("utf-8", "replace").decode("utf-8")  # lone surrogates -> '?'
        if len(text) > s.max_prompt_tokens * 4:  # a token is at most a few characters
            raise Rejection(
                413,
                "too_large",
                f"prompt is over the limit of {s.max_prompt_tokens} tokens",
                param="prompt",
            )
        tok = st.loaded.tokenizer
        ids = tok.encode(text, add_special_tokens=False)
        return [tok.bos_token_id, *ids] if add_bos else list(ids)

    def chat_prompt(body: ChatCompletionRequest) -> list[int]:
        tok = st.loaded.tokenizer
        if not getattr(tok, "chat_template", None):
            raise Rejection(
                400,
                "invalid",
                "the model's tokenizer has no chat template (rebuild it with `gauntlet "
                "build-model`, which writes one into tokenizer_config.json)",
                param="messages",
            )
        text = tok.apply_chat_template(
            body.template_messages(),
            tokenize=False,
            add_generation_prompt=body.add_generation_prompt,
        )
        return encode_prompt(str(text), add_bos=False)  # the template writes its own BOS

    async def generate(
        request: Request,
        body: CompletionRequest | ChatCompletionRequest,
        prompt_ids: list[int],
        chat: bool,
    ) -> Response:
        s = st.settings
        stops = body.stops()
        if len(stops) > MAX_STOP_SEQUENCES:
            raise Rejection(
                400, "invalid", f"at most {MAX_STOP_SEQUENCES} stop strings", param="stop"
            )
        max_tokens = body.output_limit()
        if body.min_tokens > max_tokens:
            raise Rejection(
                400,
                "invalid",
                f"min_tokens {body.min_tokens} > max_tokens {max_tokens}",
                param="min_tokens",
            )
        assert st.shape is not None
        check_lengths(
            len(prompt_ids),
            max_tokens,
            max_prompt_tokens=s.max_prompt_tokens,
            max_tokens_limit=s.max_tokens_limit,
            max_positions=st.shape.max_positions,
        )
        need = estimate_request_bytes(st.shape, len(prompt_ids), max_tokens)
        st.budget.reserve(need)
        lease = Admitted(st, need)
        params = SamplingParams(
            max_tokens=max_tokens,
            temperature=body.temperature,
            seed=body.seed,
            stop=[x for x in stops if x],
            ignore_eos=body.ignore_eos,
            min_tokens=body.min_tokens,
        )
        sink = AsyncSink(asyncio.get_running_loop()) if body.stream else None
        seq = Sequence(prompt_ids, params, sink=sink)
        try:
            st.engine.submit(seq)
        except (QueueFull, EngineStopped) as err:
            lease.release()
            raise rejection_for(err) from err
        writer = ChunkWriter(chat, st.model_name)
        if not body.stream:
            result = asyncio.wrap_future(seq.future)
            # the engine fails a sequence aborted below; nobody awaits it then
            result.add_done_callback(lambda f: f.cancelled() or f.exception())
            try:
                if not await done_before_disconnect(request, result):
                    return Response(status_code=499)  # its slot and KV rows go now (finally)
                res = result.result()
            except Exception as err:  # a cancelled handler (CancelledError) is not a rejection
                raise rejection_for(err) from err
            finally:
                st.engine.abort(seq)  # no-op when finished; frees the slot if we were cancelled
                lease.release()
            return JSONResponse(
                writer.whole(res.text, res.finish_reason, res.prompt_tokens, res.completion_tokens)
            )
        assert sink is not None
        outputs = sink.queue
        first_output = asyncio.ensure_future(outputs.get())
        started = False
        try:
            started = await done_before_disconnect(request, first_output)
        finally:
            if not started:  # cancelled, or the client left while its request waited
                first_output.cancel()
                st.engine.abort(seq)
                lease.release()
        if not started:
            return Response(status_code=499)
        first = first_output.result()
        if first.error is not None:  # nothing sent yet: an HTTP status
            lease.release()
            raise rejection_for(first.error)
        options = body.stream_options
        return StreamingResponse(
            stream_events(seq, first, outputs, writer, lease, options),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def stream_events(
        seq: Sequence,
        first: StepOutput,
        outputs: asyncio.Queue[StepOutput],
        writer: ChunkWriter,
        lease: Admitted,
        options: Any,
    ) -> AsyncIterator[bytes]:
        include_usage = bool(options and options.include_usage)
        continuous = bool(options and options.continuous_usage_stats and include_usage)
        completion = 0
        prompt = len(seq.prompt_ids)
        try:
            out = first
            if writer.chat:
                yield sse(writer.role())
            while True:
                if out.error is not None:
                    if out.text:  # what was generated before the error still goes out
                        yield sse(writer.delta_json(out.text, None))
                    rej = rejection_for(out.error)
                    st.metrics.rejections.labels(reason=f"stream_{rej.reason}").inc()
                    yield sse(
                        error_body(
                            rej.status,
                            rej.message,
                            kind=error_type(rej.status),
                            param=None,
                            code=rej.status,
                        )
                    )
                    break
                completion += len(out.token_ids)
                # a step's tokens go out even when their text is still held back (incomplete
                # UTF-8, a possible stop string): as vLLM does, so a client's TTFT and
                # inter-token gaps mean the server's tokens, not the detokenizer's pauses
                if out.token_ids or out.text or out.finish_reason is not None:
                    if continuous:
                        now = usage(prompt, completion)
                        yield sse(writer.delta(out.text, out.finish_reason, now))
                    else:
                        yield sse(writer.delta_json(out.text, out.finish_reason))
                if out.finish_reason is not None:
                    if include_usage:
                        yield sse(writer.usage(prompt, completion))
                    break
                out = coalesce(await outputs.get(), outputs)
            yield sse("[DONE]")
        finally:
            if not seq.finished:
                st.engine.abort(seq)  # the client went away: free its slot and KV rows now
            lease.release()

    async def done_before_disconnect(request: Request, future: asyncio.Future[Any]) -> bool:
        """Wait for `future` or the client's disconnect; True when `future` finished first."""
        gone = asyncio.ensure_future(client_gone(request))
        try:
            await asyncio.wait((future, gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        return future.done()

    async def client_gone(request: Request) -> None:
        """Returns when the client disconnects (the body is read: the next ASGI message is
        `http.disconnect`). A non-streaming handler is not cancelled when its client goes."""
        while (await request.receive())["type"] != "http.disconnect":
            pass

    async def serve(
        request: Request, body: CompletionRequest | ChatCompletionRequest, chat: bool
    ) -> Response:
        try:
            if (rej := not_ready()) is not None:
                raise rej
            if isinstance(body, ChatCompletionRequest):
                ids = chat_prompt(body)
            else:
                ids = encode_prompt(body.prompt, add_bos=True)
            return await generate(request, body, ids, chat)
        except Rejection as rej:
            return reject(rej)

    @app.post("/v1/completions")
    async def completions(request: Request, body: CompletionRequest) -> Response:
        return await serve(request, body, chat=False)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request, body: ChatCompletionRequest) -> Response:
        return await serve(request, body, chat=True)

    @app.post("/tokenize")
    async def tokenize(body: TokenizeRequest) -> Any:
        """vLLM's: the prompt's token ids and count (with BOS when add_special_tokens)."""
        if not st.started:
            return error_response(503, "model is still loading", code="not_ready", retry_after_s=1)
        try:
            ids = encode_prompt(body.prompt, add_bos=body.add_special_tokens)
        except Rejection as rej:
            return reject(rej)
        max_len = st.shape.max_positions if st.shape else None
        return {"count": len(ids), "max_model_len": max_len, "tokens": ids, "token_strs": None}

    @app.post("/detokenize")
    async def detokenize(body: DetokenizeRequest) -> Any:
        if not st.started:
            return error_response(503, "model is still loading", code="not_ready", retry_after_s=1)
        tok = st.loaded.tokenizer
        if len(body.tokens) > st.settings.max_prompt_tokens + st.settings.max_tokens_limit:
            return error_response(413, "too many tokens to detokenize", param="tokens")
        if any(not 0 <= t < len(tok) for t in body.tokens):
            return error_response(
                400, f"token ids must be in [0, {len(tok)})", param="tokens", code="invalid"
            )
        return {"prompt": tok.decode(body.tokens)}

    @app.get("/v1/models")
    async def models() -> Any:
        if not st.started:
            st.metrics.unready_requests.inc()
            return error_response(503, "model is still loading", code="not_ready", retry_after_s=1)
        return {
            "object": "list",
            "data": [
                {
                    "id": st.model_name,
                    "object": "model",
                    "created": int(PROCESS_T0),
                    "owned_by": "gauntlet",
                    "max_model_len": st.shape.max_positions if st.shape else None,
                }
            ],
        }

    def answer(status: tuple[int, dict[str, Any]]) -> JSONResponse:
        code, body = status
        return JSONResponse(body, status_code=code)

    @app.get("/startup")
    async def startup() -> Any:
        return answer(st.startup_status())

    @app.get("/ready")
    async def ready() -> Any:
        return answer(st.ready_status())

    @app.get("/healthz")
    async def healthz() -> Any:
        return answer(st.liveness_status())

    @app.get("/health")
    async def health() -> Response:
        code, _ = st.health_status()
        return Response(status_code=code)  # vLLM answers an empty body

    @app.api_route("/ping", methods=["GET", "POST"])
    async def ping() -> Response:
        code, _ = st.health_status()
        return Response(status_code=code)

    @app.get("/metrics")
    async def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(st.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    if settings.debug_endpoints:

        @app.post("/debug/hang")
        async def debug_hang(seconds: float = Query(3600.0, gt=0, le=86400)) -> Any:
            """Stall the inference thread so /healthz fails (liveness chaos)."""
            if st.engine is None:
                return error_response(409, "model not loaded yet", code="not_ready")
            st.engine.hang(seconds)
            return {"hanging_for_s": seconds}

        @app.post("/debug/slow")
        async def debug_slow(
            step_ms: float = Query(..., gt=0, le=10_000),
            seconds: float = Query(60.0, gt=0, le=86400),
        ) -> Any:
            """Make every engine step take at least `step_ms` (slow-accelerator chaos)."""
            if st.engine is None:
                return error_response(409, "model not loaded yet", code="not_ready")
            st.engine.slow_down(step_ms / 1000.0, seconds)
            return {"step_ms": step_ms, "for_s": seconds}

        @app.post("/debug/allocate")
        async def debug_allocate(mb: int = Query(..., ge=1, le=1_048_576)) -> Any:
            """Hold `mb` MiB of touched memory (memory-pressure chaos); DELETE releases it."""
            block = bytearray(mb << 20)
            for i in range(0, len(block), 4096):
                block[i] = 1
            st.held_memory.append(block)
            return {
                "held_mb": sum(len(b) for b in st.held_memory) >> 20,
                "rss_bytes": st.budget.rss(),
            }

        @app.delete("/debug/allocate")
        async def debug_release() -> Any:
            st.held_memory.clear()
            return {"held_mb": 0}

    return app
