"""Parse a Deployment's pod template into what the local kubelet needs (with API defaults).

Everything here is pure: it reads the rendered manifest dicts, applies the defaults the API
server would (probe timings, grace period, rollout knobs) and raises `InputError` naming the
field and the fix when the manifest cannot run locally.
"""

from __future__ import annotations

import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import InputError
from harness.models import probes as probes_model
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
    field_path: str = "spec.template.spec.containers[0]"  # where it stands in the manifest, for errors

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
        return [str(c.get("name")) for c in self.spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]


@dataclass
class RolloutSpec:
    replicas: int
    max_surge: int
    max_unavailable: int
    min_ready_s: float
    strategy: str  # RollingUpdate | Recreate
    progress_deadline_s: float = 600.0  # spec.progressDeadlineSeconds


def _err(source: str, field_: str, message: str, fix: str) -> InputError:
    return InputError(message, file=source or None, field=field_, fix=fix)


def resolve_port(port: Any, ports: dict[str, int], where: str, source: str) -> int:
    """A probe/Service port: a number or the name of a containerPort."""
    if isinstance(port, int):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    if isinstance(port, str) and port in ports:
        return ports[port]
    raise _err(source, where, f"port {port!r} is neither a number nor a named containerPort "
               f"(named: {sorted(k for k in ports if not k.isdigit())})", "name the port in ports[] or use its number")


def parse_probe(kind: str, raw: dict[str, Any], ports: dict[str, int], where: str, source: str) -> ProbeSpec:
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
        p.port = resolve_port(raw["tcpSocket"].get("port"), ports, f"{where}.tcpSocket.port", source)
        p.host = raw["tcpSocket"].get("host")
    elif "exec" in raw:
        p.handler = "exec"
        p.command = [str(c) for c in raw["exec"].get("command", [])]
        if not p.command:
            raise _err(source, f"{where}.exec.command", "empty exec probe command", "give the command to run")
    elif "grpc" in raw:
        p.handler = "grpc"
        p.port = resolve_port(raw["grpc"].get("port"), ports, f"{where}.grpc.port", source)
    else:
        raise _err(source, where, "probe has no handler", "use httpGet, tcpSocket, exec or grpc")
    try:  # timings, defaults and the API server's validation: one reader, the probe model's
        timing = probes_model.parse_probe(raw, kind, where)
    except ModelInputError as err:
        raise _err(source, err.field or where, err.message,
                   err.fix or "fix the probe field as the API server requires") from None
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
        raise _err(source, f"{where}.{key}", str(err), "use a Kubernetes quantity like 500m, 2, 512Mi") from None


def parse_container(raw: dict[str, Any], where: str, source: str) -> ContainerSpec:
    name = raw.get("name")
    if not name:
        raise _err(source, f"{where}.name", "container has no name", "give every container a name")
    ports: dict[str, int] = {}
    for i, p in enumerate(raw.get("ports", []) or []):
        cp = p.get("containerPort")
        if not isinstance(cp, int):
            raise _err(source, f"{where}.ports[{i}].containerPort", f"not a port number: {cp!r}", "use an integer")
        ports[p.get("name") or str(cp)] = cp
    res = raw.get("resources", {}) or {}
    limits = res.get("limits", {}) or {}
    requests = dict(res.get("requests", {}) or {})
    for k, v in limits.items():
        requests.setdefault(k, v)  # a limit without a request sets the request (API defaulting)
    probes = {}
    for kind in PROBE_KINDS:
        if raw.get(f"{kind}Probe"):
            probes[kind] = parse_probe(kind, raw[f"{kind}Probe"], ports, f"{where}.{kind}Probe", source)
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
        memory_request=_quantity(requests, "memory", memory_bytes, f"{where}.resources.requests", source),
        memory_limit=_quantity(limits, "memory", memory_bytes, f"{where}.resources.limits", source),
        pre_stop=pre_stop,
        raw=raw,
        field_path=where,
    )


def parse_template(deployment: dict[str, Any], source: str = "") -> PodTemplate:
    where = "spec.template"
    tpl = (deployment.get("spec") or {}).get("template")
    if not isinstance(tpl, dict):
        raise _err(source, where, "Deployment has no pod template", "add spec.template")
    spec = tpl.get("spec") or {}
    containers = spec.get("containers") or []
    if not containers:
        raise _err(source, f"{where}.spec.containers", "no containers", "add at least one container")
    volumes = {v.get("name"): v for v in spec.get("volumes") or []}

    def parse_all(key: str, raws: list[tuple[int, dict[str, Any]]]) -> list[ContainerSpec]:
        out = []
        for i, raw in raws:
            c = parse_container(raw, f"{where}.spec.{key}[{i}]", source)
            c.mounts = parse_mounts(raw, volumes, f"{where}.spec.{key}[{i}].volumeMounts", source)
            out.append(c)
        return out

    inits = [(i, c) for i, c in enumerate(spec.get("initContainers") or []) if c.get("restartPolicy") != "Always"]
    return PodTemplate(
        labels=dict(((tpl.get("metadata") or {}).get("labels")) or {}),
        containers=parse_all("containers", list(enumerate(containers))),
        termination_grace_period_s=float(spec.get("terminationGracePeriodSeconds", 30)),
        spec=spec,
        init_containers=parse_all("initContainers", inits),
    )


def parse_mounts(container: dict[str, Any], volumes: dict[str, dict[str, Any]], where: str,
                 source: str) -> list[VolumeMount]:
    mounts = []
    for i, m in enumerate(container.get("volumeMounts") or []):
        name, path = m.get("name"), m.get("mountPath")
        if not path:
            raise _err(source, f"{where}[{i}].mountPath", "volume mount without a mountPath", "set mountPath")
        if name not in volumes:
            raise _err(source, f"{where}[{i}].name", f"no volume named {name!r} in the pod spec "
                       f"(volumes: {sorted(str(v) for v in volumes)})", "add it to spec.template.spec.volumes")
        mounts.append(VolumeMount(str(name), str(path), bool(m.get("readOnly", False)), volumes[name]))
    return mounts


def _fencepost(value: Any, replicas: int, round_up: bool, field_: str, source: str) -> int:
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"(\d+)%", str(value))
    if not m:
        raise _err(source, field_, f"not an int or percentage: {value!r}", "use e.g. 1 or 25%")
    pct = int(m.group(1)) * replicas
    return -(-pct // 100) if round_up else pct // 100


def parse_rollout(deployment: dict[str, Any], source: str = "") -> RolloutSpec:
    """Deployment defaults and ResolveFenceposts (surge rounds up, unavailable down; both 0 -> 1)."""
    spec = deployment.get("spec") or {}
    replicas = int(spec.get("replicas", 1))
    strategy = spec.get("strategy") or {}
    stype = strategy.get("type", "RollingUpdate")
    ru = strategy.get("rollingUpdate") or {}
    surge = _fencepost(ru.get("maxSurge", "25%"), replicas, True, "spec.strategy.rollingUpdate.maxSurge", source)
    unavail = _fencepost(ru.get("maxUnavailable", "25%"), replicas, False,
                         "spec.strategy.rollingUpdate.maxUnavailable", source)
    if surge == 0 and unavail == 0:
        unavail = 1
    deadline = spec.get("progressDeadlineSeconds", 600)
    if not isinstance(deadline, int) or deadline <= 0:
        raise _err(source, "spec.progressDeadlineSeconds", f"not a positive integer: {deadline!r}",
                   "use seconds, e.g. 600 (the default)")
    return RolloutSpec(replicas, surge, unavail, float(spec.get("minReadySeconds", 0)), stype, float(deadline))


def gauntlet_command() -> list[str]:
    """`gauntlet` inside a container spec: the venv's script next to sys.executable."""
    script = Path(sys.executable).with_name("gauntlet")
    if script.exists():
        return [str(script)]
    found = shutil.which("gauntlet")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from harness.cli import main; sys.argv[0] = 'gauntlet'; main()"]


def default_entrypoint(image: str) -> list[str] | None:
    """The image's ENTRYPOINT when the process runtime has no image to read it from."""
    repo = image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
    if repo.startswith("gauntlet"):
        return ["gauntlet", "serve"]
    return None


_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes $(VAR) expansion: unknown references stay as written, $$ escapes."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR.sub(sub, text)


@dataclass
class PodIdentity:
    """What the downward API can expose about a pod."""

    name: str
    namespace: str
    pod_ip: str
    node_name: str
    labels: dict[str, str]
    service_account: str = "default"


def _field_ref(path: str, pod: PodIdentity) -> str | None:
    simple = {
        "status.podIP": pod.pod_ip, "status.podIPs": pod.pod_ip, "status.hostIP": "127.0.0.1",
        "metadata.name": pod.name, "metadata.namespace": pod.namespace, "spec.nodeName": pod.node_name,
        "spec.serviceAccountName": pod.service_account, "metadata.uid": pod.name,
    }
    if path in simple:
        return simple[path]
    m = re.fullmatch(r"metadata\.labels\['(.+)'\]", path)
    if m:
        return pod.labels.get(m.group(1), "")
    return None


def _resource_ref(ref: dict[str, Any], c: ContainerSpec, source: str, where: str) -> str:
    res = ref.get("resource", "")
    divisor = ref.get("divisor", "1")
    values = {
        "limits.cpu": c.cpu_limit, "requests.cpu": c.cpu_request,
        "limits.memory": c.memory_limit, "requests.memory": c.memory_request,
    }
    if res not in values:
        raise _err(source, where, f"unsupported resourceFieldRef {res!r}", "use limits/requests.cpu or .memory")
    v = values[res]
    if v is None:  # unset limit: the node allocatable in Kubernetes; we report 0 = unknown
        import os

        v = float(os.cpu_count() or 1) if res.endswith("cpu") else 0
    div = float(cpu_cores(divisor) if res.endswith("cpu") else memory_bytes(divisor)) or 1.0
    return str(int(-(-float(v) // div)))  # rounded up, like the kubelet


def resolve_env(c: ContainerSpec, pod: PodIdentity, objects: list[dict[str, Any]], source: str = "") -> dict[str, str]:
    """The container's environment as the kubelet builds it: `envFrom` ConfigMaps/Secrets first
    (with their prefix), then `env` on top (downward API, ConfigMap/Secret keys), `$(VAR)`
    expanded against what is defined before it."""
    by_kind_name = {(o.get("kind"), (o.get("metadata") or {}).get("name")): o for o in objects}
    env: dict[str, str] = {}
    for i, src in enumerate(c.raw.get("envFrom") or []):
        fw = f"{c.field_path}.envFrom[{i}]"
        kind, ref = ("ConfigMap", src["configMapRef"]) if "configMapRef" in src else ("Secret", src.get("secretRef"))
        if not isinstance(ref, dict):
            raise _err(source, fw, "envFrom entry without configMapRef or secretRef", "name a ConfigMap or Secret")
        obj = by_kind_name.get((kind, ref.get("name")))
        if obj is None:
            if ref.get("optional"):
                continue
            raise _err(source, fw, f"{kind} {ref.get('name')!r} is not in the manifests",
                       f"include the {kind} in the bundle or mark the ref optional")
        prefix = str(src.get("prefix") or "")
        for key in {**(obj.get("data") or {}), **(obj.get("stringData") or {})}:
            env[prefix + key] = _object_value(obj, key)
    for i, e in enumerate(c.env):
        name = e.get("name")
        fw = f"{c.field_path}.env[{i}]"
        if not name:
            raise _err(source, f"{fw}.name", "env entry without a name", "give it a name")
        if "value" in e:
            env[name] = expand(str(e["value"]), env)
            continue
        vf = e.get("valueFrom") or {}
        value: str | None = None
        if "fieldRef" in vf:
            path = vf["fieldRef"].get("fieldPath", "")
            value = _field_ref(path, pod)
            if value is None:
                raise _err(source, f"{fw}.valueFrom.fieldRef.fieldPath", f"unsupported field {path!r}",
                           "use status.podIP, metadata.name, metadata.namespace, spec.nodeName or metadata.labels['k']")
        elif "resourceFieldRef" in vf:
            value = _resource_ref(vf["resourceFieldRef"], c, source, f"{fw}.valueFrom.resourceFieldRef")
        elif "configMapKeyRef" in vf or "secretKeyRef" in vf:
            kind = "ConfigMap" if "configMapKeyRef" in vf else "Secret"
            ref = vf.get("configMapKeyRef") or vf.get("secretKeyRef") or {}
            obj = by_kind_name.get((kind, ref.get("name")))
            key = ref.get("key")
            if obj is not None and key in {**(obj.get("data") or {}), **(obj.get("stringData") or {})}:
                value = _object_value(obj, str(key))
            elif not ref.get("optional"):
                raise _err(source, f"{fw}.valueFrom", f"{kind} {ref.get('name')!r} key {key!r} not in the manifests",
                           f"include the {kind} in the bundle or mark the ref optional")
        else:
            value = ""
        if value is not None:
            env[name] = value
    return env


def _object_value(obj: dict[str, Any], key: str) -> str:
    """A ConfigMap's or Secret's value (Secret `data` is base64; `stringData` wins, as on write)."""
    import base64

    if key in (obj.get("stringData") or {}):
        return str(obj["stringData"][key])
    value = str(obj["data"][key])
    return base64.b64decode(value).decode() if obj.get("kind") == "Secret" else value
