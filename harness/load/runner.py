"""Runs locust worker subprocesses for a LoadSpec and merges their records into `load.json`.

The parent never imports gevent or locust: each worker is `python -m locust -f locustfile.py
--headless` in its own session, driven by files in `<out>/workers/` (config, schedule slice,
ready/go/stop/done signals, progress). Every run is bounded: the schedule is capped at the
spec's request bound, workers get a wall-clock deadline, and stragglers are terminated then
killed. Interrupts stop workers gracefully (records kept), then kill what is left.

A run's end is its own event, never `Thread.join`/`is_alive`: on Python 3.11 a KeyboardInterrupt
raised while the main thread is in `join()` marks the still-running thread as stopped
(threading.py's bpo-45274 clean-up), so a later wait would return at once with no result.
`request_stop_all` (safe inside a signal handler) and `stop_all` reach every running load, also
one whose handle the caller lost to the interrupt.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import SetupError
from harness.load import records as R
from harness.load.analyze import build_result
from harness.load.result import LoadResult
from harness.load.schedule import arrival_times, rate_function, split
from harness.load.spec import LoadSpec
from harness.load.workload import SamplePool, build_pool, build_trace_pool, encoded

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
READY_TIMEOUT_S = 90.0  # locust import on a busy 2-core machine can take a while
START_MARGIN_S = 0.3

_live: set[subprocess.Popen[bytes]] = set()
_live_lock = threading.Lock()
# running loads by id: written by start() and the load thread, read by a signal handler, so
# no lock (one dict operation or `list(d.values())` is atomic under the GIL)
_running: dict[int, LoadHandle] = {}


def _kill_all_live() -> None:
    with _live_lock:
        procs = list(_live)
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(p.pid, signal.SIGKILL)


atexit.register(_kill_all_live)


def request_stop_all() -> int:
    """Ask every running load to stop gracefully (it still writes load.json); returns how many.

    Never blocks and takes no lock: meant for a signal handler, before the interrupt unwinds
    the scenario (whose clean-up then finds its load already stopping)."""
    handles = list(_running.values())
    for h in handles:
        h.request_stop()
    return len(handles)


def stop_all(timeout_s: float | None = None) -> None:
    """Stop every running load and wait for it (bounded), then kill any worker still alive.

    `timeout_s` bounds each load's wait (default: its own request timeout + 20 s)."""
    try:
        for h in list(_running.values()):
            h.request_stop()
        for h in list(_running.values()):
            with contextlib.suppress(Exception):  # its result or failure is the load's business
                h.wait(timeout_s if timeout_s is not None else h.spec.timeout_s + 20.0)
    finally:
        _kill_all_live()


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class LoadHandle:
    """A load run in the background. `wait()` / `stop()` return the LoadResult."""

    def __init__(self, spec: LoadSpec, out_dir: Path) -> None:
        self.spec = spec
        # absolute: the workers run in `wdir` and read the paths in their config from there
        self.out_dir = Path(out_dir).resolve()
        self.wdir = self.out_dir / "workers"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.pool: SamplePool | None = None  # the workload's bodies, built at launch
        self.started_at: float | None = None
        self._result: LoadResult | None = None
        self._error: BaseException | None = None
        self._stop_requested = threading.Event()
        self._started = False
        self._launched = threading.Event()  # the load thread has launched the workers (or failed)
        self._launch_error: BaseException | None = None
        self._done = threading.Event()  # set by the load thread as its very last step
        self._thread = threading.Thread(target=self._main, name="gauntlet-load", daemon=True)

    # public ----------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._started and not self._done.is_set()

    def wait(self, timeout: float | None = None) -> LoadResult:
        """The result once the run has ended. An interrupt here (KeyboardInterrupt) leaves the
        handle intact: wait again, or stop(), to still get the result."""
        if not self._started:
            raise RuntimeError("load run not started")
        if not self._done.wait(timeout):
            raise TimeoutError(f"load run still going after {timeout} s")
        if self._error is not None:
            raise self._error
        if self._result is None:  # cannot happen: the thread sets one of the two
            raise RuntimeError("load run ended without a result")
        return self._result

    def request_stop(self) -> None:
        """Ask the workers to stop gracefully; returns at once (signal-handler safe)."""
        self._stop_requested.set()
        self._touch_stop()

    def stop(self, timeout: float | None = None) -> LoadResult:
        """Stop now; the result covers what ran so far (load.json is still written)."""
        self.request_stop()
        return self.wait(timeout if timeout is not None else self.spec.timeout_s + 30.0)

    def progress(self) -> dict[str, float]:
        """Summed worker progress: t, sent, ok, errors, dropped, in_flight."""
        tot: dict[str, float] = {
            "t": 0.0,
            "sent": 0,
            "ok": 0,
            "errors": 0,
            "dropped": 0,
            "in_flight": 0,
        }
        for k in range(self.spec.workers):
            p = _read_json(self.wdir / f"progress-{k}.json")
            if not p:
                continue
            tot["t"] = max(tot["t"], p.get("t", 0.0))
            for key in ("sent", "ok", "errors", "dropped", "in_flight"):
                tot[key] += p.get(key, 0)
        return tot

    # internals -------------------------------------------------------------------------------
    def start(self) -> LoadHandle:
        self.wdir.mkdir(parents=True, exist_ok=True)
        for stale in self.wdir.iterdir():
            stale.unlink()
        # The load thread launches the workers: a KeyboardInterrupt (raised only in the main
        # thread) can then never leave a worker started but unknown (e.g. inside Popen).
        _running[id(self)] = self
        self._started = True
        try:
            self._thread.start()
            self._launched.wait()
        except BaseException:  # e.g. Ctrl-C: the caller never gets the handle; stop_all() still
            self.request_stop()  # finds it, and the thread stops what it launched
            if self._thread.ident is None:  # no thread at all: nothing was launched
                _running.pop(id(self), None)
                self._done.set()
            raise
        if self._launch_error is not None:
            self._done.wait(30.0)
            raise self._launch_error
        return self

    def _touch_stop(self) -> None:
        with contextlib.suppress(OSError):
            (self.wdir / "stop").touch()

    def _worker_cfg(self, k: int, n_sched: int) -> dict[str, Any]:
        spec = self.spec
        w = spec.workers
        request_body = spec.request_body()
        body = json.dumps(request_body) if request_body is not None else None
        headers = dict(spec.headers)
        if body is not None:
            headers.setdefault("Content-Type", "application/json")
        users = spec.users // w + (1 if k < spec.users % w else 0)
        shape_points = None
        if spec.mode == "closed" and spec.shape is not None:
            ts, rs = rate_function(spec)
            shape_points = [ts.tolist(), rs.tolist()]
        f = lambda name: str(self.wdir / name)  # noqa: E731
        return {
            "worker": k,
            "mode": spec.mode,
            "target": spec.target.rstrip("/"),
            "path": spec.path,
            "method": spec.method,
            "body": body,
            "stream": spec.stream,
            "bodies_file": f("bodies.json") if self.pool is not None else None,
            "workers_total": w,
            "headers": headers,
            "timeout_s": spec.timeout_s,
            "duration_s": spec.duration_s,
            "rate_rps": spec.rate_rps,
            "users": max(1, users),
            "shape_points": shape_points,
            "slots": max(1, math.ceil(spec.in_flight_slots() / w)),
            "max_lag_s": spec.max_lag_s,
            "max_requests": math.ceil(spec.request_bound() / w),
            "go_timeout_s": READY_TIMEOUT_S + 30.0,
            "schedule_file": f(f"schedule-{k}.npy"),
            "records_file": f(f"records-{k}.npy"),
            "gaps_file": f(f"gaps-{k}.npy"),
            "ready_file": f(f"ready-{k}.json"),
            "done_file": f(f"done-{k}.json"),
            "progress_file": f(f"progress-{k}.json"),
            "go_file": f("go.json"),
            "stop_file": f("stop"),
            "n_scheduled": n_sched,
        }

    def _launch(self) -> None:
        spec = self.spec
        if spec.workload is not None:
            self.pool = build_pool(spec.workload, spec.body or {}, spec.seed, spec.target)
        elif spec.trace is not None:
            self.pool = build_trace_pool(spec.trace, spec.body or {}, spec.target)
        if self.pool is not None:
            bodies = encoded(self.pool, spec.stream_options() if spec.stream else None)
            (self.wdir / "bodies.json").write_text(json.dumps(bodies))
        slices: list[np.ndarray] = []
        if spec.mode == "open":
            slices = split(arrival_times(spec), spec.workers)
        env = dict(os.environ)  # the worker imports the installed harness, as this process does
        env.pop("GAUNTLET_LOAD_CONFIG", None)
        for k in range(spec.workers):
            n_sched = len(slices[k]) if slices else 0
            if slices:
                np.save(self.wdir / f"schedule-{k}.npy", slices[k])
            cfg = self._worker_cfg(k, n_sched)
            cfg_path = self.wdir / f"config-{k}.json"
            cfg_path.write_text(json.dumps(cfg))
            user_class = "OpenLoopUser" if spec.mode == "open" else "ClosedLoopUser"
            users = 1 if spec.mode == "open" else cfg["users"]
            safety = spec.duration_s + spec.timeout_s + READY_TIMEOUT_S + 60
            cmd = [
                sys.executable, "-m", "locust", "-f", str(LOCUSTFILE),
                "--headless", "--only-summary",
                "-u", str(users), "-r", str(max(users, 1)), "--run-time", f"{math.ceil(safety)}s",
                "--exit-code-on-error", "0", "--loglevel", "WARNING",
                "--logfile", str(self.wdir / f"locust-{k}.log"),
                "--host", cfg["target"], user_class,
            ]  # fmt: skip
            wenv = dict(env, GAUNTLET_LOAD_CONFIG=str(cfg_path))
            cpus = spec.worker_cpus
            preexec = None
            if cpus:
                cpu = cpus[k % len(cpus)]
                preexec = lambda cpu=cpu: os.sched_setaffinity(0, {cpu})  # noqa: E731
            log = open(self.wdir / f"stdout-{k}.log", "wb")  # noqa: SIM115 - owned by the child
            try:
                proc = subprocess.Popen(
                    cmd, cwd=self.wdir, env=wenv, stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=preexec,
                )  # fmt: skip
            except OSError as err:
                self._terminate()
                raise SetupError(f"could not start a locust worker: {err}") from err
            finally:
                log.close()
            with _live_lock:
                _live.add(proc)
            self.procs.append(proc)

    def _main(self) -> None:
        try:
            try:
                self._launch()
            except BaseException as err:
                self._launch_error = err
                raise
            finally:
                self._launched.set()
            self._result = self._run()
        except BaseException as err:
            self._error = err
        finally:
            try:
                self._terminate()
            finally:
                _running.pop(id(self), None)
                self._done.set()

    def _run(self) -> LoadResult:
        spec = self.spec
        w = spec.workers
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not all((self.wdir / f"ready-{k}.json").exists() for k in range(w)):
            dead = [p for p in self.procs if p.poll() is not None]
            if self._stop_requested.is_set():
                self._touch_stop()
                self._terminate()
                raise SetupError("load stopped before its workers were ready (nothing was sent)")
            if dead or time.monotonic() > deadline:
                self._touch_stop()
                self._terminate()
                raise SetupError(
                    "load workers did not become ready"
                    + (f" (a worker exited with code {dead[0].returncode})" if dead else "")
                    + f"; see {self.wdir}/stdout-*.log"
                )
            time.sleep(0.02)
        self.started_at = time.time() + START_MARGIN_S
        go = self.wdir / "go.json"
        go.with_suffix(".tmp").write_text(json.dumps({"start_epoch": self.started_at}))
        os.replace(go.with_suffix(".tmp"), go)

        hard = time.monotonic() + START_MARGIN_S + spec.duration_s + spec.timeout_s + 30.0
        while any(p.poll() is None for p in self.procs):
            if time.monotonic() > hard:
                self._touch_stop()
                break
            time.sleep(0.05)
        # graceful stop requested or overdue: give workers a moment to write their records
        grace = time.monotonic() + spec.timeout_s + 10.0
        while any(p.poll() is None for p in self.procs) and time.monotonic() < grace:
            time.sleep(0.05)
        self._terminate()
        return self._merge()

    def _terminate(self) -> None:
        for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            alive = [p for p in self.procs if p.poll() is None]
            if not alive:
                break
            for p in alive:
                with contextlib.suppress(OSError):
                    os.killpg(p.pid, sig)
            end = time.monotonic() + wait_s
            while any(p.poll() is None for p in alive) and time.monotonic() < end:
                time.sleep(0.02)
        with _live_lock:
            for p in self.procs:
                if p.poll() is not None:
                    _live.discard(p)

    def _merge(self) -> LoadResult:
        spec = self.spec
        parts, failures, cpu = [], [], []
        stopped_at: list[float] = []
        for k, proc in enumerate(self.procs):
            rec_file = self.wdir / f"records-{k}.npy"
            done = _read_json(self.wdir / f"done-{k}.json")
            if not rec_file.exists() or done is None:
                failures.append(
                    f"worker {k} exited with code {proc.returncode} without records "
                    f"(see {self.wdir / f'stdout-{k}.log'})"
                )
                continue
            parts.append(np.load(rec_file))
            if done.get("stopped_at") is not None:
                stopped_at.append(float(done["stopped_at"]))
            if done.get("cpu_s") is not None and done.get("wall_s"):
                cpu.append(float(done["cpu_s"]) / max(float(done["wall_s"]), 1e-9))
        rec = np.concatenate(parts) if parts else R.empty(0)
        rec = rec[rec["status"] != R.NOT_SENT]
        rec = rec[np.argsort(rec["intended"], kind="stable")]
        stopped_early = bool(stopped_at) or self._stop_requested.is_set()
        duration = spec.duration_s
        if stopped_at:
            duration = min(duration, max(min(stopped_at), 1e-3))
        records_path = self.out_dir / "records.npy"
        np.save(records_path, rec)
        gap_files = [self.wdir / f"gaps-{k}.npy" for k in range(spec.workers)]
        gaps = [np.load(g) for g in gap_files if g.exists()]
        # (2, n): each gap's request send time, the gap
        inter_chunk = np.hstack(gaps) if gaps else np.zeros((2, 0), dtype=np.float32)
        for k in range(spec.workers):
            (self.wdir / f"records-{k}.npy").unlink(missing_ok=True)
            (self.wdir / f"schedule-{k}.npy").unlink(missing_ok=True)
            gap_files[k].unlink(missing_ok=True)
        assert self.started_at is not None
        result = build_result(
            spec,
            rec,
            started_at=self.started_at,
            duration_s=duration,
            stopped_early=stopped_early,
            generator_cpu=cpu,
            worker_failures=failures,
            records_path=str(records_path),
            inter_chunk=inter_chunk,
            pool=self.pool,
        )
        result.attach_records(rec)
        write_result(result, self.out_dir)
        return result


def write_result(result: LoadResult, out_dir: Path) -> Path:
    """Write load.json with `records_path` relative to it (the directory stays movable)."""
    data = result.model_dump(mode="json")
    if result.records_path:
        try:
            data["records_path"] = str(Path(result.records_path).relative_to(out_dir.resolve()))
        except ValueError:
            with contextlib.suppress(ValueError):
                data["records_path"] = str(Path(result.records_path).relative_to(out_dir))
    path = out_dir / "load.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)
    return path


def start_load(spec: LoadSpec, out_dir: Path) -> LoadHandle:
    """Start a load run in the background (workers are launched before this returns)."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return LoadHandle(spec, Path(out_dir)).start()


def run_load(spec: LoadSpec, out_dir: Path, *, progress: bool = False) -> LoadResult:
    """Run to completion (blocking) and write `out_dir/load.json`. Ctrl-C stops gracefully."""
    handle = start_load(spec, out_dir)
    try:
        if progress:
            from harness.load.progress_bar import show_progress  # rich: not in the workers

            show_progress(handle)
        return handle.wait()
    except KeyboardInterrupt:
        # stop gracefully (load.json still written), then re-raise the interrupt itself: an
        # error of the stopped run (not ready yet, timed out) must never replace it
        handle.request_stop()
        try:
            with contextlib.suppress(Exception):
                handle.wait(spec.timeout_s + 20.0)
        finally:
            handle._terminate()
        raise
