"""Upstream k8s.io/apimachinery/pkg/util/intstr/intstr_test.go cases for `scaled_value`
(TestGetIntFromIntOrPercent, TestGetValueFromIntOrPercentNil, TestGetIntFromIntOrString).

Facts (inputs, expected values and which inputs are errors) are upstream's; the code is this
project's. Upstream's zero `total` / `roundUp` defaults are written out."""

from __future__ import annotations

import pytest

from harness.models.intstr import IntOrStringError, scaled_value


@pytest.mark.parametrize(
    ("value", "total", "round_up", "expected"),
    [
        (123, 0, False, 123),
        ("90%", 100, True, 90),
        ("90%", 95, True, 86),
        ("90%", 95, False, 85),
    ],
)
def test_get_int_from_int_or_percent(value, total, round_up, expected):
    assert scaled_value(value, total, round_up) == expected


@pytest.mark.parametrize("value", ["%", "90#", "#%", "90"])
def test_get_int_from_int_or_percent_errors(value):
    with pytest.raises(IntOrStringError, match=r"^invalid value for IntOrString: "):
        scaled_value(value, 0, False)


def test_get_value_from_int_or_percent_nil():
    with pytest.raises(IntOrStringError, match=r"^nil value for IntOrString$"):
        scaled_value(None, 0, False)  # type: ignore[arg-type]


# TestGetIntFromIntOrString: getIntOrPercentValueSafely, seen through scaled_value with total 100
# (a percentage of 100 is the percentage itself; an int is not scaled).
@pytest.mark.parametrize(("value", "expected"), [(200, 200), ("40%", 40)])
def test_get_int_from_int_or_string(value, expected):
    assert scaled_value(value, 100, False) == expected
    assert scaled_value(value, 100, True) == expected


@pytest.mark.parametrize("value", ["200", "30%0", "%", "a%", "a", "40#", "40%%"])
def test_get_int_from_int_or_string_errors(value):
    with pytest.raises(IntOrStringError):
        scaled_value(value, 100, False)


def test_error_wording_is_upstreams():
    with pytest.raises(
        ValueError,
        match=r"^invalid value for IntOrString: invalid type: string is not a percentage$",
    ):
        scaled_value("90", 10, True)
    with pytest.raises(
        ValueError,
        match=r'^invalid value for IntOrString: invalid value "a%": strconv.Atoi: '
        r'parsing "a": invalid syntax$',
    ):
        scaled_value("a%", 10, True)
    with pytest.raises(ValueError, match=r"neither int nor percentage"):
        scaled_value(1.5, 10, True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"neither int nor percentage"):
        scaled_value(True, 10, True)


@pytest.mark.parametrize(
    ("value", "total", "up", "down"),
    [
        ("25%", 1, 1, 0),  # the Deployment defaults at one replica: maxSurge 1, maxUnavailable 0
        ("25%", 4, 1, 1),
        ("25%", 10, 3, 2),
        ("0%", 7, 0, 0),
        ("100%", 3, 3, 3),
        ("+50%", 3, 2, 1),  # strconv.Atoi takes a sign
        ("-50%", 3, -1, -2),
        (0, 5, 0, 0),
    ],
)
def test_rounding(value, total, up, down):
    assert scaled_value(value, total, True) == up
    assert scaled_value(value, total, False) == down
