"""A set of rendered Kubernetes objects (plain dicts, as `kubectl get -o yaml` gives them)."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

K8sObject = dict[str, Any]


@dataclass
class ManifestBundle:
    objects: list[K8sObject]
    source: str = ""
    origins: dict[int, str] = field(default_factory=dict)  # index -> file it came from

    @classmethod
    def from_yaml(cls, text: str, source: str = "") -> ManifestBundle:
        docs = [d for d in yaml.safe_load_all(text) if d]
        objs: list[K8sObject] = []
        for d in docs:
            if d.get("kind") == "List":
                objs.extend(d.get("items", []))
            else:
                objs.append(d)
        return cls(objs, source=source)

    def __iter__(self) -> Iterator[K8sObject]:
        return iter(self.objects)

    def of_kind(self, *kinds: str) -> list[K8sObject]:
        return [o for o in self.objects if o.get("kind") in kinds]

    def one(self, kind: str) -> K8sObject | None:
        """The single object of a kind (None if absent; the first if several)."""
        found = self.of_kind(kind)
        return found[0] if found else None

    @property
    def deployment(self) -> K8sObject:
        dep = self.one("Deployment")
        if dep is None:
            from harness.errors import InputError

            raise InputError(
                "no Deployment in the manifests",
                file=self.source or None,
                fix="include the Deployment to certify",
            )
        return dep

    @property
    def hpa(self) -> K8sObject | None:
        """The HorizontalPodAutoscaler; without one, the HPA KEDA generates for a ScaledObject."""
        found = self.one("HorizontalPodAutoscaler")
        if found is not None:
            return found
        generated = self.keda_hpas()
        return generated[0] if generated else None

    def keda_hpas(self) -> list[K8sObject]:
        """The HPAs KEDA's operator creates for the bundle's keda.sh ScaledObjects
        (harness.models.keda); a bad ScaledObject is an InputError naming its file and field."""
        from harness.errors import InputError
        from harness.models._k8s import ModelInputError
        from harness.models.keda import API_VERSION, KIND, hpa_for

        out: list[K8sObject] = []
        for i, obj in enumerate(self.objects):
            if obj.get("kind") != KIND or obj.get("apiVersion") != API_VERSION:
                continue
            try:
                out.append(hpa_for(obj))
            except ModelInputError as err:
                raise InputError(
                    err.message,
                    file=self.origins.get(i, self.source) or None,
                    field=err.field,
                    fix=err.fix,
                ) from None
        return out

    def scaled_object(self, hpa_name: str) -> K8sObject | None:
        """The ScaledObject whose generated HPA is named `hpa_name` (None: not KEDA's)."""
        from harness.models.keda import API_VERSION, KIND, hpa_for

        for obj in self.objects:
            if (
                obj.get("kind") == KIND
                and obj.get("apiVersion") == API_VERSION
                and hpa_for(obj)["metadata"]["name"] == hpa_name
            ):
                return obj
        return None

    @property
    def pdb(self) -> K8sObject | None:
        return self.one("PodDisruptionBudget")

    @property
    def service(self) -> K8sObject | None:
        return self.one("Service")

    def copy(self) -> ManifestBundle:
        return ManifestBundle(copy.deepcopy(self.objects), self.source, dict(self.origins))

    def to_yaml(self) -> str:
        return yaml.safe_dump_all(self.objects, sort_keys=False)

    def write(self, path: Path) -> None:
        path.write_text(self.to_yaml())

    @staticmethod
    def concat(bundles: Iterable[ManifestBundle]) -> ManifestBundle:
        objs: list[K8sObject] = []
        for b in bundles:
            objs.extend(b.objects)
        return ManifestBundle(objs)
