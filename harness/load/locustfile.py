"""The locustfile each load worker runs: `python -m locust -f harness/load/locustfile.py ...`.

Runs only inside a locust subprocess started by `harness.load.runner` (gevent-patched); the
config comes from the JSON file named by $GAUNTLET_LOAD_CONFIG. Two user classes:

- `OpenLoopUser`: one user per worker whose task walks this worker's slice of the global
  arrival schedule and fires each request on its own greenlet through the user's FastHttpSession
  (a bounded pool of in-flight slots). Each request records intended, actual send and done
  times, so latency is measured from the intended send time (coordinated-omission safe).
  Requests that are due more than `max_lag_s` ago, or find every slot busy, are dropped and
  recorded as such.
- `ClosedLoopUser`: plain locust closed loop (each user sends, waits, repeats), optionally
  following the shape through a `LoadTestShape` on the user count.

Workers start together: each writes its ready file, then waits for the parent's go file that
holds the common start epoch. A stop file asks for a graceful stop (records are still written).
"""

from __future__ import annotations

import array
import json
import os
import resource
import sys
import time
from typing import Any

import gevent
import gevent.event
import gevent.pool
import numpy as np
from locust import FastHttpUser, LoadTestShape, constant, events, task

from harness.load import records as R
from harness.load.sse import StreamTiming, read_stream

_cfg_path = os.environ.get("GAUNTLET_LOAD_CONFIG")
if not _cfg_path:
    sys.exit(
        "harness/load/locustfile.py is started by `gauntlet load` (GAUNTLET_LOAD_CONFIG unset)"
    )
with open(_cfg_path) as _f:
    CFG: dict[str, Any] = json.load(_f)

try:  # one socket per in-flight slot: lift the soft fd limit to the hard one
    _soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (_hard, _hard))
except (ValueError, OSError):
    pass

BODY: bytes | None = CFG["body"].encode() if CFG["body"] is not None else None
# A workload's pool of bodies (request n of the whole run sends BODIES[n % len]), else BODY.
BODIES: list[bytes] = []
if CFG.get("bodies_file"):
    with open(CFG["bodies_file"]) as _f:
        BODIES = [b.encode() for b in json.load(_f)]
WORKER, WORKERS = int(CFG.get("worker", 0)), int(CFG.get("workers_total", 1))
HEADERS: dict[str, str] = CFG["headers"]
PATH_QS: str = CFG["path"]
STREAM: bool = bool(CFG.get("stream"))
perf = time.perf_counter
NAN = float("nan")
# A record's fields after `intended`, in RECORD_DTYPE's order: sent, done, status, first, last,
# chunks, tokens, sample, finish.
Row = tuple[float, float, int, float, float, int, int, int, int]


class _State:
    """Process-wide run state shared by the controller and the users."""

    go = gevent.event.Event()
    finished = gevent.event.Event()
    stopping = False
    base = 0.0  # perf_counter value at the run start (start_epoch)
    start_epoch = 0.0
    stopped_at: float | None = None
    sent = ok = errors = dropped = 0
    in_flight = 0
    closed_rows: list[tuple[float, ...]] = []
    gaps = array.array("f")  # inter-chunk gaps of the complete, ok streams
    gaps_sent = array.array("f")  # the send time (s from start) of each gap's request
    open_rec: np.ndarray | None = None
    written = False
    cpu_at_go = 0.0
    logged_other = False


def _now() -> float:
    return perf() - _State.base


def _classify(resp: Any) -> int:
    """A FastHttpSession response: its status, or (status 0) the kind of its `error`."""
    code = getattr(resp, "status_code", 0) or 0
    if code:
        return int(code)
    err = getattr(resp, "error", None)
    kind = _classify_exc(err) if isinstance(err, BaseException) else R.OTHER_ERROR
    if kind == R.OTHER_ERROR and not _State.logged_other:
        _State.logged_other = True
        print(
            f"unclassified request error: {type(err).__mro__} {err!r}", file=sys.stderr, flush=True
        )
    return kind


def _count(code: int) -> None:
    if 200 <= code < 400:
        _State.ok += 1
    else:
        _State.errors += 1


def _send(client: Any) -> tuple[float, float, int]:
    sent = _now()
    try:
        resp = client.request(
            CFG["method"], CFG["path"], data=BODY, headers=HEADERS, name=CFG["path"]
        )
        code = _classify(resp)
    except gevent.Timeout:
        code = R.TIMEOUT
    except Exception:
        code = R.OTHER_ERROR
    return sent, _now(), code


class _HttpError(Exception):
    """A non-2xx/3xx status, so locust's stats count the request as failed."""


def _direct_client(slots: int) -> Any:
    """geventhttpclient's pooled HTTPClient (the library under FastHttpUser), one pool slot per
    in-flight request. About 40 % less CPU per request than FastHttpSession's user agent, which
    is what lets one core hold a few thousand requests per second on a modest CPU."""
    from urllib.parse import urlsplit

    from geventhttpclient import HTTPClient

    u = urlsplit(CFG["target"])
    return HTTPClient(
        u.hostname or "127.0.0.1",
        u.port or (443 if u.scheme == "https" else 80),
        concurrency=slots,
        network_timeout=CFG["timeout_s"],
        connection_timeout=CFG["timeout_s"],
        ssl=u.scheme == "https",
        insecure=True,
    )


def _body(n: int) -> tuple[bytes, int]:
    """The body of the run's n-th request and its sample index (-1: the one fixed body)."""
    if BODIES:
        k = n % len(BODIES)
        return BODIES[k], k
    return BODY or b"", -1


def _send_direct(http: Any, fire: Any, n: int) -> Row:
    """The run's n-th request on the direct client (a streamed one read chunk by chunk as it
    arrives); reports it through locust's request event. Returns the record's fields from
    `sent` on."""
    body, sample = _body(n)
    sent = _now()
    exc: BaseException | None = None
    length = 0
    timing = StreamTiming()
    try:
        resp = http.request(CFG["method"], PATH_QS, body=body, headers=HEADERS)
        code = int(resp.status_code)
        try:
            if STREAM and code == 200:
                timing = read_stream(lambda: resp.readline(b"\n"), _now)
                length = timing.chunks
            else:
                length = len(resp.read())
        finally:
            resp.release()
        if not 200 <= code < 400:
            exc = _HttpError(f"HTTP {code}")
        elif STREAM and timing.error is not None:
            code, exc = R.STREAM_ERROR, _HttpError(f"stream error: {timing.error}")
        elif STREAM and not timing.done:
            code, exc = R.STREAM_INCOMPLETE, _HttpError("stream ended without [DONE]")
        elif STREAM and _State.go.is_set() and not _State.finished.is_set():
            _State.gaps.extend(timing.gaps)
            _State.gaps_sent.extend([sent] * len(timing.gaps))
    except gevent.Timeout as e:
        code, exc = R.TIMEOUT, e
    except Exception as e:
        code, exc = _classify_exc(e), e
    done = _now()
    fire(
        request_type=CFG["method"],
        name=CFG["path"],
        response_time=(done - sent) * 1000.0,
        response_length=length,
        exception=exc,
        context={},
    )
    first = NAN if timing.first is None else timing.first
    last = NAN if timing.last is None else timing.last
    finish = R.FINISH_CODES.get(timing.finish_reason or "", 4) if timing.finish_reason else 0
    return sent, done, code, first, last, timing.chunks, timing.tokens, sample, finish


def _classify_exc(err: BaseException) -> int:
    if isinstance(err, (TimeoutError, gevent.Timeout)) or "timeout" in type(err).__name__.lower():
        return R.TIMEOUT
    if isinstance(err, (ConnectionError, OSError)):
        return R.CONNECTION
    if "timed out" in str(err):
        return R.TIMEOUT
    return R.OTHER_ERROR


def _write_records() -> None:
    if _State.written:
        return
    _State.written = True
    if CFG["mode"] == "open":
        rec = _State.open_rec if _State.open_rec is not None else R.empty(0)
    else:
        rec = R.empty(len(_State.closed_rows))
        if _State.closed_rows:
            arr = np.array(_State.closed_rows, dtype=float)
            for col, name in enumerate(R.RECORD_DTYPE.names or ()):
                rec[name] = arr[:, col].astype(R.RECORD_DTYPE[name])
    tmp = CFG["records_file"] + ".tmp.npy"
    np.save(tmp, rec)
    os.replace(tmp, CFG["records_file"])
    if STREAM:
        tmp = CFG["gaps_file"] + ".tmp.npy"
        pairs = (
            np.frombuffer(_State.gaps_sent, np.float32),
            np.frombuffer(_State.gaps, np.float32),
        )
        np.save(tmp, np.vstack(pairs))  # row 0: the request's send time, row 1: the gap
        os.replace(tmp, CFG["gaps_file"])
    _write_json(
        CFG["done_file"],
        {
            "start_epoch": _State.start_epoch,
            "stopped_at": _State.stopped_at,
            "pid": os.getpid(),
            "cpu_s": _cpu() - _State.cpu_at_go if _State.go.is_set() else None,
            "wall_s": _now() if _State.go.is_set() else None,
        },
    )


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _write_json(path: str, data: dict[str, Any]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def _progress_loop() -> None:
    while not _State.finished.is_set():
        t = os.times()
        _write_json(
            CFG["progress_file"],
            {
                "t": _now() if _State.go.is_set() else 0.0,
                "sent": _State.sent,
                "ok": _State.ok,
                "errors": _State.errors,
                "dropped": _State.dropped,
                "in_flight": _State.in_flight,
                "cpu_s": t.user + t.system,
            },
        )
        if os.path.exists(CFG["stop_file"]) and not _State.stopping:
            _State.stopping = True
            _State.stopped_at = _now() if _State.go.is_set() else 0.0
        gevent.sleep(0.25)


def _controller(environment: Any) -> None:
    """Ready -> wait for go -> run until the schedule/deadline is done -> write records -> quit."""
    _write_json(CFG["ready_file"], {"pid": os.getpid()})
    give_up = time.monotonic() + CFG["go_timeout_s"]
    while not os.path.exists(CFG["go_file"]):
        if time.monotonic() > give_up or os.path.exists(CFG["stop_file"]):
            _State.stopping = True
            _State.finished.set()
            _write_records()
            environment.runner.quit()
            return
        gevent.sleep(0.005)
    with open(CFG["go_file"]) as f:
        _State.start_epoch = float(json.load(f)["start_epoch"])
    _State.base = perf() + (_State.start_epoch - time.time())
    delay = _State.base - perf()
    if delay > 0:
        gevent.sleep(delay)
    _State.cpu_at_go = _cpu()
    _State.go.set()
    if CFG["mode"] == "closed":
        while _now() < CFG["duration_s"] and not _State.stopping:
            if _State.sent >= CFG["max_requests"]:
                break
            gevent.sleep(0.05)
        if _State.stopping and _State.stopped_at is None:
            _State.stopped_at = _now()
        _State.stopping = True
        _State.finished.set()
    else:
        hard = CFG["duration_s"] + CFG["timeout_s"] + 10.0
        _State.finished.wait(timeout=max(0.0, hard - _now()))
    _write_records()
    environment.runner.quit()


@events.init.add_listener
def _on_init(environment: Any, **_kw: Any) -> None:
    gevent.spawn(_controller, environment)
    gevent.spawn(_progress_loop)


@events.quitting.add_listener
def _on_quitting(**_kw: Any) -> None:
    # SIGTERM / Ctrl-C path: keep what was measured
    if _State.stopped_at is None and _State.go.is_set() and not _State.finished.is_set():
        _State.stopped_at = _now()
    _State.finished.set()
    _write_records()


class OpenLoopUser(FastHttpUser):
    host = CFG["target"]
    network_timeout = CFG["timeout_s"]
    connection_timeout = CFG["timeout_s"]
    concurrency = max(1, int(CFG["slots"]))
    wait_time = constant(0)
    fixed_count = 1

    @task
    def run_schedule(self) -> None:
        if _State.finished.is_set():
            gevent.sleep(1.0)
            return
        times = np.load(CFG["schedule_file"])
        rec = R.empty(len(times))
        rec["intended"] = times
        _State.open_rec = rec
        sent_a, done_a, status_a = rec["sent"], rec["done"], rec["status"]
        pool = gevent.pool.Pool(int(CFG["slots"]))
        http = _direct_client(int(CFG["slots"]))
        fire = self.environment.events.request.fire
        max_lag = float(CFG["max_lag_s"])

        def one(i: int) -> None:
            _State.in_flight += 1
            _State.sent += 1
            row = _send_direct(http, fire, WORKER + WORKERS * i)
            rec[i] = (times[i], *row)
            code = row[2]
            _State.in_flight -= 1
            _count(code)

        _State.go.wait()
        for i, t in enumerate(times.tolist()):
            if _State.stopping:
                break
            wait = t - (perf() - _State.base)
            if wait > 0:
                gevent.sleep(wait)
                if _State.stopping:
                    break
            if (perf() - _State.base) - t > max_lag:
                status_a[i] = R.DROPPED_LATE
                _State.dropped += 1
                continue
            if pool.full():
                status_a[i] = R.DROPPED_NO_SLOT
                _State.dropped += 1
                continue
            pool.spawn(one, i)
        pool.join(timeout=CFG["timeout_s"] + 2.0)
        pool.kill(block=True, timeout=2.0)
        unfinished = ~np.isnan(sent_a) & np.isnan(done_a)
        status_a[unfinished] = R.TIMEOUT
        _State.finished.set()
        gevent.sleep(5.0)  # the controller quits the runner


class ClosedLoopUser(FastHttpUser):
    host = CFG["target"]
    network_timeout = CFG["timeout_s"]
    connection_timeout = CFG["timeout_s"]
    wait_time = constant(0)
    _direct: Any = None

    @task
    def request_once(self) -> None:
        _State.go.wait()
        if _State.stopping:
            gevent.sleep(1.0)
            return
        n = WORKER + WORKERS * _State.sent
        _State.in_flight += 1
        _State.sent += 1
        if STREAM or BODIES:  # FastHttpSession buffers whole bodies and sends one fixed body
            if self._direct is None:
                self._direct = _direct_client(1)
            row = _send_direct(self._direct, self.environment.events.request.fire, n)
        else:
            s, d, c = _send(self.client)
            row = (s, d, c, NAN, NAN, 0, -1, -1, 0)
        _State.in_flight -= 1
        _count(row[2])
        if not _State.finished.is_set():
            _State.closed_rows.append((row[0], *row))


if CFG["mode"] == "closed" and CFG.get("shape_points"):
    _ts = np.asarray(CFG["shape_points"][0], dtype=float)
    _rs = np.asarray(CFG["shape_points"][1], dtype=float)

    class ClosedLoopShape(LoadTestShape):
        """User count follows the shape: users x rate(t) / baseline rate."""

        use_common_options = False

        def tick(self) -> tuple[int, float] | None:
            t = _now() if _State.go.is_set() else 0.0
            factor = float(np.interp(t, _ts, _rs)) / CFG["rate_rps"]
            users = max(1, round(CFG["users"] * factor))
            return users, float(max(users, 100))
