"""Schemathesis against the served OpenAPI spec: nothing a client sends yields a 5xx.

Driven through schemathesis' Python API with hypothesis (its pytest `from_fixture` loader does
not work with this pytest version); examples are bounded so the run stays short.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Err

from tests.service.conftest import ServerProcess

MAX_EXAMPLES = 20


@pytest.mark.timeout(300)
def test_no_server_errors_on_any_generated_request(server: ServerProcess) -> None:
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    checked: list[str] = []
    failures: list[str] = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # the served spec itself must load
        operation = result.ok()
        if operation.path.startswith("/debug/"):
            continue  # chaos hooks (hang/allocate) are meant to hurt the server
        checked.append(f"{operation.method.upper()} {operation.path}")

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case) -> None:
            response = case.call(timeout=60)
            # The server is started and not draining here, so even a 503 would be a bug.
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.path} {case.body!r:.200} -> "
                    f"{response.status_code}: {response.text[:200]}"
                )

        run()
    assert {"POST /v1/completions", "POST /v1/chat/completions", "GET /health"} <= set(checked)
    assert not failures, "\n".join(failures[:10])
