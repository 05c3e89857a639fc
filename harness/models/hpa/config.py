"""The HPA controller's settings in kube-controller-manager (pkg/controller/podautoscaler/config:
HPAControllerConfiguration, and the --horizontal-pod-autoscaler-* flags) -> model keywords."""

from __future__ import annotations

from typing import Any

from harness.models._k8s import ModelInputError, parse_duration

# kube-controller-manager's HPA settings: model keyword -> (input key, flag, config field, default)
CONTROLLER_SETTINGS: dict[str, tuple[str, str, str, float]] = {
    "tolerance": (
        "tolerance",
        "horizontal-pod-autoscaler-tolerance",
        "HorizontalPodAutoscalerTolerance",
        0.1,
    ),
    "sync_period_s": (
        "syncPeriod",
        "horizontal-pod-autoscaler-sync-period",
        "HorizontalPodAutoscalerSyncPeriod",
        15.0,
    ),
    "downscale_stabilization_s": (
        "downscaleStabilization",
        "horizontal-pod-autoscaler-downscale-stabilization",
        "HorizontalPodAutoscalerDownscaleStabilizationWindow",
        300.0,
    ),
    "cpu_initialization_period_s": (
        "cpuInitializationPeriod",
        "horizontal-pod-autoscaler-cpu-initialization-period",
        "HorizontalPodAutoscalerCPUInitializationPeriod",
        300.0,
    ),
    "initial_readiness_delay_s": (
        "initialReadinessDelay",
        "horizontal-pod-autoscaler-initial-readiness-delay",
        "HorizontalPodAutoscalerInitialReadinessDelay",
        30.0,
    ),
}
_IGNORED_SETTINGS = {
    "concurrent-horizontal-pod-autoscaler-syncs",
    "ConcurrentHorizontalPodAutoscalerSyncs",
    "concurrentHorizontalPodAutoscalerSyncs",
}


def controller_options(cfg: Any, field_name: str = "controller") -> dict[str, float]:
    """The controller's HPA settings as copied from a cluster -> keyword arguments (seconds).

    `cfg` is a mapping keyed by the model's names (`syncPeriod`, `downscaleStabilization`, ...),
    the kube-controller-manager flag names (`horizontal-pod-autoscaler-sync-period`, leading
    dashes optional) or the KubeControllerManagerConfiguration fields (an `HPAController` block
    or its `HorizontalPodAutoscaler*` keys); or the flags themselves (`["--horizontal-pod-
    autoscaler-sync-period=15s", ...]`, other flags ignored). Durations are Go durations
    (`5m0s`) or seconds; the tolerance a number. Unset settings take the production defaults."""
    by_name = {}
    for kw, names in CONTROLLER_SETTINGS.items():
        for n in names[:3]:
            by_name[n] = kw
    out = {kw: names[3] for kw, names in CONTROLLER_SETTINGS.items()}
    if cfg is None:
        return out
    items: list[tuple[str, Any, str]] = []
    if isinstance(cfg, str):
        cfg = cfg.split()
    if isinstance(cfg, list):
        for i, flag in enumerate(cfg):
            f = f"{field_name}[{i}]"
            if not isinstance(flag, str):
                raise ModelInputError(
                    "expected a flag string such as --horizontal-pod-autoscaler-sync-period=15s", f
                )
            name, eq, value = flag.lstrip("-").partition("=")
            if name not in by_name:
                continue  # the rest of a kube-controller-manager command line
            if not eq:
                raise ModelInputError(f"flag --{name} has no value", f, f"write --{name}=VALUE")
            items.append((name, value, f))
    elif isinstance(cfg, dict):
        if isinstance(cfg.get("HPAController"), dict):  # a whole KubeControllerManagerConfiguration
            cfg = cfg["HPAController"]
            field_name += ".HPAController"
        for key, value in cfg.items():
            name = str(key).lstrip("-")
            f = f"{field_name}.{key}"
            if name in _IGNORED_SETTINGS:
                continue
            if name not in by_name:
                known = ", ".join(names[0] for names in CONTROLLER_SETTINGS.values())
                raise ModelInputError(
                    f"unknown controller setting {key!r}",
                    f,
                    f"one of {known} (or the kube-controller-manager flag names)",
                )
            items.append((name, value, f))
    else:
        raise ModelInputError("expected a mapping of settings or a list of flags", field_name)
    for name, value, f in items:
        kw = by_name[name]
        if kw == "tolerance":
            try:
                tol = float(value) if not isinstance(value, bool) else -1.0
            except (TypeError, ValueError):
                tol = -1.0
            if not tol >= 0 or tol == float("inf"):
                raise ModelInputError(
                    f"tolerance must be a number >= 0, got {value!r}", f, "e.g. 0.1 for 10 %"
                )
            out[kw] = tol
        else:
            out[kw] = parse_duration(value, f)
    if out["sync_period_s"] <= 0:
        raise ModelInputError("the sync period must be > 0", field_name, "e.g. 15s")
    return out
