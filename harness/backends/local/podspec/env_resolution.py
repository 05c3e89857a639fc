"""A container's environment as the kubelet builds it: envFrom, env, the downward API, $(VAR).

Pure apart from the pod's identity (name, IP, node) it is given.
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass
from typing import Any

from harness.backends.local.podspec.pod_template import ContainerSpec, field_error
from harness.quantity import cpu_cores, memory_bytes

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
        "status.podIP": pod.pod_ip,
        "status.podIPs": pod.pod_ip,
        "status.hostIP": "127.0.0.1",
        "metadata.name": pod.name,
        "metadata.namespace": pod.namespace,
        "spec.nodeName": pod.node_name,
        "spec.serviceAccountName": pod.service_account,
        "metadata.uid": pod.name,
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
        "limits.cpu": c.cpu_limit,
        "requests.cpu": c.cpu_request,
        "limits.memory": c.memory_limit,
        "requests.memory": c.memory_request,
    }
    if res not in values:
        raise field_error(
            source,
            where,
            f"unsupported resourceFieldRef {res!r}",
            "use limits/requests.cpu or .memory",
        )
    v = values[res]
    if v is None:  # unset limit: the node allocatable in Kubernetes; we report 0 = unknown
        v = float(os.cpu_count() or 1) if res.endswith("cpu") else 0
    div = float(cpu_cores(divisor) if res.endswith("cpu") else memory_bytes(divisor)) or 1.0
    return str(int(-(-float(v) // div)))  # rounded up, like the kubelet


def resolve_env(
    c: ContainerSpec, pod: PodIdentity, objects: list[dict[str, Any]], source: str = ""
) -> dict[str, str]:
    """The container's environment as the kubelet builds it: `envFrom` ConfigMaps/Secrets first
    (with their prefix), then `env` on top (downward API, ConfigMap/Secret keys), `$(VAR)`
    expanded against what is defined before it."""
    by_kind_name = {(o.get("kind"), (o.get("metadata") or {}).get("name")): o for o in objects}
    env: dict[str, str] = {}
    for i, src in enumerate(c.raw.get("envFrom") or []):
        fw = f"{c.field_path}.envFrom[{i}]"
        kind, ref = (
            ("ConfigMap", src["configMapRef"])
            if "configMapRef" in src
            else ("Secret", src.get("secretRef"))
        )
        if not isinstance(ref, dict):
            raise field_error(
                source,
                fw,
                "envFrom entry without configMapRef or secretRef",
                "name a ConfigMap or Secret",
            )
        obj = by_kind_name.get((kind, ref.get("name")))
        if obj is None:
            if ref.get("optional"):
                continue
            raise field_error(
                source,
                fw,
                f"{kind} {ref.get('name')!r} is not in the manifests",
                f"include the {kind} in the bundle or mark the ref optional",
            )
        prefix = str(src.get("prefix") or "")
        for key in {**(obj.get("data") or {}), **(obj.get("stringData") or {})}:
            env[prefix + key] = _object_value(obj, key)
    for i, e in enumerate(c.env):
        name = e.get("name")
        fw = f"{c.field_path}.env[{i}]"
        if not name:
            raise field_error(source, f"{fw}.name", "env entry without a name", "give it a name")
        if "value" in e:
            env[name] = expand(str(e["value"]), env)
            continue
        vf = e.get("valueFrom") or {}
        value: str | None = None
        if "fieldRef" in vf:
            path = vf["fieldRef"].get("fieldPath", "")
            value = _field_ref(path, pod)
            if value is None:
                raise field_error(
                    source,
                    f"{fw}.valueFrom.fieldRef.fieldPath",
                    f"unsupported field {path!r}",
                    (
                        "use status.podIP, metadata.name, metadata.namespace, spec.nodeName "
                        "or metadata.labels['k']"
                    ),
                )
        elif "resourceFieldRef" in vf:
            value = _resource_ref(
                vf["resourceFieldRef"], c, source, f"{fw}.valueFrom.resourceFieldRef"
            )
        elif "configMapKeyRef" in vf or "secretKeyRef" in vf:
            kind = "ConfigMap" if "configMapKeyRef" in vf else "Secret"
            ref = vf.get("configMapKeyRef") or vf.get("secretKeyRef") or {}
            obj = by_kind_name.get((kind, ref.get("name")))
            key = ref.get("key")
            if obj is not None and key in {
                **(obj.get("data") or {}),
                **(obj.get("stringData") or {}),
            }:
                value = _object_value(obj, str(key))
            elif not ref.get("optional"):
                raise field_error(
                    source,
                    f"{fw}.valueFrom",
                    f"{kind} {ref.get('name')!r} key {key!r} not in the manifests",
                    f"include the {kind} in the bundle or mark the ref optional",
                )
        else:
            value = ""
        if value is not None:
            env[name] = value
    return env


def _object_value(obj: dict[str, Any], key: str) -> str:
    """A ConfigMap's or Secret's value (Secret `data` is base64; `stringData` wins, as on write)."""
    if key in (obj.get("stringData") or {}):
        return str(obj["stringData"][key])
    value = str(obj["data"][key])
    return base64.b64decode(value).decode() if obj.get("kind") == "Secret" else value
