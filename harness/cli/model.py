"""`gauntlet model hpa|probes|spread --input FILE`: what Kubernetes would do, from pasted
objects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import yaml

from harness.errors import InputError
from harness.models._k8s import ModelInputError, to_epoch


def _load(path: str) -> dict:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as err:
        raise InputError(
            f"cannot read: {err.strerror}", file=path, fix="pass an existing YAML/JSON file"
        ) from None
    try:
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as err:
        raise InputError(f"not valid YAML/JSON: {err}", file=path) from None
    if not isinstance(data, dict):
        raise InputError("expected a mapping at the top level", file=path, field="<root>")
    return data


def _require(data: dict, key: str, path: str, kind: type | tuple[type, ...], fix: str) -> Any:
    if key not in data:
        raise InputError("is required", file=path, field=key, fix=fix)
    if not isinstance(data[key], kind):
        raise InputError(
            f"has the wrong type ({type(data[key]).__name__})", file=path, field=key, fix=fix
        )
    return data[key]


def _emit(result: dict, fmt: str, text: str) -> None:
    click.echo(json.dumps(result, indent=2, default=str) if fmt == "json" else text)


_fmt_opt = click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
_input_opt = click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="YAML or JSON file (Kubernetes objects as from kubectl get -o yaml)",
)


@click.group()
def model() -> None:
    """Predict what Kubernetes will do: HPA decisions, probe kills, topology spread."""


def _wrap(path: str, fn: Any) -> Any:
    try:
        return fn()
    except ModelInputError as err:
        raise InputError(err.message, file=path, field=err.field, fix=err.fix) from None


@model.command()
@_input_opt
@_fmt_opt
def hpa(input_path: str, fmt: str) -> None:
    """One HPA reconcile (desiredReplicas, currentMetrics, conditions); optional simulation."""
    from harness.models.hpa import HPAController, controller_options, simulate

    data = _load(input_path)
    hpa_obj = _require(
        data, "hpa", input_path, dict, "paste an autoscaling/v2 HorizontalPodAutoscaler under 'hpa'"
    )
    if hpa_obj.get("kind") == "ScaledObject":  # read as the HPA KEDA generates for it
        hpa_obj = _wrap(input_path, lambda: _keda_hpa(hpa_obj))

    def run() -> tuple[dict, str]:
        kw: dict[str, Any] = controller_options(data.get("controller"))
        sync_period_s = kw.pop("sync_period_s")
        result: dict[str, Any] = {}
        lines: list[str] = []
        if "pods" in data or "podMetrics" in data or "customMetrics" in data:
            ctl = HPAController(hpa_obj, **kw)
            ctl.load_history(data.get("history"))
            pods = data.get("pods") or []
            if not isinstance(pods, list):
                raise ModelInputError("expected a list of v1 Pods", "pods")
            now = to_epoch(data["now"], "now") if "now" in data else _latest(data)
            spec_replicas, source = _spec_replicas(data, hpa_obj, pods)
            status_replicas = _count(data.get("statusReplicas"), "statusReplicas")
            d = ctl.reconcile(
                now,
                spec_replicas=spec_replicas,
                status_replicas=status_replicas,
                pods=pods,
                pod_metrics=data.get("podMetrics") or [],
                custom_metrics=data.get("customMetrics"),
            )
            result["decision"] = d.to_dict()
            result["specReplicasFrom"] = source
            lines.append(
                f"currentReplicas {d.currentReplicas} (specReplicas from {source})"
                f" -> desiredReplicas {d.desiredReplicas}"
                f" ({'rescale' if d.rescale else 'no change'}): {d.reason or '-'}"
            )
            for c in d.conditions:
                lines.append(
                    f"  {c['type']}={c['status']} {c['reason']}"
                    f" (since {c['lastTransitionTime']}): {c['message']}"
                )
            for m in d.currentMetrics:
                lines.append(f"  current: {json.dumps(m)}")
            if d.lastScaleTime:
                lines.append(f"  lastScaleTime: {d.lastScaleTime}")
        sim = data.get("simulate")
        if sim is not None:
            if not isinstance(sim, dict):
                raise ModelInputError("expected a mapping", "simulate")
            traffic = sim.get("traffic")
            if not isinstance(traffic, list) or not traffic:
                raise ModelInputError("list of {t, rps} steps is required", "simulate.traffic")
            steps = []
            for i, s in enumerate(traffic):
                if isinstance(s, dict) and "t" in s and "rps" in s:
                    steps.append((float(s["t"]), float(s["rps"])))
                elif isinstance(s, list) and len(s) == 2:
                    steps.append((float(s[0]), float(s[1])))
                else:
                    raise ModelInputError(
                        "each step is {t: seconds, rps: N} or [t, rps]", f"simulate.traffic[{i}]"
                    )
            for key in ("capacityPerReplica", "coldStartSeconds", "durationSeconds"):
                if not isinstance(sim.get(key), (int, float)):
                    raise ModelInputError("is required (a number)", f"simulate.{key}")
            r = simulate(
                hpa_obj,
                traffic=steps,
                capacity_per_replica=float(sim["capacityPerReplica"]),
                cold_start_s=float(sim["coldStartSeconds"]),
                duration_s=float(sim["durationSeconds"]),
                initial_replicas=sim.get("initialReplicas"),
                sync_period_s=float(sim.get("syncPeriodSeconds", sync_period_s)),
                pod_requests=sim.get("podRequests"),
                metric_at_capacity=sim.get("metricAtCapacity"),
                cold_pod_phase=sim.get("coldPodPhase", "Running"),
                **kw,
            )
            result["simulation"] = r.to_dict()
            lines.append(
                f"simulation: first scale-up at {r.first_scale_up_s}s, "
                f"max replicas {r.max_replicas}, "
                f"needed {r.needed_replicas} (maxReplicas {r.hpa_max_replicas}"
                f"{'' if r.max_replicas_sufficient else ' - TOO LOW'}), "
                f"breach {r.breach_seconds:.0f}s"
            )
            for dec in r.decisions:
                lines.append(f"  t={dec['t']:>6.0f}s {dec['from']} -> {dec['to']}: {dec['reason']}")
        if not result:
            raise ModelInputError(
                "give pods/podMetrics/customMetrics for one decision, or simulate", "pods"
            )
        return result, "\n".join(lines)

    result, text = _wrap(input_path, run)
    _emit(result, fmt, text)


def _keda_hpa(obj: dict) -> dict:
    from harness.models import keda

    try:
        return keda.hpa_for(obj)
    except ModelInputError as err:
        raise ModelInputError(err.message, f"hpa.{err.field}", err.fix) from None


def _latest(data: dict) -> float:
    """Default `now`: the newest metric timestamp (podMetrics, custom metric value lists)."""
    from harness.models.hpa.metrics_client import parse_custom_metrics

    times = [
        to_epoch(m["timestamp"], f"podMetrics[{i}].timestamp")
        for i, m in enumerate(data.get("podMetrics") or [])
        if isinstance(m, dict) and m.get("timestamp")
    ]
    times += parse_custom_metrics(data.get("customMetrics"), 0.0).timestamps()
    if not times:
        raise ModelInputError(
            "is required when no metric carries a timestamp",
            "now",
            "an RFC 3339 time such as 2024-05-01T12:00:00Z",
        )
    return max(times)


def _count(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ModelInputError(f"must be an integer >= 0, got {value!r}", field)
    return value


def _spec_replicas(data: dict, hpa_obj: dict, pods: list) -> tuple[int, str]:
    """The scale target's spec.replicas (what the controller reads): `specReplicas`, else the HPA's
    status.currentReplicas (spec.replicas at its last sync), else the number of pods."""
    if data.get("specReplicas") is not None:
        n = _count(data["specReplicas"], "specReplicas")
        assert n is not None
        return n, "specReplicas"
    status = hpa_obj.get("status")
    current = status.get("currentReplicas") if isinstance(status, dict) else None
    if current is not None:
        n = _count(current, "hpa.status.currentReplicas")
        assert n is not None
        return n, "hpa.status.currentReplicas"
    return len(pods), "the number of pods"


@model.command()
@_input_opt
@_fmt_opt
def probes(input_path: str, fmt: str) -> None:
    """Kill window, Ready time and restart/back-off sequence for a container's probes."""
    from harness.models.prober import analyze

    data = _load(input_path)
    pod = _require(
        data, "pod", input_path, dict, "paste a v1 Pod or apps/v1 Deployment under 'pod'"
    )
    load = _require(
        data,
        "loadSeconds",
        input_path,
        (int, float, list),
        "a number of seconds or a list of samples",
    )
    a = _wrap(input_path, lambda: analyze(pod, data.get("container"), load))
    lines = [
        f"container {a.container}: startup gated by "
        f"{a.gate or 'nothing (never killed during startup)'}",
        f"  kill window after container start: {a.kill_earliest_s}s .. {a.kill_latest_s}s"
        f" (+ grace {a.grace_period_s:.0f}s)",
        f"  killed fraction over {len(a.samples)} load sample(s): {a.killed_fraction:.1%}",
        f"  ready at: {a.ready_at_s}",
        f"  hang detected after: {a.hang_detect_s}",
    ]
    lines += [f"  {s:>8.1f}s -> {o}" for s, o in zip(a.samples[:20], a.outcomes[:20], strict=False)]
    lines += [f"  note: {n}" for n in a.notes]
    if a.restart_sequence:
        lines.append("  if loading never finishes:")
        lines += [f"    t={t:>7.1f}s {e}" for t, e in a.restart_sequence[:15]]
    _emit(a.to_dict(), fmt, "\n".join(lines))


@model.command()
@_input_opt
@_fmt_opt
def spread(input_path: str, fmt: str) -> None:
    """Placement of N replicas over zones and nodes; with failZone, what a zone loss does."""
    from harness.models.scheduler import place, zone_failure

    data = _load(input_path)
    dep = _require(
        data, "deployment", input_path, dict, "paste an apps/v1 Deployment under 'deployment'"
    )
    nodes = _require(data, "nodes", input_path, list, "a list of v1 Node objects")
    replicas = data.get("replicas", dig_replicas(dep))
    zone = data.get("failZone")

    def run() -> tuple[dict, str]:
        if zone is not None:
            zf = zone_failure(dep, nodes, replicas, str(zone))
            text = [
                f"before: {zf.before.per_zone} pending {zf.before.pending}",
                f"zone {zone} lost: {zf.lost} pod(s); replaced {zf.replaced}; "
                f"stranded (Pending) {zf.stranded}",
                f"after: {zf.after.per_zone} pending {zf.after.pending}",
            ]
            text += [f"  reason: {r}" for r in zf.after.reasons] + [
                f"  note: {n}" for n in zf.notes
            ]
            return zf.to_dict(), "\n".join(text)
        p = place(dep, nodes, replicas)
        text = [f"per zone: {p.per_zone}", f"per node: {p.per_node}", f"pending: {p.pending}"]
        text += [f"  reason: {r}" for r in p.reasons]
        return p.to_dict(), "\n".join(text)

    result, text = _wrap(input_path, run)
    _emit(result, fmt, text)


def dig_replicas(dep: dict) -> int:
    r = (dep.get("spec") or {}).get("replicas", 1)
    return r if isinstance(r, int) else 1
