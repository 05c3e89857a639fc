"""`gauntlet load`: drive open- or closed-loop load at a URL and write DIR/load.json."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from harness.errors import InputError, from_validation_error


def _parse_headers(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for v in values:
        if ":" not in v:
            raise InputError(
                f"header {v!r} is not NAME: VALUE",
                field="--header",
                fix="e.g. --header 'X-Key: abc'",
            )
        k, _, val = v.partition(":")
        out[k.strip()] = val.strip()
    return out


@click.command(name="load")
@click.option(
    "--target", required=True, help="base URL (loopback, or one given with --allow-target)"
)
@click.option("--path", default=None, help="request path [/v1/completions]")
@click.option("--method", default=None, help="HTTP method [POST]")
@click.option(
    "--body", default=None, help="JSON request body (default: from the profile's request shape)"
)
@click.option("--header", "headers", multiple=True, help="extra header 'Name: value' (repeatable)")
@click.option(
    "--profile",
    default=None,
    help="take rate, duration, arrival, request and spike from this profile",
)
@click.option(
    "--mode",
    type=click.Choice(["open", "closed"]),
    default=None,
    help="open loop (rate) or closed loop (users)",
)
@click.option("--rate", type=float, default=None, help="open loop: baseline requests per second")
@click.option("--users", type=int, default=None, help="closed loop: concurrent users")
@click.option(
    "--duration", type=float, default=None, help="seconds (spike: derived from the phases)"
)
@click.option("--arrival", type=click.Choice(["constant", "poisson", "gamma"]), default=None)
@click.option(
    "--burstiness",
    type=float,
    default=None,
    help="gamma arrivals: 1 = Poisson, < 1 burstier, > 1 more even (vLLM's --burstiness)",
)
@click.option("--shape", type=click.Choice(["steady", "ramp", "step", "spike"]), default=None)
@click.option("--factor", type=float, default=None, help="spike/step peak multiple of the baseline")
@click.option(
    "--baseline-s", type=float, default=None, help="spike: seconds at baseline before the spike"
)
@click.option("--spike-s", type=float, default=None, help="spike: seconds at factor x baseline")
@click.option(
    "--after-s", type=float, default=None, help="spike: seconds at baseline after the spike"
)
@click.option("--steps", type=int, default=None, help="step: number of levels")
@click.option(
    "--start-factor", type=float, default=None, help="ramp: start multiple of the baseline"
)
@click.option(
    "--timeout", "timeout_s", type=float, default=None, help="per-request timeout, seconds"
)
@click.option(
    "--max-requests", type=int, default=None, help="hard cap (default 1.5 x the schedule)"
)
@click.option(
    "--workers", type=int, default=None, help="locust worker processes (split the schedule)"
)
@click.option("--seed", type=int, default=None)
@click.option(
    "--allow-target",
    "allow_targets",
    multiple=True,
    help="allow this non-loopback URL (a backend's port-forward)",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="output dir [reports/load-<time>]",
)
@click.option(
    "--stream",
    is_flag=True,
    default=None,
    help="stream (OpenAI SSE): also measure TTFT, time per output token, output tokens",
)
@click.option(
    "--workload",
    "workload_file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="YAML: prompt_tokens / output_tokens distributions (docs/load.md); --body gives the rest",
)
@click.option(
    "--trace",
    "trace_file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="replay a trace's arrivals and lengths: Azure LLM inference CSV or Mooncake JSONL",
)
@click.option("--trace-format", type=click.Choice(["auto", "azure", "mooncake"]), default="auto")
@click.option(
    "--time-scale", type=float, default=1.0, help="replay the trace this many times faster"
)
@click.option("--trace-rows", type=int, default=None, help="replay only the first N rows")
@click.option(
    "--goodput",
    "goodput",
    default=None,
    help="per-request SLOs in ms, e.g. ttft:200,tpot:50,e2el:1000 (ttft/tpot need --stream)",
)
@click.option(
    "--cross-check",
    "cross_check",
    is_flag=True,
    help="read the target's /metrics histograms (vLLM names) before and after: client vs "
    "server means in OUT/crosscheck.json",
)
@click.option("--no-progress", is_flag=True, help="no live progress line")
def load(**opts: Any) -> None:
    """Send load at --target and write OUT/load.json (+ records.npy, per-request)."""
    from harness.load import LoadSpec, Shape, run_load

    spec = _build_spec(opts, LoadSpec, Shape)
    out_dir: Path = opts["out_dir"] or Path("reports") / time.strftime("load-%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)

    def _sigterm(*_a: object) -> None:
        raise KeyboardInterrupt

    from harness.load import crosscheck

    metrics_url = spec.target.rstrip("/") + "/metrics"
    before = crosscheck.snapshot(metrics_url) if opts["cross_check"] else {}
    old = signal.signal(signal.SIGTERM, _sigterm)
    try:
        result = run_load(spec, out_dir, progress=not opts["no_progress"])
    finally:
        signal.signal(signal.SIGTERM, old)
    agreement = None
    if opts["cross_check"]:
        agreement = crosscheck.compare(
            metrics_url, before, crosscheck.snapshot(metrics_url), result
        )
        (out_dir / "crosscheck.json").write_text(agreement.model_dump_json(indent=2))
    lat, sd = result.latency_ms, result.schedule_delay_ms
    click.echo(
        f"{result.requests} requests, {result.ok} ok, errors {json.dumps(result.errors)}, "
        f"dropped {result.dropped}; "
        f"achieved {result.achieved_rate:g} req/s"
        + (f" of {result.requested_rate:g} requested" if result.requested_rate is not None else "")
    )
    click.echo(
        f"latency ms p50 {lat['p50']} p90 {lat['p90']} p99 {lat['p99']} max {lat['max']}; "
        f"schedule delay ms p50 {sd['p50']} p99 {sd['p99']}"
    )
    if result.stream is not None:
        st = result.stream
        click.echo(
            f"TTFT ms p50 {st.ttft_ms['p50']} p90 {st.ttft_ms['p90']} p99 {st.ttft_ms['p99']}; "
            f"TPOT ms p50 {st.tpot_ms['p50']} p90 {st.tpot_ms['p90']}; "
            f"output tokens mean {st.output_tokens['mean']}; finish {st.finish_reasons}"
        )
    if result.workload is not None:
        w = result.workload
        click.echo(
            f"workload: prompt tokens {w.prompt_tokens}, max_tokens {w.max_tokens}"
            + ("" if w.exact_prompts else " (prompts: one token per ASCII byte)")
            + (f", output mismatches {w.output_mismatches}" if w.output_mismatches else "")
        )
    if result.goodput is not None:
        g = result.goodput
        click.echo(
            f"goodput {g.good} good requests ({g.rate_rps:g} req/s), attainment "
            f"{g.attainment} of sent, {g.of_successful} of successful, SLOs {g.slo_ms}"
        )
    if agreement is not None:
        for a in agreement.agreements:
            click.echo(
                f"server {a.metric}: mean {a.server_mean_ms:g} ms vs {a.client_mean_ms} ms "
                f"measured here ({'agrees' if a.agrees else 'DISAGREES'})"
            )
        if agreement.missing:
            click.echo(f"server exposes no {', '.join(agreement.missing)}")
    if result.valid:
        click.echo("generator: valid")
    else:
        click.secho("generator: INVALID - " + "; ".join(result.invalid_reasons), fg="red")
    click.echo(f"wrote {out_dir / 'load.json'}")


def _parse_goodput(text: str | None) -> dict[str, float] | None:
    """'ttft:200,tpot:50' -> {"ttft": 200.0, "tpot": 50.0}."""
    if not text:
        return None
    out: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition(":")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise InputError(
                f"--goodput part {part!r} is not NAME:MS",
                field="--goodput",
                fix="e.g. --goodput ttft:200,tpot:50,e2el:1000",
            )
    return out


def default_body() -> dict[str, Any]:
    """A completion request of the profile default shape (16-byte prompt, 8 tokens)."""
    from harness.load.spec import _prompt
    from harness.profile import RequestShape

    req = RequestShape.model_validate({})
    return {
        "prompt": _prompt(req.prompt_tokens),
        "max_tokens": req.max_tokens,
        "temperature": req.temperature,
    }


def _build_spec(opts: dict[str, Any], LoadSpec: Any, Shape: Any) -> Any:
    body = None
    if opts["body"] is not None:
        try:
            body = json.loads(opts["body"])
        except json.JSONDecodeError as err:
            raise InputError(
                f"--body is not JSON: {err}", field="--body", fix='e.g. --body \'{"prompt": "hi"}\''
            ) from None
        if not isinstance(body, dict):
            raise InputError("--body must be a JSON object", field="--body")
    shape_fields = {
        "factor": opts["factor"], "baseline_s": opts["baseline_s"], "spike_s": opts["spike_s"],
        "after_s": opts["after_s"], "steps": opts["steps"], "start_factor": opts["start_factor"],
    }  # fmt: skip
    shape_fields = {k: v for k, v in shape_fields.items() if v is not None}
    overrides: dict[str, Any] = {
        "path": opts["path"], "method": opts["method"], "mode": opts["mode"],
        "rate_rps": opts["rate"], "users": opts["users"], "duration_s": opts["duration"],
        "arrival": opts["arrival"], "burstiness": opts["burstiness"],
        "timeout_s": opts["timeout_s"],
        "max_requests": opts["max_requests"], "workers": opts["workers"], "seed": opts["seed"],
        "stream": opts["stream"], "goodput": _parse_goodput(opts["goodput"]),
    }  # fmt: skip
    overrides = {k: v for k, v in overrides.items() if v is not None}
    overrides["allow_targets"] = list(opts["allow_targets"])
    overrides["headers"] = _parse_headers(opts["headers"])
    if body is not None:
        overrides["body"] = body
    if opts["workload_file"] is not None:
        from harness.load.workload import load_workload

        overrides["workload"] = load_workload(opts["workload_file"])
        overrides.setdefault("body", {"temperature": 0})
    if opts["trace_file"] is not None:  # validated with the spec (LoadSpec.trace)
        overrides["trace"] = {
            "path": opts["trace_file"],
            "format": opts["trace_format"],
            "time_scale": opts["time_scale"],
            "max_rows": opts["trace_rows"],
        }
        overrides["arrival"] = "trace"
        overrides.setdefault("body", {"temperature": 0})
    try:
        shape = None
        if opts["shape"] is not None:
            shape = Shape(kind=opts["shape"], **shape_fields)
        elif shape_fields:
            raise InputError(
                "shape options given without --shape",
                field="--shape",
                fix="add --shape spike|step|ramp",
            )
        if opts["profile"]:
            from harness.profile import load_profile

            prof = load_profile(opts["profile"])
            if shape is not None and shape.kind == "spike":
                spike = Shape.spike_from(prof.spike).model_copy(update=shape_fields)
                shape = spike
            return LoadSpec.from_profile(prof, opts["target"], shape=shape, **overrides)
        if body is None and overrides.get("method", "POST").upper() == "POST":
            overrides["body"] = default_body()
        if shape is not None and "duration_s" not in overrides and shape.natural_duration():
            overrides["duration_s"] = shape.natural_duration()
        return LoadSpec(target=opts["target"], shape=shape, **overrides)
    except ValidationError as err:
        raise from_validation_error(err, None) from None
