"""FastAPI app: OpenAI-style completions, probes with distinct meanings, metrics, chaos hooks.

Probes (all answered from state, never queued behind inference):
- `GET /startup`  200 once the model is loaded and warmed (503 before).
- `GET /ready`    200 when started and not draining (503 before start and from SIGTERM on).
- `GET /healthz`  200 while the process and its inference loop are responsive: the inference
  thread beat within `liveness_stall_s`. 503 when it is stuck, and while the model loads (no
  inference loop yet: a startup probe must cover the load).
With GAUNTLET_PROBE_PORT the same three answers come from a thread and port of their own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from reference_service.admission import (
    MemoryBudget,
    ModelShape,
    Rejection,
    check_lengths,
    estimate_request_bytes,
)
from reference_service.config import ServiceSettings
from reference_service.metrics import ServiceMetrics

log = logging.getLogger("reference_service")
PROCESS_T0 = time.time()
_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
MAX_STOP_SEQUENCES = 4


class CompletionRequest(BaseModel):
    """The subset of OpenAI's completions request this service honours (other fields ignored)."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = Field(None, max_length=256)
    prompt: str = Field(..., description="Text to continue.")
    max_tokens: int = Field(
        16, ge=1, description="Tokens to generate (limit: GAUNTLET_MAX_TOKENS_LIMIT)."
    )
    temperature: float = Field(1.0, ge=0.0, le=2.0, description="0 = greedy.")
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    stop: str | list[str] | None = Field(
        None, description=f"Up to {MAX_STOP_SEQUENCES} stop strings."
    )
    stream: bool = Field(False, description="Streaming is not supported; must be false.")


class ServiceState:
    """Everything the probes and handlers read; written by the loader thread and the drain."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.metrics = ServiceMetrics()
        self.phases: dict[str, float] = {}
        self.started = False
        self.draining = False
        self.engine: Any = None
        self.loaded: Any = None
        self.shape: ModelShape | None = None
        self.budget = MemoryBudget(settings.memory_budget_bytes)
        self.metrics.memory_budget.set(settings.memory_budget_bytes)
        self.inflight = 0
        self.held_memory: list[bytearray] = []
        self.model_name = settings.model_name or (
            settings.model_dir.resolve().name if settings.model_dir else "unknown"
        )

    @property
    def ready(self) -> bool:
        return self.started and not self.draining

    # ---- probe answers (served by the API and by the probe server) -------------------------
    def startup_status(self) -> tuple[int, dict[str, Any]]:
        return (200 if self.started else 503), {"started": self.started, "phases": self.phases}

    def ready_status(self) -> tuple[int, dict[str, Any]]:
        body = {"ready": self.ready, "started": self.started, "draining": self.draining}
        return (200 if self.ready else 503), body

    def liveness_status(self) -> tuple[int, dict[str, Any]]:
        """Alive = the process answers AND the inference thread's heartbeat is recent.

        While the model loads there is no inference loop yet, so liveness fails (503): a
        container needs a startup probe to survive its load time, exactly as Kubernetes
        documents for slow starters (a liveness probe alone kills it in a restart loop)."""
        eng = self.engine
        if eng is None:
            return 503, {"status": "loading", "inference_thread_alive": False}
        age = eng.heartbeat_age()
        ok = eng.alive and age < self.settings.liveness_stall_s
        body = {
            "status": "ok" if ok else "stalled",
            "heartbeat_age_s": round(age, 3),
            "inference_thread_alive": eng.alive,
        }
        return (200 if ok else 503), body

    def begin_drain(self) -> None:
        self.draining = True
        self.metrics.ready.set(0)
        self.metrics.draining.set(1)

    def idle(self) -> bool:
        return self.inflight == 0 and (self.engine is None or self.engine.idle())

    # ---- background model load ------------------------------------------------------------
    def load(self) -> None:
        """Load, warm up, start the engine; log one JSON line with the phase timings."""
        from reference_service.engine import Engine, GenRequest
        from reference_service.loader import load_model

        s = self.settings
        loaded = load_model(s, self.phases)
        engine = Engine(
            loaded.model,
            loaded.tokenizer,
            loaded.device,
            max_batch_size=s.max_batch_size,
            max_wait_ms=s.max_wait_ms,
            max_queue=s.max_queue,
            max_queue_wait_s=s.max_queue_wait_s,
            observer=self.metrics,
        )
        t0 = time.perf_counter()
        warm_ids = [
            loaded.tokenizer.bos_token_id,
            *loaded.tokenizer.encode("warm up", add_special_tokens=False),
        ]
        for size in sorted({1, min(2, s.max_batch_size)}):
            engine.generate_batch(
                [GenRequest(prompt_ids=warm_ids, max_tokens=2) for _ in range(size)]
            )
        self.phases["warmup"] = time.perf_counter() - t0
        self.shape = ModelShape.from_config(loaded.model.config, _DTYPE_BYTES[loaded.dtype])
        self.loaded, self.engine, self.model_name = loaded, engine, loaded.name
        engine.start()
        self.budget.mark_baseline()
        for phase, seconds in self.phases.items():
            self.metrics.model_load.labels(phase=phase).set(seconds)
        self.started = True
        self.metrics.ready.set(0 if self.draining else 1)
        log_json(
            "model_ready",
            model=loaded.name,
            device=loaded.device,
            dtype=loaded.dtype,
            phases={k: round(v, 4) for k, v in self.phases.items()},
            load_total_s=round(sum(self.phases.values()), 4),
            since_process_start_s=round(time.time() - PROCESS_T0, 4),
            max_batch_size=s.max_batch_size,
            max_queue=s.max_queue,
            memory_budget_bytes=s.memory_budget_bytes,
        )

    def load_in_background(self) -> threading.Thread:
        def run() -> None:
            try:
                self.load()
            except BaseException as err:  # a replica that cannot load must crash and restart
                log_json("model_load_failed", error=f"{type(err).__name__}: {err}")
                logging.shutdown()
                os._exit(3)

        thread = threading.Thread(target=run, name="model-loader", daemon=True)
        thread.start()
        return thread


def log_json(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "ts": round(time.time(), 3), **fields}), flush=True)


def error_response(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    retry_after_s: int | None = None,
) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 and status != 429 else "server_unavailable"
    headers = {"Retry-After": str(retry_after_s)} if retry_after_s is not None else None
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": param, "code": code}},
        status_code=status,
        headers=headers,
    )


def create_app(
    settings: ServiceSettings, *, state: ServiceState | None = None, load: bool = True
) -> FastAPI:
    st = state or ServiceState(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if load:
            st.load_in_background()  # the socket binds right after this returns
        yield
        if st.engine is not None:
            st.engine.stop()

    app = FastAPI(title="Gauntlet reference inference service", version="0.1.0", lifespan=lifespan)
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

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest) -> Any:
        if not st.ready:
            st.metrics.unready_requests.inc()
            if st.draining:
                return reject(
                    Rejection(
                        503, "draining", "server is draining; retry elsewhere", retry_after_s=1
                    )
                )
            return reject(Rejection(503, "not_ready", "model is still loading", retry_after_s=1))
        if body.stream:
            return reject(Rejection(400, "invalid", "stream=true is not supported", param="stream"))
        stops = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
        if len(stops) > MAX_STOP_SEQUENCES:
            return reject(
                Rejection(
                    400, "invalid", f"at most {MAX_STOP_SEQUENCES} stop strings", param="stop"
                )
            )
        s = st.settings
        prompt = body.prompt.encode("utf-8", "replace").decode("utf-8")  # lone surrogates -> '?'
        if len(prompt) > s.max_prompt_tokens:  # every character is at least one byte token
            return reject(
                Rejection(
                    413,
                    "too_large",
                    f"prompt is over the limit of {s.max_prompt_tokens} tokens",
                    param="prompt",
                )
            )
        tok = st.loaded.tokenizer
        ids = [tok.bos_token_id, *tok.encode(prompt, add_special_tokens=False)]
        assert st.shape is not None
        try:
            check_lengths(
                len(ids),
                body.max_tokens,
                max_prompt_tokens=s.max_prompt_tokens,
                max_tokens_limit=s.max_tokens_limit,
                max_positions=st.shape.max_positions,
            )
            need = estimate_request_bytes(st.shape, len(ids), body.max_tokens)
            st.budget.reserve(need)
        except Rejection as rej:
            return reject(rej)
        from reference_service.engine import EngineStopped, GenRequest, QueueFull, QueueTimeout

        st.inflight += 1
        st.metrics.memory_reserved.set(st.budget.reserved)
        try:
            req = GenRequest(
                prompt_ids=ids,
                max_tokens=body.max_tokens,
                temperature=body.temperature,
                seed=body.seed,
                stop=[x for x in stops if x],
            )
            try:
                fut = st.engine.submit(req)
            except QueueFull as err:
                return reject(Rejection(429, "queue_full", f"queue full: {err}", retry_after_s=1))
            except EngineStopped as err:
                return reject(Rejection(503, "draining", str(err), retry_after_s=1))
            try:
                res = await asyncio.wrap_future(fut)
            except EngineStopped as err:
                return reject(Rejection(503, "draining", str(err), retry_after_s=1))
            except QueueTimeout as err:
                return reject(Rejection(429, "queue_timeout", str(err), retry_after_s=1))
        finally:
            st.budget.release(need)
            st.metrics.memory_reserved.set(st.budget.reserved)
            st.inflight -= 1
        return {
            "id": f"cmpl-{uuid.uuid4().hex[:24]}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": st.model_name,
            "choices": [
                {"index": 0, "text": res.text, "finish_reason": res.finish_reason, "logprobs": None}
            ],
            "usage": {
                "prompt_tokens": res.prompt_tokens,
                "completion_tokens": res.completion_tokens,
                "total_tokens": res.prompt_tokens + res.completion_tokens,
            },
        }

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
                }
            ],
        }

    @app.get("/startup")
    async def startup() -> Any:
        code, body = st.startup_status()
        return JSONResponse(body, status_code=code)

    @app.get("/ready")
    async def ready() -> Any:
        code, body = st.ready_status()
        return JSONResponse(body, status_code=code)

    @app.get("/healthz")
    async def healthz() -> Any:
        code, body = st.liveness_status()
        return JSONResponse(body, status_code=code)

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
