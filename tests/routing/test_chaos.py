"""The chaos run (issue 8): the real server SIGKILLed at 3 seeded points, one of them
between the model call and the commit, restarted, behind an impaired link; durable
requests through the outbox. Nothing lost, nothing executed twice — the latter read
from the server's own idempotency database (committed executions per key)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.bench_chaos import run_chaos
from glasses_sdk import data
from glasses_sdk._paths import cache_dir
from tests.conftest import missing, need_data

REQUESTS = 200


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_chaos_run_loses_nothing_and_runs_nothing_twice(tmp_path: Path) -> None:
    need_data(lambda: data.photo_path("astronaut"))
    if not (cache_dir() / "models" / "blazeface-short").exists():
        missing("the BlazeFace model is not built: run 'glasses models build'")
    result = run_chaos(tmp_path, requests=REQUESTS, kills=3, seed=8)
    figures = result.to_json()
    assert result.kills >= 3, figures
    assert result.restarts >= 3, figures
    assert "before commit" in result.kill_points[0]
    assert result.answered >= 0.99 * REQUESTS, figures
    # The rest were reported failed: none silently missing.
    assert result.answered + result.failed == REQUESTS, figures
    assert result.missing == 0, figures
    assert result.duplicates == 0, figures
    assert result.answered_without_commit == 0, figures
    assert result.outbox["sent"] + result.outbox["replayed"] == result.answered, figures
    assert result.proxy["remaining_in_outbox"] == 0, figures
