"""The engine in a process of its own (vLLM's EngineCore cut), behind the in-thread engine's API.

The HTTP process and the model step otherwise share one GIL: every small torch op the inference
thread runs gives the GIL up and may wait for the event loop to hand it back. Here the child
process (`run_engine_core`, started with `spawn`) loads the model, warms it up and runs the same
`Engine`; the API process (`EngineProcess`) keeps only a tokenizer, sends requests and aborts over
one pipe and gets back one message per engine step with every stream's output, every finished
request's result and the metrics the engine observed. The heartbeat is a shared value, so a hung
engine fails `/healthz` even though nothing arrives; a dead one fails `/healthz` and `/health`
and fails every pending request with 503.

The child ignores SIGINT/SIGTERM: the API process drains and then stops it (a Ctrl-C or a
process-group SIGTERM must not kill the engine under an in-flight drain); it also exits when the
API process goes away (its command pipe closes).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import pickle
import signal
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from reference_service.admission import ModelShape
from reference_service.config import ServiceSettings
from reference_service.events import log_json
from reference_service.scheduler import EngineDead, EngineStopped, QueueFull
from reference_service.sequence import FinishReason, OutputSink, Sequence, StepOutput, deliver


@dataclass(frozen=True)
class EngineInfo:
    """What the child reports once the model is loaded and warm."""

    phases: dict[str, float]
    shape: ModelShape
    device: str
    dtype: str
    name: str
    pid: int


class EngineProcess:
    """API-side handle of an engine core process; the interface `ServiceState`, the handlers and
    the drain use on the in-thread `Engine` (submit, abort, abort_all, probes' reads, chaos)."""

    def __init__(self, settings: ServiceSettings) -> None:
        ctx = multiprocessing.get_context("spawn")
        child_requests, self._requests = ctx.Pipe(duplex=False)
        self._outputs, child_outputs = ctx.Pipe(duplex=False)
        self._heartbeat = ctx.Value("d", time.monotonic(), lock=False)
        self._proc = ctx.Process(
            target=run_engine_core,
            args=(settings, child_requests, child_outputs, self._heartbeat),
            name="engine-core",
            daemon=True,
        )
        self._child_ends = (child_requests, child_outputs)
        self._pending: dict[int, Sequence] = {}
        self._lock = threading.Lock()  # _pending and the request pipe
        self._closed = False
        self._stopping = False
        self._death: str | None = None  # why the child exited under us
        self._reader: threading.Thread | None = None
        self.observer: Any = None
        self.waiting = 0
        self.running = 0
        self.kv_bytes = 0

    # ---- lifecycle -------------------------------------------------------------------
    def spawn(self) -> None:
        """Start the child; it loads the model while the caller does its own start-up."""
        self._proc.start()
        for end in self._child_ends:
            end.close()

    def wait_ready(self) -> EngineInfo:
        """Block until the child is loaded and warm; raise with its error if it failed or died
        (no timeout of its own: a slow load is the startup probe's to judge)."""
        try:
            [(kind, payload)] = self._outputs.recv()
        except EOFError:
            self._proc.join(5)
            raise RuntimeError(
                f"engine process exited (exit code {self._proc.exitcode}) while loading"
            ) from None
        if kind != "ready":
            raise RuntimeError(f"engine process failed to load: {payload}")
        return payload

    def start(self) -> None:
        """Begin dispatching the child's step messages (after `wait_ready`)."""
        self._reader = threading.Thread(target=self._read, name="engine-outputs", daemon=True)
        self._reader.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping = True
        self._send(("stop",))
        self._proc.join(timeout)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(timeout)
        if self._reader is not None:
            self._reader.join(timeout)
        self._fail_pending("engine stopped")

    @property
    def alive(self) -> bool:
        return self._proc.is_alive() and not self._closed

    # ---- state read by probes and admission (never waits on the child) -------------------
    def heartbeat_age(self) -> float:
        return time.monotonic() - float(self._heartbeat.value)

    def idle(self) -> bool:
        return not self._pending

    # ---- submission, cancellation, chaos -------------------------------------------------
    def submit(self, seq: Sequence) -> Sequence:
        """Queue-full and other refusals come back as the sequence's first output (429)."""
        with self._lock:
            if self._death is not None:
                raise EngineDead(self._death)
            if self._closed or self._stopping:
                raise EngineStopped("engine stopped")
            self._pending[seq.seq_id] = seq
            self._requests.send(
                ("add", seq.seq_id, seq.prompt_ids, seq.params, seq.arrival, seq.sink is not None)
            )
        return seq

    def abort(self, seq: Sequence, error: BaseException | None = None) -> None:
        if seq.seq_id in self._pending:
            self._send(("abort", seq.seq_id, error))

    def abort_all(self, reason: str) -> int:
        count = len(self._pending)
        if not self._send(("abort_all", reason)):
            self._fail_pending(reason)
        return count

    def hang(self, seconds: float) -> None:
        self._send(("hang", seconds))

    def slow_down(self, step_s: float, seconds: float) -> None:
        self._send(("slow", step_s, seconds))

    def _send(self, message: tuple[Any, ...]) -> bool:
        with self._lock:
            if self._closed:
                return False
            try:
                self._requests.send(message)
            except OSError:
                return False
        return True

    # ---- the child's step messages ---------------------------------------------------------
    def _read(self) -> None:
        while True:
            try:
                events = self._outputs.recv()
            except (EOFError, OSError):
                break
            self._dispatch(events)
        with self._lock:
            self._closed = True
        self._proc.join(2)
        if self._stopping:
            self._fail_pending("engine stopped")
            return
        self._death = f"engine process exited (exit code {self._proc.exitcode})"
        log_json("engine_died", exit_code=self._proc.exitcode, failed_requests=len(self._pending))
        self._fail_pending(self._death)

    def _dispatch(self, events: list[tuple[Any, ...]]) -> None:
        outputs: list[tuple[OutputSink, StepOutput]] = []
        for event in events:
            kind = event[0]
            if kind == "out":
                seq = self._pending.get(event[1])
                out: StepOutput = event[2]
                if seq is not None and seq.sink is not None:
                    outputs.append((seq.sink, out))
                    seq.finish_reason = out.finish_reason
            elif kind == "done":
                with self._lock:
                    seq = self._pending.pop(event[1], None)
                if seq is None:
                    continue
                outcome = event[2]
                if isinstance(outcome, BaseException):
                    seq.finish_reason = seq.finish_reason or FinishReason.ABORT
                    seq.future.set_exception(outcome)
                else:
                    seq.finish_reason = FinishReason(outcome.finish_reason)
                    seq.future.set_result(outcome)
            elif kind == "obs":
                self._observe(event[1], event[2])
        deliver(outputs)

    def _observe(self, name: str, args: tuple[Any, ...]) -> None:
        if name == "on_queue":
            self.waiting, self.running = args
        elif name == "on_step":
            self.kv_bytes = args[2]
        if self.observer is not None:
            getattr(self.observer, name)(*args)

    def _fail_pending(self, reason: str) -> None:
        with self._lock:
            left = list(self._pending.values())
            self._pending.clear()
        err = EngineDead(reason) if self._death else EngineStopped(reason)
        for seq in left:
            seq.finish_reason = FinishReason.ABORT
            if seq.sink is not None:
                with contextlib.suppress(RuntimeError):  # its event loop already closed
                    seq.sink(StepOutput([], "", FinishReason.ABORT, err))
            if not seq.future.done():
                seq.future.set_exception(err)
        self.waiting = self.running = self.kv_bytes = 0


# ---- the child ---------------------------------------------------------------------------
class _Outbox:
    """Events of one engine step, sent as one message (from whichever thread produced them)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.events: list[tuple[Any, ...]] = []
        self.lock = threading.Lock()

    def put(self, event: tuple[Any, ...]) -> None:
        with self.lock:
            self.events.append(event)

    def flush(self) -> None:
        with self.lock:
            if not self.events:
                return
            events, self.events = self.events, []
            with contextlib.suppress(OSError):  # the API process is gone: the command
                self.conn.send(events)  # pipe's EOF ends us


class _RelayObserver:
    """The engine's metrics, sent to the API process's registry with the step's outputs."""

    def __init__(self, outbox: _Outbox) -> None:
        self.outbox = outbox

    def on_queue(self, waiting: int, running: int) -> None:
        self.outbox.put(("obs", "on_queue", (waiting, running)))

    def on_step(self, sequences: int, tokens: int, kv_bytes: int) -> None:
        self.outbox.put(("obs", "on_step", (sequences, tokens, kv_bytes)))

    def on_prefix_cache(self, queried_tokens: int, hit_tokens: int) -> None:
        self.outbox.put(("obs", "on_prefix_cache", (queried_tokens, hit_tokens)))

    def on_done(self, result: Any) -> None:
        self.outbox.put(("obs", "on_done", (result,)))


def portable(err: BaseException) -> BaseException:
    """`err` if it survives pickling, else a RuntimeError that names it."""
    try:
        pickle.loads(pickle.dumps(err))
        return err
    except Exception:
        return RuntimeError(f"{type(err).__name__}: {err}")


def run_engine_core(
    settings: ServiceSettings, requests: Connection, outputs: Connection, heartbeat: Any
) -> None:
    """The child's main: load, warm up, report, then run the engine until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    import os

    from reference_service.engine import build_engine, warm_up
    from reference_service.loader import load_model

    phases: dict[str, float] = {}
    try:
        loaded = load_model(settings, phases)
        engine = build_engine(settings, loaded)
        phases["warmup"] = warm_up(engine, loaded.tokenizer, settings.max_num_seqs)
        info = EngineInfo(
            phases=phases,
            shape=loaded.shape(),
            device=loaded.device,
            dtype=loaded.dtype,
            name=loaded.name,
            pid=os.getpid(),
        )
    except BaseException as err:
        outputs.send([("failed", f"{type(err).__name__}: {err}")])
        return
    outbox = _Outbox(outputs)
    engine.observer = _RelayObserver(outbox)

    def after_iteration() -> None:
        heartbeat.value = engine.last_beat
        outbox.flush()

    engine.on_iteration = after_iteration
    outputs.send([("ready", info)])
    engine.start()
    seqs: dict[int, Sequence] = {}
    try:
        _serve_commands(engine, requests, outbox, seqs)
    finally:
        engine.stop()
        outbox.flush()
        outputs.close()


def _serve_commands(
    engine: Any, requests: Connection, outbox: _Outbox, seqs: dict[int, Sequence]
) -> None:
    while True:
        try:
            command = requests.recv()
        except (EOFError, OSError):
            return  # the API process is gone
        kind = command[0]
        if kind == "add":
            _, seq_id, prompt_ids, params, arrival, stream = command
            seq = Sequence(prompt_ids, params, arrival=arrival, seq_id=seq_id)
            if stream:
                seq.sink = lambda out, sid=seq_id: outbox.put(("out", sid, _portable_output(out)))

            def finished(future: Any, sid: int = seq_id) -> None:
                seqs.pop(sid, None)
                err = future.exception()
                outbox.put(("done", sid, portable(err) if err is not None else future.result()))

            seq.future.add_done_callback(finished)
            seqs[seq_id] = seq
            try:
                engine.submit(seq)
            except (QueueFull, EngineStopped) as err:
                seq.fail(FinishReason.ABORT, err)
                outbox.flush()
        elif kind == "abort":
            if (target := seqs.get(command[1])) is not None:
                engine.abort(target, command[2])
        elif kind == "abort_all":
            engine.abort_all(command[1])
        elif kind == "hang":
            engine.hang(command[1])
        elif kind == "slow":
            engine.slow_down(command[1], command[2])
        elif kind == "stop":
            return


def _portable_output(out: StepOutput) -> StepOutput:
    if out.error is None:
        return out
    return StepOutput(out.token_ids, out.text, out.finish_reason, portable(out.error))
