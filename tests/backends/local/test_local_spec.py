"""Container spec parsing and environment: bad fields are named with file, field and fix."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from standin_specs import bundle, deployment

from harness.backends.local import LocalBackend
from harness.backends.local.podspec.env_resolution import PodIdentity, resolve_env
from harness.backends.local.podspec.pod_template import parse_template
from harness.errors import InputError


@pytest.mark.parametrize(
    ("probe", "field", "words"),
    [
        (
            {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": -1},
            "livenessProbe.periodSeconds",
            ">= 1",
        ),
        (
            {"httpGet": {"path": "/", "port": "http"}, "successThreshold": 2},
            "livenessProbe.successThreshold",
            "must be 1",
        ),
        (
            {"httpGet": {"path": "/", "port": "nope"}},
            "livenessProbe.httpGet.port",
            "named containerPort",
        ),
        ({"periodSeconds": 1}, "livenessProbe", "no handler"),
    ],
)
def test_bad_probe_names_file_field_and_fix(probe: dict, field: str, words: str) -> None:
    dep = deployment(probes={"livenessProbe": probe})
    with pytest.raises(InputError) as err:
        parse_template(dep, "app.yaml")
    text = str(err.value)
    assert (
        "app.yaml" in text and f"spec.template.spec.containers[0].{field}" in text and words in text
    )


def test_probe_defaults_as_the_api_server_sets_them() -> None:
    dep = deployment(probes={"readinessProbe": {"tcpSocket": {"port": 8000}, "periodSeconds": 0}})
    p = parse_template(dep, "app.yaml").main.probes["readiness"]
    assert (
        p.period_s,
        p.timeout_s,
        p.failure_threshold,
        p.success_threshold,
        p.initial_delay_s,
    ) == (10, 1, 3, 1, 0)


def _ident() -> PodIdentity:
    return PodIdentity("web-1", "default", "127.0.0.9", "node-a", {"app": "web"})


def test_env_from_then_env_on_top_with_prefix_and_expansion() -> None:
    dep = deployment()
    c = dep["spec"]["template"]["spec"]["containers"][0]
    c["envFrom"] = [
        {"configMapRef": {"name": "cfg"}},
        {"secretRef": {"name": "creds"}, "prefix": "S_"},
        {"configMapRef": {"name": "absent", "optional": True}},
    ]
    c["env"] = [
        {"name": "MODEL", "value": "override"},
        {"name": "URL", "value": "http://$(HOST_NAME):$(S_TOKEN)"},
    ]
    objects = [
        {
            "kind": "ConfigMap",
            "metadata": {"name": "cfg"},
            "data": {"MODEL": "from-cm", "HOST_NAME": "h"},
        },
        {
            "kind": "Secret",
            "metadata": {"name": "creds"},
            "data": {"TOKEN": base64.b64encode(b"t0k").decode()},
        },
    ]
    env = resolve_env(parse_template(dep, "app.yaml").main, _ident(), objects, "app.yaml")
    assert env["MODEL"] == "override"  # env wins over envFrom
    assert env["HOST_NAME"] == "h" and env["S_TOKEN"] == "t0k"
    assert env["URL"] == "http://h:t0k"


def test_missing_env_from_source_names_the_init_container_field() -> None:
    dep = deployment()
    dep["spec"]["template"]["spec"]["initContainers"] = [
        {
            "name": "fetch",
            "image": "x",
            "command": ["true"],
            "envFrom": [{"configMapRef": {"name": "nope"}}],
        }
    ]
    init = parse_template(dep, "app.yaml").init_containers[0]
    with pytest.raises(InputError) as err:
        resolve_env(init, _ident(), [], "app.yaml")
    text = str(err.value)
    assert "app.yaml" in text and "spec.template.spec.initContainers[0].envFrom[0]" in text
    assert "ConfigMap 'nope'" in text and "optional" in text


def test_deploy_refuses_what_every_container_start_would_fail(tmp_path: Path) -> None:
    dep = deployment()
    dep["spec"]["template"]["spec"]["containers"][0]["envFrom"] = [
        {"secretRef": {"name": "model-token"}}
    ]
    with LocalBackend(tmp_path) as b, pytest.raises(InputError) as err:
        b.deploy(bundle(dep))
    assert "containers[0].envFrom[0]" in str(err.value) and "Secret 'model-token'" in str(err.value)
    assert b.pods() == []
