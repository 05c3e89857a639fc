"""A Deployment's pod template as the local kubelet runs it, with the API server's defaults.

Pure: reads the rendered manifest dicts and raises `InputError` naming the field and the fix
when the manifest cannot run locally.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.errors import InputError
from harness.models import prober as probes_model
from harness.models._k8s import ModelInputError
from harness.quantity import cpu_cores, memory_bytes

PROBE_KINDS = ("startup", "liveness", "readiness")


@dataclass
class ProbeSpec:
    kind: str  # startup | liveness | readiness
    handler: str  # httpGet | tcpSocket | exec | grpc
    port: int | None = None
    path: str = "/"
    scheme: str = "HTTP"
    host: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    command: list[str] = field(default_factory=list)
    initial_delay_s: float = 0
    period_s: float = 10
    timeout_s: float = 1
    success_threshold: int = 1
    failure_threshold: int = 3
    termination_grace_period_s: float | None = None


@dataclass
class VolumeMount:
    name: str
    mount_path: str
    read_only: bool
    volume: dict[str, Any]  # the pod's volume of that name (hostPath, emptyDir, ...)


@dataclass
class ContainerSpec:
    name: str
    image: str
    command: list[str]
    args: list[str]
    env: list[dict[str, Any]]
    ports: dict[str, int]  # name (or str(port)) -> containerPort
    working_dir: str | None
    probes: dict[str, ProbeSpec]
    cpu_request: float | None
    cpu_limit: float | None
    memory_request: int | None
    memory_limit: int | None
    pre_stop: dict[str, Any] | None
    raw: dict[str, Any]
    mounts: list[VolumeMount] = field(default_factory=list)
    field_path: str = (
        "spec.template.spec.containers[0]"  # where it stands in the manifest, for errors
    )

    @property
    def first_port(self) -> int | None:
        return next(iter(self.ports.values()), None)


@dataclass
class PodTemplate:
    labels: dict[str, str]
    containers: list[ContainerSpec]
    termination_grace_period_s: float
    spec: dict[str, Any]  # the raw pod spec (for the scheduler: spread, selectors, tolerations)
    # spec.initContainers that run to completion, in order, before the containers (sidecars,
    # i.e. restartPolicy: Always, are not among them: they are not run locally)
    init_containers: list[ContainerSpec] = field(default_factory=list)

    @property
    def main(self) -> ContainerSpec:
        return self.containers[0]

    @property
    def sidecars(self) -> list[str]:
        return [
            str(c.get("name"))
            for c in self.spec.get("initContainers") or []
            if c.get("restartPolicy") == "Always"
        ]


def field_error(source: str, field_: str, message: str, fix: str) -> InputError:
    """The refusal every parser here raises: file, field, what is wrong, how to fix it."""
    return InputError(message, file=source or None, field=field_, fix=fix)


def resolve_port(port: Any, ports: dict[str, int], where: str, source: str) -> int:
    """A probe/Service port: a number or the name of a containerPort."""
    if isinstance(port, int):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    if isinstance(port, str) and port in ports:
        return ports[port]
    raise field_error(
        source,
        where,
        f"port {port!r} is neither a number nor a named containerPort "
        f"(named: {sorted(k for k in ports if not k.isdigit())})",
        "name the port in ports[] or use its number",
    )


def parse_probe(
    kind: str, raw: dict[str, Any], ports: dict[str, int], where: str, source: str
) -> ProbeSpec:
    p = ProbeSpec(kind=kind, handler="")
    if "httpGet" in raw:
        h = raw["httpGet"]
        p.handler = "httpGet"
        p.port = resolve_port(h.get("port"), ports, f"{where}.httpGet.port", source)
        p.path = h.get("path", "/") or "/"
        p.scheme = h.get("scheme", "HTTP")
        p.host = h.get("host")
        p.headers = {x["name"]: str(x.get("value", "")) for x in h.get("httpHeaders", []) or []}
    elif "tcpSocket" in raw:
        p.handler = "tcpSocket"
        p.port = resolve_port(
            raw["tcpSocket"].get("port"), ports, f"{where}.tcpSocket.port", source
        )
        p.host = raw["tcpSocket"].get("host")
    elif "exec" in raw:
        p.handler = "exec"
        p.command = [str(c) for c in raw["exec"].get("command", [])]
        if not p.command:
            raise field_error(
                source,
                f"{where}.exec.command",
                "empty exec probe command",
                "give the command to run",
            )
    elif "grpc" in raw:
        p.handler = "grpc"
        p.port = resolve_port(raw["grpc"].get("port"), ports, f"{where}.grpc.port", source)
    else:
        raise field_error(
            source, where, "probe has no handler", "use httpGet, tcpSocket, exec or grpc"
        )
    try:  # timings, defaults and the API server's validation: one reader, the probe model's
        timing = probes_model.parse_probe(raw, kind, where)
    except ModelInputError as err:
        raise field_error(
            source,
            err.field or where,
            err.message,
            err.fix or "fix the probe field as the API server requires",
        ) from None
    assert timing is not None
    p.initial_delay_s = timing.initial_delay
    p.period_s = timing.period
    p.timeout_s = timing.timeout
    p.success_threshold = timing.success_threshold
    p.failure_threshold = timing.failure_threshold
    p.termination_grace_period_s = timing.termination_grace
    return p


def _quantity(res: dict[str, Any], key: str, conv: Any, where: str, source: str) -> Any:
    if key not in res:
        return None
    try:
        return conv(res[key])
    except ValueError as err:
        raise field_error(
            source, f"{where}.{key}", str(err), "use a Kubernetes quantity like 500m, 2, 512Mi"
        ) from None


def parse_container(raw: dict[str, Any], where: str, source: str) -> ContainerSpec:
    name = raw.get("name")
    if not name:
        raise field_error(
            source, f"{where}.name", "container has no name", "give every container a name"
        )
    ports: dict[str, int] = {}
    for i, p in enumerate(raw.get("ports", []) or []):
        cp = p.get("containerPort")
        if not isinstance(cp, int):
            raise field_error(
                source,
                f"{where}.ports[{i}].containerPort",
                f"not a port number: {cp!r}",
                "use an integer",
            )
        ports[p.get("name") or str(cp)] = cp
    res = raw.get("resources", {}) or {}
    limits = res.get("limits", {}) or {}
    requests = dict(res.get("requests", {}) or {})
    for k, v in limits.items():
        requests.setdefault(k, v)  # a limit without a request sets the request (API defaulting)
    probes = {}
    for kind in PROBE_KINDS:
        if raw.get(f"{kind}Probe"):
            probes[kind] = parse_probe(
                kind, raw[f"{kind}Probe"], ports, f"{where}.{kind}Probe", source
            )
    pre_stop = ((raw.get("lifecycle") or {}).get("preStop")) or None
    return ContainerSpec(
        name=name,
        image=str(raw.get("image", "")),
        command=[str(c) for c in raw.get("command", []) or []],
        args=[str(a) for a in raw.get("args", []) or []],
        env=list(raw.get("env", []) or []),
        ports=ports,
        working_dir=raw.get("workingDir"),
        probes=probes,
        cpu_request=_quantity(requests, "cpu", cpu_cores, f"{where}.resources.requests", source),
        cpu_limit=_quantity(limits, "cpu", cpu_cores, f"{where}.resources.limits", source),
        memory_request=_quantity(
            requests, "memory", memory_bytes, f"{where}.resources.requests", source
        ),
        memory_limit=_quantity(limits, "memory", memory_bytes, f"{where}.resources.limits", source),
        pre_stop=pre_stop,
        raw=raw,
        field_path=where,
    )


def parse_template(deployment: dict[str, Any], source: str = "") -> PodTemplate:
    where = "spec.template"
    tpl = (deployment.get("spec") or {}).get("template")
    if not isinstance(tpl, dict):
        raise field_error(source, where, "Deployment has no pod template", "add spec.template")
    spec = tpl.get("spec") or {}
    containers = spec.get("containers") or []
    if not containers:
        raise field_error(
            source, f"{where}.spec.containers", "no containers", "add at least one container"
        )
    volumes = {v.get("name"): v for v in spec.get("volumes") or []}

    def parse_all(key: str, raws: list[tuple[int, dict[str, Any]]]) -> list[ContainerSpec]:
        out = []
        for i, raw in raws:
            c = parse_container(raw, f"{where}.spec.{key}[{i}]", source)
            c.mounts = parse_mounts(raw, volumes, f"{where}.spec.{key}[{i}].volumeMounts", source)
            out.append(c)
        return out

    inits = [
        (i, c)
        for i, c in enumerate(spec.get("initContainers") or [])
        if c.get("restartPolicy") != "Always"
    ]
    return PodTemplate(
        labels=dict(((tpl.get("metadata") or {}).get("labels")) or {}),
        containers=parse_all("containers", list(enumerate(containers))),
        termination_grace_period_s=float(spec.get("terminationGracePeriodSeconds", 30)),
        spec=spec,
        init_containers=parse_all("initContainers", inits),
    )


def parse_mounts(
    container: dict[str, Any], volumes: dict[str, dict[str, Any]], where: str, source: str
) -> list[VolumeMount]:
    mounts = []
    for i, m in enumerate(container.get("volumeMounts") or []):
        name, path = m.get("name"), m.get("mountPath")
        if not path:
            raise field_error(
                source,
                f"{where}[{i}].mountPath",
                "volume mount without a mountPath",
                "set mountPath",
            )
        if name not in volumes:
            raise field_error(
                source,
                f"{where}[{i}].name",
                f"no volume named {name!r} in the pod spec "
                f"(volumes: {sorted(str(v) for v in volumes)})",
                "add it to spec.template.spec.volumes",
            )
        mounts.append(
            VolumeMount(str(name), str(path), bool(m.get("readOnly", False)), volumes[name])
        )
    return mounts
