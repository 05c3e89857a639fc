"""What the probes, handlers and the drain share: load state, phases, the engine, the budget.

Probe answers (never queued behind inference):
- `/startup`  200 once the model is loaded and warmed (503 before).
- `/ready`    200 when started, not draining and the engine alive (503 before start, from
  SIGTERM on, and once an engine core process has died).
- `/healthz`  200 while the inference loop is responsive: its thread beat within
  `liveness_stall_s`. 503 when it is stuck, and while the model loads (no inference loop yet: a
  startup probe must cover the load).
- `/health` (and `/ping`) vLLM's meaning: 200 when the engine is up and its thread alive.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from reference_service.admission import MemoryBudget, ModelShape
from reference_service.config import ServiceSettings
from reference_service.events import log_json
from reference_service.metrics import ServiceMetrics

PROCESS_T0 = time.time()


class ServiceState:
    """Everything the probes and handlers read; written by the loader thread and the drain."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.model_name = settings.model_name or (
            settings.model_dir.resolve().name if settings.model_dir else "unknown"
        )
        self.metrics = ServiceMetrics(
            self.model_name, max_batched_tokens=settings.max_num_batched_tokens
        )
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

    @property
    def ready(self) -> bool:
        """Started, not draining, and the engine still there (a dead engine core process takes
        the replica out of its Service at once; liveness then restarts it)."""
        return self.started and not self.draining and self.engine is not None and self.engine.alive

    # ---- probe answers (served by the API and by the probe server) -------------------------
    def startup_status(self) -> tuple[int, dict[str, Any]]:
        return (200 if self.started else 503), {"started": self.started, "phases": self.phases}

    def ready_status(self) -> tuple[int, dict[str, Any]]:
        body = {
            "ready": self.ready,
            "started": self.started,
            "draining": self.draining,
            "engine_alive": self.engine is not None and self.engine.alive,
        }
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

    def health_status(self) -> tuple[int, dict[str, Any]]:
        """vLLM's `/health`: 200 when the engine can serve (loaded, its thread alive), 503 when
        it is not up yet or has died. Unlike `/healthz` it does not judge a stalled loop."""
        eng = self.engine
        ok = self.started and eng is not None and eng.alive
        return (200 if ok else 503), {"status": "ok" if ok else "unavailable"}

    def begin_drain(self) -> None:
        self.draining = True
        self.metrics.ready.set(0)
        self.metrics.draining.set(1)

    def idle(self) -> bool:
        return self.inflight == 0 and (self.engine is None or self.engine.idle())

    # ---- background model load ------------------------------------------------------------
    def load(self) -> None:
        """Load, warm up, start the engine (in this process or its own); log one JSON line with
        the phase timings."""
        s = self.settings
        if s.engine_process:
            engine, loaded = self._load_engine_process()
        else:
            engine, loaded = self._load_engine_thread()
        engine.observer = self.metrics  # warm-up requests are not traffic
        self.loaded, self.engine, self.model_name = loaded, engine, loaded.name
        engine.start()
        self.budget.mark_baseline()
        self.metrics.kv_capacity_bytes = self.budget.kv_capacity()
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
            max_num_seqs=s.max_num_seqs,
            max_num_batched_tokens=s.max_num_batched_tokens,
            max_queue=s.max_queue,
            memory_budget_bytes=s.memory_budget_bytes,
            engine_process=s.engine_process,
        )

    def _load_engine_thread(self) -> tuple[Any, Any]:
        from reference_service.engine import build_engine, warm_up
        from reference_service.loader import load_model

        loaded = load_model(self.settings, self.phases)
        engine = build_engine(self.settings, loaded)
        self.phases["warmup"] = warm_up(engine, loaded.tokenizer, self.settings.max_num_seqs)
        self.shape = loaded.shape()
        self.budget.kv_live = engine.batch.nbytes
        return engine, loaded

    def _load_engine_process(self) -> tuple[Any, Any]:
        """The child loads the model while this process loads the tokenizer it needs to encode
        prompts; the phases are the child's."""
        from reference_service.engine_process import EngineProcess
        from reference_service.loader import LoadedModel, load_tokenizer, require_model_dir

        model_dir = require_model_dir(self.settings)
        engine = EngineProcess(self.settings)
        engine.spawn()
        try:
            tokenizer = load_tokenizer(model_dir)
            info = engine.wait_ready()
        except BaseException:
            engine.stop(1.0)
            raise
        self.phases.update(info.phases)
        self.shape = info.shape
        self.budget.track(info.pid)
        self.budget.kv_live = lambda: engine.kv_bytes
        loaded = LoadedModel(None, tokenizer, info.device, info.dtype, info.name)
        return engine, loaded

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
