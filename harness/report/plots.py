"""Plots for the HTML report, drawn from a scenario's evidence files (matplotlib, no pyplot state).

Every plot is on one time axis per scenario (seconds since the scenario's first observation),
and faults are drawn on it: a fault that did not land is drawn dashed and labelled so.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from harness.report.evidence_reader import Evidence, _num, wall_clock

MIB = 1024 * 1024
PROBE_EVENTS = {  # reason -> (marker, colour)
    "Unhealthy": ("v", "tab:orange"),
    "Killing": ("x", "tab:red"),
    "BackOff": ("s", "tab:purple"),
    "OOMKilling": ("X", "black"),
    "OOMKilled": ("X", "black"),
    "Started": ("^", "tab:green"),
}


@dataclass
class Plot:
    kind: str
    title: str
    path: Path
    caption: str = ""


def _times(ev: Evidence) -> Iterable[float]:
    for s in ev.loads:
        yield from s.time[:1]
    for f in ev.faults:
        if (t := _num(f.get("started_at"))) is not None:
            yield t
    for p in ev.pods:
        if (t := _num(p.get("creationTimestamp"))) is not None:
            yield t
    for rows, key in ((ev.hpa, "time"), (ev.resources, "time"), (ev.events, "firstTimestamp")):
        for r in rows[:1] if key == "time" else rows:
            if (t := _num(r.get(key))) is not None:
                yield t


def time_origin(ev: Evidence) -> float:
    return min(_times(ev), default=0.0)


def _mark_faults(ax: Axes, faults: list[dict[str, Any]], t0: float, label: bool = True) -> None:
    for f in faults:
        start = _num(f.get("started_at"))
        if start is None:
            continue
        landed = bool(f.get("landed"))
        colour = "tab:red" if landed else "tab:gray"
        style = "-" if landed else "--"
        ax.axvline(start - t0, color=colour, linestyle=style, linewidth=1.2)
        end = _num(f.get("ended_at"))
        if landed and end is not None and end > start:
            ax.axvspan(start - t0, end - t0, color="tab:red", alpha=0.08)
        if label:
            text = f"{f.get('kind', 'fault')}: {f.get('target', '')}" + (
                "" if landed else " (did not land)"
            )
            ax.annotate(
                text,
                (start - t0, 1.0),
                xycoords=("data", "axes fraction"),
                rotation=90,
                va="top",
                ha="right",
                fontsize=7,
                color=colour,
            )


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path


def plot_load(ev: Evidence, t0: float, path: Path, slo_ms: dict[str, float]) -> Path | None:
    if not ev.loads:
        return None
    fig = Figure(figsize=(9, 5))
    lat_ax, err_ax = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    for series in ev.loads:
        xs = [t - t0 for t in series.time]
        prefix = f"{series.label} " if len(ev.loads) > 1 else ""
        for p, values in series.latency.items():
            pts = [(x, v) for x, v in zip(xs, values, strict=False) if v is not None]
            if pts:
                lat_ax.plot(*zip(*pts, strict=True), label=f"{prefix}{p}", linewidth=1)
        offered = [(x, v) for x, v in zip(xs, series.offered, strict=False) if v is not None]
        if offered:
            err_ax.plot(
                *zip(*offered, strict=True),
                label=f"{prefix}offered req/s",
                color="tab:gray",
                linestyle="--",
                linewidth=1,
            )
        err_ax.plot(xs, series.requests, label=f"{prefix}achieved req/s", linewidth=1)
        err_ax.plot(xs, series.errors, label=f"{prefix}errors/s", color="tab:red", linewidth=1)
    for p, target in slo_ms.items():
        lat_ax.axhline(
            target, color="black", linestyle=":", linewidth=1, label=f"SLO {p} {target:g} ms"
        )
    _mark_faults(lat_ax, ev.faults, t0)
    _mark_faults(err_ax, ev.faults, t0, label=False)
    lat_ax.set_ylabel("latency (ms)")
    lat_ax.set_title("Latency and errors over time")
    if lat_ax.get_legend_handles_labels()[0]:  # a run with no ok request has no latency line
        lat_ax.legend(fontsize=7, loc="upper left")
    err_ax.set_ylabel("per second")
    err_ax.set_ylim(bottom=0)  # an all-zero series must not get a -0.05..0.05 axis
    err_ax.set_xlabel(f"seconds since {wall_clock(t0)}")
    err_ax.legend(fontsize=7, loc="upper left")
    return _save(fig, path)


def plot_stream(ev: Evidence, t0: float, path: Path, slo: dict[str, Any]) -> Path | None:
    """TTFT, and ITL beside TPOT, per second (streamed runs), with the SLO's targets and the
    faults."""
    streamed = [s for s in ev.loads if s.ttft or s.tpot or s.itl]
    if not streamed:
        return None
    fig = Figure(figsize=(9, 5))
    ttft_ax, tok_ax = fig.subplots(2, 1, sharex=True)
    for series in streamed:
        xs = [t - t0 for t in series.time]
        prefix = f"{series.label} " if len(streamed) > 1 else ""
        for ax, name, by_p in (
            (ttft_ax, "", series.ttft),
            (tok_ax, "ITL ", series.itl),
            (tok_ax, "TPOT ", series.tpot),
        ):
            for p, values in by_p.items():
                pts = [(x, v) for x, v in zip(xs, values, strict=False) if v is not None]
                if pts:
                    ax.plot(*zip(*pts, strict=True), label=f"{prefix}{name}{p}", linewidth=1)
    for ax, keys, what in (
        (ttft_ax, ("ttft_ms",), "time to first token (ms)"),
        (tok_ax, ("itl_ms", "tpot_ms"), "per token (ms)"),
    ):
        for key in keys:
            for p, target in (slo.get(key) or {}).items():
                ax.axhline(
                    target,
                    color="black",
                    linestyle=":",
                    linewidth=1,
                    label=f"SLO {key[:-3].upper()} {p} {target:g} ms",
                )
        _mark_faults(ax, ev.faults, t0, label=ax is ttft_ax)
        ax.set_ylabel(what)
        ax.set_ylim(bottom=0)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="upper left")
    ttft_ax.set_title("Streams over time: TTFT, inter-token latency and TPOT per second")
    tok_ax.set_xlabel(f"seconds since {wall_clock(t0)}")
    return _save(fig, path)


def plot_capacity(
    sweep: list[dict[str, Any]], path: Path, slo: dict[str, Any], of: str = "one replica"
) -> Path | None:
    """A capacity sweep (of one replica, or of the Service): offered rate vs achieved, goodput,
    and the latency percentiles the SLO targets; the capacity is the last step that held."""
    rows = sorted(  # a sweep broken at its first step is followed by one below it
        (r for r in sweep if _num(r.get("requested_rps")) is not None),
        key=lambda r: float(r["requested_rps"]),
    )
    if not rows:
        return None
    xs = [float(r["requested_rps"]) for r in rows]
    fig = Figure(figsize=(9, 5))
    rate_ax, lat_ax = fig.subplots(2, 1, sharex=True, height_ratios=[2, 3])
    rate_ax.plot(xs, xs, color="tab:gray", linestyle="--", linewidth=1, label="offered")
    rate_ax.plot(xs, [_num(r.get("achieved_rps")) for r in rows], marker="o", label="achieved")
    rate_ax.set_ylabel("req/s")
    goods = [
        (x, g) for x, r in zip(xs, rows, strict=True) if (g := _num(r.get("goodput"))) is not None
    ]
    if goods:
        good_ax = rate_ax.twinx()
        good_ax.plot(*zip(*goods, strict=True), color="tab:green", marker="s", label="goodput")
        good_ax.set_ylim(0, 1.05)
        good_ax.set_ylabel("goodput")
        good_ax.legend(fontsize=7, loc="lower right")
    rate_ax.legend(fontsize=7, loc="upper left")
    for key, label in (("latency_ms", "E2E"), ("ttft_ms", "TTFT"), ("tpot_ms", "TPOT")):
        targets = slo.get(key) or {}
        for p in targets or ({"p90": None} if key == "latency_ms" else {}):
            pts = [
                (x, v)
                for x, r in zip(xs, rows, strict=True)
                if (v := _num((r.get(key) or {}).get(p))) is not None
            ]
            if pts:
                line = lat_ax.plot(*zip(*pts, strict=True), marker="o", label=f"{label} {p}")[0]
                if targets.get(p) is not None:
                    lat_ax.axhline(targets[p], color=line.get_color(), linestyle=":", linewidth=1)
    held = [x for x, r in zip(xs, rows, strict=True) if r.get("slo_held")]
    for ax in (rate_ax, lat_ax):
        if held:
            ax.axvline(max(held), color="tab:green", linewidth=1.2)
    if held:
        lat_ax.annotate(
            f"capacity {max(held):g} req/s",
            (max(held), 1.0),
            xycoords=("data", "axes fraction"),
            rotation=90,
            va="top",
            ha="right",
            fontsize=7,
            color="tab:green",
        )
    lat_ax.set_ylabel("latency (ms); dotted: SLO")
    lat_ax.set_yscale("log")
    lat_ax.set_xlabel(f"offered rate, {of} (req/s)")
    if lat_ax.get_legend_handles_labels()[0]:
        lat_ax.legend(fontsize=7, loc="upper left")
    rate_ax.set_title(f"Capacity sweep of {of}: rate vs achieved, goodput and latency")
    return _save(fig, path)


def plot_replicas(ev: Evidence, t0: float, path: Path) -> Path | None:
    rows = [r for r in ev.hpa if _num(r.get("time")) is not None]
    if not rows:
        return None
    rows.sort(key=lambda r: r["time"])
    xs = [r["time"] - t0 for r in rows]
    fig = Figure(figsize=(9, 3.5))
    ax = fig.subplots()
    for key, style in (("desiredReplicas", "-"), ("currentReplicas", "--"), ("readyReplicas", "-")):
        ys = [_num(r.get(key)) for r in rows]
        pts = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
        if pts:
            ax.step(
                *zip(*pts, strict=True),
                where="post",
                linestyle=style,
                label=key.replace("Replicas", ""),
            )
    _mark_faults(ax, ev.faults, t0)
    ax.set_title("Replicas over time (HPA desired / current / ready)")
    ax.set_xlabel("seconds")
    ax.set_ylabel("replicas")
    ax.legend(fontsize=7, loc="upper left")
    return _save(fig, path)


def plot_memory(ev: Evidence, t0: float, path: Path, headroom: float | None) -> Path | None:
    by_pod: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in ev.resources:
        if _num(r.get("time")) is not None and _num(r.get("memory_bytes")) is not None:
            by_pod[str(r.get("pod", "?"))].append(r)
    if not by_pod:
        return None
    fig = Figure(figsize=(9, 3.5))
    ax = fig.subplots()
    limits: set[float] = set()
    for pod, rows in sorted(by_pod.items()):
        rows.sort(key=lambda r: r["time"])
        line = ax.plot(
            [r["time"] - t0 for r in rows],
            [r["memory_bytes"] / MIB for r in rows],
            linewidth=1,
            label=pod,
        )[0]
        prev = 0.0
        for r in rows:
            limit = _num(r.get("memory_limit_bytes"))
            if limit:
                limits.add(limit)
            kills = _num(r.get("oom_kills")) or 0.0
            if kills > prev:
                ax.plot(r["time"] - t0, r["memory_bytes"] / MIB, "X", color="black", markersize=9)
                ax.annotate("OOM kill", (r["time"] - t0, r["memory_bytes"] / MIB), fontsize=7)
            prev = max(prev, kills)
        line.set_label(pod)
    for limit in sorted(limits):
        ax.axhline(
            limit / MIB, color="tab:red", linewidth=1.2, label=f"limit {limit / MIB:.0f} MiB"
        )
        if headroom:
            ax.axhline(
                limit * (1 - headroom) / MIB,
                color="tab:orange",
                linestyle="--",
                linewidth=1,
                label=f"headroom line ({1 - headroom:.0%} of limit)",
            )
    _mark_faults(ax, ev.faults, t0)
    ax.set_title("Container memory (working set) vs limit")
    ax.set_xlabel("seconds")
    ax.set_ylabel("MiB")
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    return _save(fig, path)


def cold_start_phases(
    ev: Evidence, from_pods: bool = True, key: str = "phases"
) -> list[tuple[str, dict[str, float]]]:
    """[(start label, {phase: seconds})] from cold_start.json `starts[].<key>`, else (from_pods)
    derived from pod timestamps. A `total` entry is not a phase and is left out."""
    out: list[tuple[str, dict[str, float]]] = []
    starts = (ev.cold_start or {}).get("starts")
    if isinstance(starts, list):
        for i, s in enumerate(starts):
            if isinstance(s, dict) and isinstance(s.get(key), dict):
                phases = {
                    k: float(v) for k, v in s[key].items() if k != "total" and _num(v) is not None
                }
                out.append((str(s.get("pod", f"start {i + 1}")), phases))
        if out or not from_pods:
            return out
    if not from_pods:
        return out
    for pod in ev.pods:
        created = _num(pod.get("creationTimestamp"))
        history = pod.get("conditionHistory") or pod.get("conditions") or []
        firsts: dict[str, float] = {}
        for c in history:
            t = _num(c.get("lastTransitionTime"))
            if c.get("status") == "True" and t is not None:
                firsts[c["type"]] = min(t, firsts.get(c["type"], t))
        ready = firsts.get("Ready")
        if created is None or ready is None:
            continue
        scheduled = firsts.get("PodScheduled", created)
        started = _num(pod.get("startTime")) or scheduled
        out.append(
            (
                str(pod.get("name")),
                {
                    "scheduling": max(0.0, scheduled - created),
                    "starting": max(0.0, started - scheduled),
                    "until Ready": max(0.0, ready - started),
                },
            )
        )
    return out


def _stacked(ax: Axes, rows: list[tuple[str, dict[str, float]]], title: str) -> None:
    phases: list[str] = []
    for _, ph in rows:
        phases += [p for p in ph if p not in phases]
    labels = [label for label, _ in rows]
    left = [0.0] * len(rows)
    for phase in phases:
        widths = [float(ph.get(phase, 0.0)) for _, ph in rows]
        ax.barh(labels, widths, left=left, label=phase)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.invert_yaxis()
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=7, loc="lower right")


def plot_cold_start(
    ev: Evidence, path: Path, target_s: float | None, from_pods: bool
) -> Path | None:
    rows = cold_start_phases(ev, from_pods)
    if not rows:
        return None
    service = cold_start_phases(ev, from_pods=False, key="service_phases")
    n = len(rows) + len(service)
    fig = Figure(figsize=(9, 1.6 + 0.45 * n))
    axes = fig.subplots(2 if service else 1, 1, sharex=True, squeeze=False)[:, 0]
    _stacked(axes[0], rows, "Cold start, phase by phase (pod timestamps: creation to Ready)")
    if service:
        _stacked(axes[1], service, "Inside the container (the service's own phase metrics)")
    for ax in axes:
        if target_s:
            ax.axvline(target_s, color="tab:red", linestyle=":", label=f"p95 target {target_s:g} s")
    axes[-1].set_xlabel("seconds")
    return _save(fig, path)


def _ready_spans(pod: dict[str, Any]) -> list[tuple[float, float | None]]:
    spans: list[tuple[float, float | None]] = []
    start: float | None = None
    history = sorted(
        (c for c in pod.get("conditionHistory") or [] if c.get("type") == "Ready"),
        key=lambda c: _num(c.get("lastTransitionTime")) or 0.0,
    )
    for c in history:
        t = _num(c.get("lastTransitionTime"))
        if t is None:
            continue
        if c.get("status") == "True" and start is None:
            start = t
        elif c.get("status") != "True" and start is not None:
            spans.append((start, t))
            start = None
    if start is not None:
        spans.append((start, None))
    return spans


def plot_probes(ev: Evidence, t0: float, path: Path) -> Path | None:
    pods = sorted(
        {str(p.get("name")) for p in ev.pods}
        | {
            str((e.get("involvedObject") or {}).get("name"))
            for e in ev.events
            if e.get("reason") in PROBE_EVENTS
            and (e.get("involvedObject") or {}).get("kind") == "Pod"
        }
    )
    if not pods:
        return None
    row = {name: i for i, name in enumerate(pods)}
    ends = [t - t0 for t in _all_ends(ev)]
    end = max(ends, default=1.0) * 1.03 + 1.0  # a Ready that is the last observation stays visible
    fig = Figure(figsize=(9, 1.2 + 0.4 * len(pods)))
    ax = fig.subplots()
    for pod in ev.pods:
        y = row[str(pod.get("name"))]
        created = _num(pod.get("creationTimestamp"))
        if created is not None:
            ax.barh(y, end - (created - t0), left=created - t0, color="lightgray", height=0.5)
        for s, until in _ready_spans(pod):
            ax.barh(
                y,
                ((until if until is not None else t0 + end) - s),
                left=s - t0,
                color="tab:green",
                height=0.5,
                alpha=0.7,
            )
    seen: set[str] = set()
    for e in ev.events:
        reason = str(e.get("reason"))
        obj = e.get("involvedObject") or {}
        t = _num(e.get("firstTimestamp"))
        if reason not in PROBE_EVENTS or str(obj.get("name")) not in row or t is None:
            continue
        marker, colour = PROBE_EVENTS[reason]
        ax.plot(
            t - t0,
            row[str(obj["name"])],
            marker,
            color=colour,
            markersize=7,
            label=reason if reason not in seen else None,
        )
        seen.add(reason)
    _mark_faults(ax, ev.faults, t0)
    ax.set_yticks(range(len(pods)), pods, fontsize=7)
    ax.invert_yaxis()
    ax.set_title("Probe timeline (green: Ready, gray: not Ready)")
    ax.set_xlabel("seconds")
    if seen:
        ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def _all_ends(ev: Evidence) -> Iterable[float]:
    for e in ev.events:
        if (t := _num(e.get("lastTimestamp"))) is not None:
            yield t
    for p in ev.pods:
        for c in [*(p.get("conditionHistory") or []), *(p.get("conditions") or [])]:
            if (t := _num(c.get("lastTransitionTime"))) is not None:
                yield t
    for s in ev.loads:
        yield from s.time[-1:]


def scenario_plots(
    name: str,
    ev: Evidence,
    plots_dir: Path,
    *,
    slo: dict[str, Any] | None = None,
    headroom: float | None = None,
    cold_start_target_s: float | None = None,
) -> list[Plot]:
    """Every plot the evidence allows; a plot that fails to draw is skipped, not fatal."""
    t0 = time_origin(ev)
    makers: list[tuple[str, str, Callable[[Path], Path | None]]] = [
        (
            "load",
            "Latency and errors over time",
            lambda p: plot_load(ev, t0, p, (slo or {}).get("latency_ms") or {}),
        ),
        ("stream", "Streams: TTFT and ITL over time", lambda p: plot_stream(ev, t0, p, slo or {})),
        ("capacity", "Capacity sweep", lambda p: plot_capacity(ev.capacity_sweep, p, slo or {})),
        (
            "capacity-service",
            "Capacity sweep of the Service",
            lambda p: plot_capacity(ev.service_sweep, p, slo or {}, of="the Service"),
        ),
        ("replicas", "Replicas over time", lambda p: plot_replicas(ev, t0, p)),
        ("memory", "Memory vs limit", lambda p: plot_memory(ev, t0, p, headroom)),
        (
            "cold-start",
            "Cold-start phases",
            lambda p: plot_cold_start(ev, p, cold_start_target_s, from_pods=name == "cold-start"),
        ),
        ("probes", "Probe timeline", lambda p: plot_probes(ev, t0, p)),
    ]
    out: list[Plot] = []
    for kind, title, make in makers:
        target = plots_dir / f"{name}-{kind}.png"
        try:
            made = make(target)
        except Exception as err:  # a bad evidence file must not lose the whole report
            ev.problems.append(f"{kind} plot failed: {type(err).__name__}: {err}")
            continue
        if made is not None:
            out.append(Plot(kind=kind, title=title, path=made, caption=f"t=0 is {wall_clock(t0)}"))
    return out
