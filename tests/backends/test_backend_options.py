"""backend_options: each backend declares what it takes from the profile and the flags."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import pytest

from harness.backends import BACKEND_OPTIONS, BACKENDS, RUNTIMES, backend_options
from harness.errors import InputError
from harness.profile import Profile, load_profile


@pytest.fixture(scope="module")
def profile() -> Profile:
    prof = load_profile("local")
    return prof.model_copy(
        update={
            "zones": prof.zones.model_copy(update={"zones": ["z1", "z2"], "nodes_per_zone": 2}),
            "kube": prof.kube.model_copy(
                update={"allowed_contexts": ["kind-gauntlet", "staging"], "chaos_allowed": True}
            ),
        }
    )


def opts(
    name: str,
    profile: Profile,
    context: str | None = None,
    allow: list[str] | None = None,
    runtime: str = "process",
) -> dict[str, Any]:
    return backend_options(
        name, profile, context=context, allow_contexts=allow or [], runtime=runtime
    )


def test_every_backend_declares_its_options() -> None:
    assert set(BACKEND_OPTIONS) == set(BACKENDS)
    for target in BACKEND_OPTIONS.values():
        module, attr = target.split(":")
        fn = getattr(importlib.import_module(module), attr)
        params = inspect.signature(fn).parameters
        assert list(params) == ["profile", "context", "allow_contexts", "runtime"], target
        assert all(
            params[p].kind is inspect.Parameter.KEYWORD_ONLY
            for p in ("context", "allow_contexts", "runtime")
        )


def test_local_takes_zones_nodes_and_runtime(profile: Profile) -> None:
    assert opts("local", profile) == {
        "zones": ["z1", "z2"],
        "nodes_per_zone": 2,
        "runtime": "process",
    }
    assert opts("local", profile, runtime="docker")["runtime"] == "docker"
    # --allow-context means nothing to local, and is not an error (as before)
    assert opts("local", profile, allow=["x"]) == opts("local", profile)


def test_local_options_are_a_fresh_list(profile: Profile) -> None:
    out = opts("local", profile)
    out["zones"].append("z9")
    assert profile.zones.zones == ["z1", "z2"]


def test_local_refuses_a_context(profile: Profile) -> None:
    with pytest.raises(InputError, match="--context applies to the kube backend") as err:
        opts("local", profile, context="kind-gauntlet")
    assert err.value.field == "--context" and "--backend kube" in (err.value.fix or "")


def test_kind_deletes_its_cluster_after_the_run_and_follows_the_profile_on_chaos(
    profile: Profile,
) -> None:
    # one cluster per run (harness.backends.kind_cluster); kept only with $GAUNTLET_KEEP_CLUSTER
    assert opts("kind", profile) == {"chaos_allowed": True, "keep_cluster": False}
    strict = profile.model_copy(
        update={"kube": profile.kube.model_copy(update={"chaos_allowed": False})}
    )
    assert opts("kind", strict, allow=["x"], runtime="docker") == {
        "chaos_allowed": False,
        "keep_cluster": False,
    }


def test_kind_refuses_a_context(profile: Profile) -> None:
    with pytest.raises(InputError, match=r"makes its own context \(kind-gauntlet\)") as err:
        opts("kind", profile, context="kind-gauntlet")
    assert err.value.field == "--context" and "--backend kube --context NAME" in (
        err.value.fix or ""
    )


def test_kube_needs_a_context(profile: Profile) -> None:
    for context in (None, ""):
        with pytest.raises(InputError, match="the kube backend needs a context") as err:
            opts("kube", profile, context=context)
        assert err.value.field == "--context" and "--allow-context" in (err.value.fix or "")


def test_kube_allows_the_profile_contexts_then_the_flags_once_each(profile: Profile) -> None:
    out = opts("kube", profile, context="dev", allow=["dev", "staging", "dev"])
    assert out == {
        "context": "dev",
        "allowed_contexts": ["kind-gauntlet", "staging", "dev"],
        "chaos_allowed": True,
    }
    # the context itself is checked when the backend is built (ContextNotAllowedError), not here
    assert opts("kube", profile, context="prod")["allowed_contexts"] == ["kind-gauntlet", "staging"]


def test_unknown_backend(profile: Profile) -> None:
    with pytest.raises(InputError, match="unknown backend 'k8s'") as err:
        opts("k8s", profile)
    assert err.value.field == "--backend" and all(
        name in (err.value.fix or "") for name in BACKENDS
    )


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_unknown_runtime_for_every_backend(profile: Profile, name: str) -> None:
    # checked before the backend's own rules, as the command line offers --runtime for all
    with pytest.raises(InputError, match="unknown runtime 'podman'") as err:
        opts(name, profile, context="x", runtime="podman")
    assert err.value.field == "--runtime" and all(r in (err.value.fix or "") for r in RUNTIMES)


def test_unknown_backend_is_reported_before_the_runtime(profile: Profile) -> None:
    with pytest.raises(InputError, match="unknown backend"):
        opts("k8s", profile, runtime="podman")


@pytest.mark.parametrize("mode", ["taint", "drain"])
def test_the_profile_chooses_the_zone_outage_mode(profile: Profile, mode: str) -> None:
    chosen = profile.model_copy(
        update={"kube": profile.kube.model_copy(update={"zone_outage": mode})}
    )
    assert opts("kube", chosen, context="staging")["zone_outage_mode"] == mode
    assert opts("kind", chosen)["zone_outage_mode"] == mode
    assert "zone_outage_mode" not in opts("kube", profile, context="staging")  # the default: evict
