"""Fixtures of the local backend tests; the spec builders live in standin_specs.py."""

from __future__ import annotations

import pytest

from harness.backends.local.kubelet import cgroups


@pytest.fixture
def need_cgroups() -> None:
    ok, why = cgroups.support()
    if not ok:
        pytest.skip(why)
