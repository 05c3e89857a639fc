"""The workloads in a bundle (Deployments, StatefulSets) and what belongs to each: HPA, PDB,
Services."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from harness.errors import InputError
from harness.manifests.bundle import ManifestBundle
from harness.models._k8s import selector_matches
from harness.models.intstr import scaled_value
from harness.quantity import memory_bytes, parse_quantity
from harness.servers.kinds import ServerKind, detect

WORKLOAD_KINDS = ("Deployment", "StatefulSet")
POD_SPEC = "spec.template.spec"
ROLLING_UPDATE = "spec.strategy.rollingUpdate"
DEFAULT_GRACE_S = 30
PROBE_DEFAULTS = {
    "initialDelaySeconds": 0,
    "periodSeconds": 10,
    "timeoutSeconds": 1,
    "successThreshold": 1,
    "failureThreshold": 3,
}
DRAIN_ENV = re.compile(r"(DRAIN|GRACEFUL|SHUTDOWN).*TIMEOUT", re.IGNORECASE)


@dataclass
class Workload:
    obj: dict[str, Any]
    file: str
    hpa: dict[str, Any] | None = None
    # the keda.sh ScaledObject `hpa` was generated from (harness.models.keda), if any
    scaled_object: dict[str, Any] | None = None
    pdbs: list[dict[str, Any]] = field(default_factory=list)
    services: list[dict[str, Any]] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return str(self.obj["kind"])

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def resource(self) -> str:
        return f"{self.kind}/{self.name}"

    @property
    def pod_spec(self) -> dict[str, Any]:
        return ((self.obj.get("spec") or {}).get("template") or {}).get("spec") or {}

    @property
    def pod_labels(self) -> dict[str, str]:
        tpl = (self.obj.get("spec") or {}).get("template") or {}
        return (tpl.get("metadata") or {}).get("labels") or {}

    @property
    def containers(self) -> list[dict[str, Any]]:
        return list(self.pod_spec.get("containers") or [])

    def container_field(self, index: int, *rest: str) -> str:
        return ".".join([f"{POD_SPEC}.containers[{index}]", *rest])

    @property
    def spec_replicas(self) -> int:
        r = (self.obj.get("spec") or {}).get("replicas")
        return int(r) if r is not None else 1

    @property
    def steady_replicas(self) -> int:
        """Replicas at baseline: the HPA's minReplicas when an HPA owns it."""
        if self.hpa is not None:
            return int((self.hpa.get("spec") or {}).get("minReplicas") or 1)
        return self.spec_replicas

    @property
    def max_replicas(self) -> int:
        if self.hpa is not None:
            return int(self.hpa["spec"].get("maxReplicas") or self.steady_replicas)
        return self.spec_replicas

    @property
    def grace_period_s(self) -> int:
        g = self.pod_spec.get("terminationGracePeriodSeconds")
        return int(g) if g is not None else DEFAULT_GRACE_S

    def serving_indexes(self) -> list[int]:
        """Containers that serve traffic (have ports); all of them when none declares ports."""
        with_ports = [i for i, c in enumerate(self.containers) if c.get("ports")]
        return with_ports or list(range(len(self.containers)))

    def uses_gpu(self) -> bool:
        return any(gpu_count(c) > 0 for c in self.containers)

    @cached_property
    def server(self) -> ServerKind:
        """The server kind (harness.servers.kinds.detect: annotation, else image/command)."""
        return detect(self.obj, self.file or None)

    def server_indexes(self) -> list[int]:
        """The serving containers that run the server: those whose own image/command is of the
        workload's kind, else the first serving container (a wrapped entrypoint declared by the
        annotation). A sidecar with ports (an auth proxy) is not held to the server's flags."""
        serving = self.serving_indexes()
        own = [
            i
            for i in serving
            if detect({"spec": {"template": {"spec": {"containers": [self.containers[i]]}}}})
            is self.server
        ]
        return own or serving[:1]


def gpu_count(container: dict[str, Any]) -> int:
    res = container.get("resources") or {}
    total = 0
    for section in ("limits", "requests"):
        for name, qty in (res.get(section) or {}).items():
            if name.endswith("/gpu") or name.endswith(".com/gpu") or "gpu" in name.split("/")[-1]:
                try:
                    total = max(total, int(parse_quantity(qty)))
                except ValueError:
                    continue
    return total


def resource_bytes(container: dict[str, Any], section: str, name: str = "memory") -> int | None:
    qty = ((container.get("resources") or {}).get(section) or {}).get(name)
    if qty is None:
        return None
    try:
        return memory_bytes(qty)
    except ValueError:
        return None


def probe(container: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """The probe with Kubernetes defaults filled in (None when absent)."""
    p = container.get(kind)
    if not isinstance(p, dict):
        return None
    return {**PROBE_DEFAULTS, **{k: v for k, v in p.items() if v is not None}}


def probe_target(p: dict[str, Any]) -> tuple[str, ...]:
    """What a probe calls, to compare two probes (same endpoint = same meaning)."""
    if "httpGet" in p:
        h = p["httpGet"] or {}
        return ("http", str(h.get("path", "/")), str(h.get("port")))
    if "tcpSocket" in p:
        return ("tcp", str((p["tcpSocket"] or {}).get("port")))
    if "grpc" in p:
        g = p["grpc"] or {}
        return ("grpc", str(g.get("port")), str(g.get("service", "")))
    if "exec" in p:
        return ("exec", *[str(x) for x in (p["exec"] or {}).get("command") or []])
    return ("?",)


def env_value(container: dict[str, Any], pattern: re.Pattern[str]) -> tuple[str, float] | None:
    for e in container.get("env") or []:
        name = str(e.get("name", ""))
        if pattern.search(name) and "value" in e:
            try:
                return name, float(str(e["value"]).rstrip("s"))
            except ValueError:
                continue
    return None


def prestop_seconds(container: dict[str, Any]) -> float | None:
    """Seconds a preStop hook takes when the manifest says (sleep action or `sleep N`), else
    None."""
    hook = ((container.get("lifecycle") or {}).get("preStop")) or None
    if hook is None:
        return None
    if "sleep" in hook:
        return float((hook["sleep"] or {}).get("seconds") or 0)
    cmd = " ".join(str(x) for x in ((hook.get("exec") or {}).get("command") or []))
    m = re.search(r"\bsleep\s+(\d+(?:\.\d+)?)", cmd)
    return float(m.group(1)) if m else 0.0


def scaled(
    w: Workload, value: Any, total: int, round_up: bool, field: str, resource: str | None = None
) -> int:
    """An int-or-percent field of the workload (or of `resource`, e.g. its PDB) scaled against
    `total` (intstr.GetScaledValueFromIntOrPercent); a bad value is an InputError naming it."""
    try:
        return scaled_value(value, total, round_up)
    except ValueError as err:
        raise InputError(
            f"{resource or w.resource}: {err}",
            file=w.file or None,
            field=field,
            fix="an integer, or a percentage such as 25%",
        ) from None


def _targets(hpa: dict[str, Any], w: Workload, ns: str | None) -> bool:
    ref = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
    return (
        ref.get("kind") == w.kind
        and ref.get("name") == w.name
        and hpa["metadata"].get("namespace") == ns
    )


def workloads(bundle: ManifestBundle) -> list[Workload]:
    found: list[Workload] = []
    for i, obj in enumerate(bundle.objects):
        if obj.get("kind") in WORKLOAD_KINDS:
            found.append(Workload(obj, bundle.origins.get(i, bundle.source)))
    for w in found:
        ns = w.obj["metadata"].get("namespace")
        for hpa in bundle.of_kind("HorizontalPodAutoscaler"):
            if _targets(hpa, w, ns):
                w.hpa = hpa
        # a ScaledObject stands for the HPA KEDA generates (KEDA's webhook refuses one for a
        # workload an HPA already scales)
        for hpa in bundle.keda_hpas() if w.hpa is None else []:
            if _targets(hpa, w, ns):
                w.hpa, w.scaled_object = hpa, bundle.scaled_object(hpa["metadata"]["name"])
        for pdb in bundle.of_kind("PodDisruptionBudget"):
            if pdb["metadata"].get("namespace") == ns and selector_matches(
                (pdb.get("spec") or {}).get("selector"), w.pod_labels
            ):
                w.pdbs.append(pdb)
        for svc in bundle.of_kind("Service"):
            sel = (svc.get("spec") or {}).get("selector")
            if (
                sel
                and svc["metadata"].get("namespace") == ns
                and all(w.pod_labels.get(k) == v for k, v in sel.items())
            ):
                w.services.append(svc)
    return found
