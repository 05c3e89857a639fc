"""Container spec parsing: bad probe fields are named with file, field and fix."""

from __future__ import annotations

import pytest
from standin_specs import deployment

from harness.backends.local.spec import parse_template
from harness.errors import InputError


@pytest.mark.parametrize(("probe", "field", "words"), [
    ({"httpGet": {"path": "/", "port": "http"}, "periodSeconds": -1}, "livenessProbe.periodSeconds", ">= 1"),
    ({"httpGet": {"path": "/", "port": "http"}, "successThreshold": 2}, "livenessProbe.successThreshold", "must be 1"),
    ({"httpGet": {"path": "/", "port": "nope"}}, "livenessProbe.httpGet.port", "named containerPort"),
    ({"periodSeconds": 1}, "livenessProbe", "no handler"),
])
def test_bad_probe_names_file_field_and_fix(probe: dict, field: str, words: str) -> None:
    dep = deployment(probes={"livenessProbe": probe})
    with pytest.raises(InputError) as err:
        parse_template(dep, "app.yaml")
    text = str(err.value)
    assert "app.yaml" in text and f"spec.template.spec.containers[0].{field}" in text and words in text


def test_probe_defaults_as_the_api_server_sets_them() -> None:
    dep = deployment(probes={"readinessProbe": {"tcpSocket": {"port": 8000}, "periodSeconds": 0}})
    p = parse_template(dep, "app.yaml").main.probes["readiness"]
    assert (p.period_s, p.timeout_s, p.failure_threshold, p.success_threshold, p.initial_delay_s) == (10, 1, 3, 1, 0)
