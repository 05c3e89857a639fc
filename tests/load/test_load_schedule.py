"""Schedule, shapes and spec validation: pure, no subprocess."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import InputError
from harness.load import LoadSpec, Shape
from harness.load.schedule import arrival_times, requested_per_bucket, split
from harness.profile import load_profile

URL = "http://127.0.0.1:9"


def test_constant_arrivals_are_evenly_spaced() -> None:
    t = arrival_times(LoadSpec(target=URL, rate_rps=100, duration_s=2, arrival="constant"))
    assert len(t) == 200
    assert np.allclose(np.diff(t), 0.01)


def test_poisson_is_seeded_and_has_the_rate() -> None:
    spec = LoadSpec(target=URL, rate_rps=500, duration_s=20, arrival="poisson", seed=7)
    a, b = arrival_times(spec), arrival_times(spec)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, arrival_times(spec.model_copy(update={"seed": 8})))
    assert abs(len(a) - 10_000) < 5 * 100  # 5 sigma
    gaps = np.diff(a)
    assert abs(gaps.std() / gaps.mean() - 1.0) < 0.05  # exponential: CV = 1


def test_spike_shape_multiplies_the_rate_in_its_phase() -> None:
    shape = Shape(kind="spike", factor=5, baseline_s=2, spike_s=2, after_s=2)
    spec = LoadSpec(target=URL, rate_rps=50, duration_s=6, arrival="constant", shape=shape)
    t = arrival_times(spec)
    counts = np.histogram(t, bins=6, range=(0, 6))[0]
    assert list(counts) == [50, 50, 250, 250, 50, 50]
    assert list(requested_per_bucket(spec, 6)) == [50, 50, 250, 250, 50, 50]


def test_ramp_and_step_shapes() -> None:
    ramp = LoadSpec(
        target=URL, rate_rps=100, duration_s=4, arrival="constant", shape=Shape(kind="ramp")
    )
    c = np.histogram(arrival_times(ramp), bins=4, range=(0, 4))[0]
    assert list(c) == sorted(c) and c[0] < c[-1]
    assert abs(len(arrival_times(ramp)) - 200) <= 1
    step = LoadSpec(
        target=URL,
        rate_rps=10,
        duration_s=4,
        arrival="constant",
        shape=Shape(kind="step", steps=4, factor=4),
    )
    assert list(np.histogram(arrival_times(step), bins=4, range=(0, 4))[0]) == [10, 20, 30, 40]


def test_split_keeps_every_arrival_once() -> None:
    t = arrival_times(LoadSpec(target=URL, rate_rps=300, duration_s=1))
    parts = split(t, 3)
    assert sorted(np.concatenate(parts).tolist()) == t.tolist()


def test_request_bound_caps_the_schedule() -> None:
    spec = LoadSpec(target=URL, rate_rps=100, duration_s=2, arrival="constant", max_requests=50)
    assert len(arrival_times(spec)) == 50
    assert LoadSpec(target=URL, rate_rps=100, duration_s=10).request_bound() >= 1500


@pytest.mark.parametrize(
    "target", ["http://10.0.0.5:8000", "http://example.com", "http://192.168.1.2"]
)
def test_non_loopback_targets_are_refused(target: str) -> None:
    with pytest.raises(InputError) as err:
        LoadSpec(target=target)
    assert err.value.field == "target"
    LoadSpec(target=target, allow_targets=[target + "/"])  # explicitly allowed


@pytest.mark.parametrize(
    "target", ["http://localhost:8000", "http://127.0.0.1:1", "http://127.8.9.1", "http://[::1]:80"]
)
def test_loopback_targets_are_accepted(target: str) -> None:
    LoadSpec(target=target)


def test_bad_path_and_method() -> None:
    with pytest.raises(InputError):
        LoadSpec(target=URL, path="v1")
    with pytest.raises(InputError):
        LoadSpec(target=URL, method="BREW")


def test_from_profile_builds_the_request_and_spike() -> None:
    prof = load_profile("local")
    spec = LoadSpec.from_profile(prof, URL)
    assert spec.rate_rps == prof.load.baseline_rps
    assert spec.body is not None and len(spec.body["prompt"]) == prof.load.request.prompt_tokens
    assert spec.body["prompt"].isascii()
    assert spec.body["max_tokens"] == prof.load.request.max_tokens
    spike = LoadSpec.from_profile(prof, URL, shape="spike")
    assert spike.shape is not None and spike.shape.factor == prof.spike.factor
    assert spike.duration_s == prof.spike.baseline_s + prof.spike.spike_s + prof.spike.after_s


@pytest.mark.parametrize(("burstiness", "cv"), [(0.25, 2.0), (1.0, 1.0), (4.0, 0.5)])
def test_gamma_arrivals_keep_the_rate_and_set_the_burstiness(burstiness: float, cv: float) -> None:
    spec = LoadSpec(
        target="http://127.0.0.1:1",
        rate_rps=200,
        duration_s=60,
        arrival="gamma",
        burstiness=burstiness,
        seed=3,
    )
    t = arrival_times(spec)
    assert len(t) == pytest.approx(12_000, rel=0.1)
    gaps = np.diff(t)
    assert gaps.std() / gaps.mean() == pytest.approx(cv, rel=0.15)  # CV = 1 / sqrt(b)
    assert np.array_equal(t, arrival_times(spec))  # seeded
