"""IntOrString values such as maxSurge, maxUnavailable and minAvailable, a port of
k8s.io/apimachinery/pkg/util/intstr (GetScaledValueFromIntOrPercent, getIntOrPercentValueSafely).

An int is taken as is; a string must be an integer followed by `%` and is scaled against the
total (rounded up or down). Any other string ("3", "25", "12.5%") is an error, as upstream: the
API server's validation (IsValidPercent) rejects those as well. Errors carry upstream's wording.
"""

from __future__ import annotations

import math
import re

# strconv.Atoi: an optional sign and decimal digits, nothing else (no spaces, no underscores)
_ATOI = re.compile(r"[+-]?[0-9]+")
_INT64 = 2**63


class IntOrStringError(ValueError):
    """An IntOrString that is neither an int nor an integer percentage."""


def scaled_value(value: int | str, total: int, round_up: bool) -> int:
    """GetScaledValueFromIntOrPercent: `value` as is when an int, else `value%` of `total`,
    ceil when `round_up`, else floor. Raises IntOrStringError (a ValueError)."""
    if value is None:
        raise IntOrStringError("nil value for IntOrString")
    n, is_percent = _int_or_percent_value(value)
    if not is_percent:
        return n
    scaled = float(n) * float(total) / 100
    return int(math.ceil(scaled) if round_up else math.floor(scaled))


def _int_or_percent_value(value: int | str) -> tuple[int, bool]:
    """getIntOrPercentValueSafely -> (value, is a percentage)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise IntOrStringError(
            "invalid value for IntOrString: invalid type: neither int nor percentage"
        )
    if isinstance(value, int):
        return value, False
    if not value.endswith("%"):
        raise IntOrStringError(
            "invalid value for IntOrString: invalid type: string is not a percentage"
        )
    digits = value[:-1]
    if not _ATOI.fullmatch(digits):
        raise IntOrStringError(
            f'invalid value for IntOrString: invalid value "{value}": '
            f'strconv.Atoi: parsing "{digits}": invalid syntax'
        )
    n = int(digits)
    if not -_INT64 <= n < _INT64:
        raise IntOrStringError(
            f'invalid value for IntOrString: invalid value "{value}": '
            f'strconv.Atoi: parsing "{digits}": value out of range'
        )
    return n, True
