"""Evaluate a bundle: every rule on every workload, findings sorted (errors first)."""

from __future__ import annotations

from harness.check.findings import Finding, Severity, sort_findings
from harness.check.rules import all_rules
from harness.check.rules.keda import as_scaled_object
from harness.check.targets import Targets
from harness.check.workload import workloads
from harness.errors import InputError
from harness.manifests.bundle import ManifestBundle


def run_checks(bundle: ManifestBundle, targets: Targets) -> list[Finding]:
    found = workloads(bundle)
    if not found:
        raise InputError(
            "no Deployment or StatefulSet in the manifests",
            file=bundle.source or None,
            fix="pass the manifests of the workload to check",
        )
    findings: list[Finding] = []
    for w in found:
        for rule in all_rules():
            # a generated HPA's findings name the ScaledObject field they come from
            findings.extend(as_scaled_object(w, f) for f in rule(w, targets))
    return sort_findings(findings)


def has_errors(findings: list[Finding]) -> bool:
    return any(f.severity is Severity.error for f in findings)
