"""Server rules: what the server under test (harness.servers.kinds) needs of its own flags.

vLLM (0.32, vllm/engine/arg_utils.py, v1/engine/async_llm.py, entrypoints/launchers):
* `--shutdown-timeout` (default 0): 0 aborts the requests in flight on SIGTERM; N > 0 rejects new
  ones and waits up to N s for those in flight. Whether the grace period covers preStop + N is
  the `grace-period` rule's (lifecycle.py), which reads N from this flag; `server-drain` only
  says whether the server drains at all.
* `--max-num-queued-reqs` (default none): a cap on running + waiting requests, past which new
  requests get HTTP 503; without it the waiting queue is unbounded (`--max-num-seqs` caps the
  running batch only).
* `/health` is 200 while the engine is alive (503 on EngineDeadError): a liveness meaning;
  `/v1/models` answers with the model the OpenAI server serves (llm-d's readiness probe).

The reference service drains, bounds its queue and splits its probes by itself: these rules
have nothing to say about it, nor about a generic OpenAI-compatible server whose flags are
unknown.
"""

from __future__ import annotations

from harness.check.findings import Finding
from harness.check.rules._base import finding
from harness.check.targets import Targets
from harness.check.workload import Workload, prestop_seconds, probe, probe_target
from harness.servers.command_line import Flag, flag_value

#: seconds left between the end of the drain and SIGKILL in a suggested --shutdown-timeout (the
#: grace-period rule's fix adds the same 5 s)
DRAIN_MARGIN_S = 5
VLLM_QUEUE_FLAG = "--max-num-queued-reqs"
VLLM_RUNNING_FLAG = "--max-num-seqs"
VLLM_DP_FLAG = "--data-parallel-size"
VLLM_BASIS = "manifest; vLLM 0.32 engine/arg_utils.py"


def _vllm(w: Workload) -> list[int]:
    return w.server_indexes() if w.server.name == "vllm" else []


def waiting_bound(w: Workload) -> tuple[float | None, str]:
    """Requests that can wait in one vLLM replica's queue (running + waiting are capped by
    --max-num-queued-reqs, the running batch by --max-num-seqs), and how it was derived. None:
    unbounded (no flag) or unknown."""
    idx = _vllm(w)
    if not idx:
        return None, ""
    c = w.containers[idx[0]]
    q = flag_value(c, VLLM_QUEUE_FLAG).number
    if q is None:
        return None, ""
    s = flag_value(c, VLLM_RUNNING_FLAG).number
    if s is None:
        return q, f"{VLLM_QUEUE_FLAG} {q:g} (running not subtracted: {VLLM_RUNNING_FLAG} unset)"
    return max(q - s, 0.0), f"{VLLM_QUEUE_FLAG} {q:g} - {VLLM_RUNNING_FLAG} {s:g} running"


def server_drain(w: Workload, t: Targets) -> list[Finding]:
    """Does the server drain in-flight requests on SIGTERM at all (vLLM: --shutdown-timeout)?"""
    kind = w.server
    flag = kind.drain_flag
    if flag is None or kind.name != "vllm":
        return []
    out: list[Finding] = []
    for i in w.server_indexes():
        c = w.containers[i]
        f = flag_value(c, flag)
        if not f.known:  # the grace-period rule says the drain timeout is unknown
            continue
        n = f.number or 0.0
        if n > 0:
            continue
        g = w.grace_period_s
        pre = prestop_seconds(c) or 0.0
        room = int(g - pre - DRAIN_MARGIN_S)
        if room >= 1:
            fix = (
                f"add {flag}={room} (N <= terminationGracePeriodSeconds {g} - preStop {pre:g} - "
                f"margin {DRAIN_MARGIN_S} s; raise the grace period for a longer drain)"
            )
        else:
            fix = (
                f"add {flag}=<N> and raise terminationGracePeriodSeconds to >= preStop {pre:g} + "
                f"N + {DRAIN_MARGIN_S} s"
            )
        out.append(
            finding(
                w,
                "server-drain",
                "error",
                w.container_field(i, "args"),
                f"vLLM aborts the requests in flight on SIGTERM ({flag} "
                + ("is 0" if f.given else "not set, default 0")
                + "): every rollout, scale-down and node drain fails the requests its replicas "
                "are serving",
                measured=f"{f} (abort)" if f.given else f"{f} (default 0: abort)",
                required=f"{flag} N > 0: reject new requests, wait up to N s for those in flight",
                fix=fix,
                basis=VLLM_BASIS,
            )
        )
    return out


def _flag_text(f: Flag) -> str:
    return str(f) if f.given else f"{f.name} unset"


def server_queue_bound(w: Workload, t: Targets) -> list[Finding]:
    """Is the waiting queue bounded, so that overload is answered 503 instead of queueing?"""
    out: list[Finding] = []
    for i in _vllm(w):
        c = w.containers[i]
        q = flag_value(c, VLLM_QUEUE_FLAG)
        seqs = flag_value(c, VLLM_RUNNING_FLAG)
        field = w.container_field(i, "args")
        if not q.known:
            out.append(
                finding(
                    w,
                    "server-queue-bound",
                    "info",
                    field,
                    f"queue bound unknown ({_flag_text(q)} on the command line"
                    + (", a --config file may set it)" if q.maybe_in_config else ")"),
                    fix=f"pass {VLLM_QUEUE_FLAG}=<N> on the command line",
                )
            )
            continue
        if not q.given:
            depth = (
                f"{VLLM_RUNNING_FLAG} {seqs.number:g} + the queue depth the SLO affords, e.g. "
                f"{VLLM_QUEUE_FLAG}={int(seqs.number) * 4}"
                if seqs.number
                else f"{VLLM_RUNNING_FLAG} + the queue depth the SLO affords"
            )
            out.append(
                finding(
                    w,
                    "server-queue-bound",
                    "warning",
                    field,
                    "vLLM's waiting queue is unbounded: under overload requests queue until the "
                    "clients time out (TTFT grows without limit) instead of a fast 503 that a "
                    "client or load balancer can retry on another replica",
                    measured=f"no {VLLM_QUEUE_FLAG} ({VLLM_RUNNING_FLAG} caps the running batch "
                    "only)",
                    required=f"{VLLM_QUEUE_FLAG} set (cap on running + waiting; past it HTTP 503)",
                    fix=f"add {VLLM_QUEUE_FLAG}=<N>: {depth}",
                    basis=VLLM_BASIS,
                )
            )
            continue
        n = q.number
        assert n is not None
        if n <= 0:
            out.append(
                finding(
                    w,
                    "server-queue-bound",
                    "error",
                    field,
                    f"{q} admits no request: vLLM answers every request with 503",
                    measured=str(q),
                    required=f"{VLLM_QUEUE_FLAG} >= {VLLM_RUNNING_FLAG}",
                    fix=f"set {VLLM_QUEUE_FLAG} to {VLLM_RUNNING_FLAG} + a queue depth",
                    basis=VLLM_BASIS,
                )
            )
            continue
        dp = flag_value(c, VLLM_DP_FLAG).number or 1.0
        if seqs.number is not None and n < seqs.number * dp:
            out.append(
                finding(
                    w,
                    "server-queue-bound",
                    "info",
                    field,
                    f"{q} binds before the running batch is full: at most {n:g} requests run "
                    f"where {VLLM_RUNNING_FLAG} allows {seqs.number * dp:g}, and none waits",
                    measured=f"{q}, {seqs}" + (f", {VLLM_DP_FLAG} {dp:g}" if dp != 1 else ""),
                    required=f"{VLLM_QUEUE_FLAG} >= {VLLM_RUNNING_FLAG} x data-parallel ranks "
                    "+ queue depth",
                    fix=f"raise {VLLM_QUEUE_FLAG} to {int(seqs.number * dp)} + the queue depth",
                    basis=VLLM_BASIS + " (SchedulerConfig.max_num_queued_reqs)",
                )
            )
    return out


def server_health_meaning(w: Workload, t: Targets) -> list[Finding]:
    """A readinessProbe on the server's liveness-grade health endpoint (vLLM's /health)."""
    kind = w.server
    if kind.name != "vllm" or kind.health_path is None:
        return []
    out: list[Finding] = []
    for i in w.server_indexes():
        c = w.containers[i]
        r = probe(c, "readinessProbe")
        if r is None or "httpGet" not in r:
            continue
        path = str((r["httpGet"] or {}).get("path", "/")).split("?", 1)[0].rstrip("/") or "/"
        if path != kind.health_path:
            continue
        live = probe(c, "livenessProbe")
        if live is not None and probe_target(live) == probe_target(r):
            continue  # readiness-is-liveness says it, with the same fix
        out.append(
            finding(
                w,
                "server-health-meaning",
                "info",
                w.container_field(i, "readinessProbe"),
                f"readiness on {kind.health_path}: vLLM answers 200 there while its engine is "
                "alive (503 only on EngineDeadError), a liveness meaning; it does not say that "
                "the OpenAI server serves the model",
                measured=f"readinessProbe httpGet {path}",
                required=f"readiness on {kind.ready_path} (llm-d's readiness probe)",
                fix=f"point readinessProbe at {kind.ready_path}",
                basis="vLLM 0.32 entrypoints/serve/instrumentator/health.py",
            )
        )
    return out


RULES = [server_drain, server_queue_bound, server_health_meaning]
