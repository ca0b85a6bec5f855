"""Property-based requests generated from ``/openapi.json`` by schemathesis: no 500, no
stack trace, every error in the JSON error shape. Bounded: a few examples per route."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from glasses_sdk.cloud import create_app
from tests.cloud.conftest import auth, fake_backends, make_key, serve, server_settings

EXAMPLES_PER_ROUTE = 12


@pytest.fixture(scope="module")
def server(module_dir: Path) -> Iterator[tuple[str, str]]:
    cloud_settings = server_settings(
        module_dir, max_body_bytes=200_000, rate_per_s=10_000.0, burst=10_000, batching=False
    )
    token = make_key(cloud_settings, "admin")
    with serve(create_app(cloud_settings, backends=fake_backends())) as url:
        yield url, token


@pytest.fixture(scope="module")
def api_schema(server: tuple[str, str]) -> Any:
    url, token = server
    return schemathesis.openapi.from_url(f"{url}/openapi.json", headers=auth(token))


def _check(url: str, token: str, case: Any) -> int:
    response = case.call(base_url=url, headers=auth(token), timeout=10)
    assert response.status_code not in (500, 502), (case.method, case.path, response.text)
    assert "Traceback" not in response.text
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["type"] and error["message"], response.text
    return int(response.status_code)


# schemathesis's own pytest plugin (from_fixture) does not run under pytest 9 yet
# ('Function' object has no attribute '_nodeid'), so each operation's strategy is
# driven by hypothesis directly.
def test_no_server_errors(api_schema: Any, server: tuple[str, str]) -> None:
    url, token = server
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 10
    statuses: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_ROUTE,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def run(case: Any) -> None:
            statuses.append(_check(url, token, case))

        run()
    assert len(statuses) >= 5 * len(operations)
    assert any(s < 300 for s in statuses) and any(400 <= s < 500 for s in statuses)
