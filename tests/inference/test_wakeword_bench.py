"""The wake-word evaluation runs end to end in its short form and reports every number
the issue asks for (a smoke run: 20 positives and 3 minutes of negatives measure
nothing, so nothing here asserts a goal)."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest

from tests.conftest import missing, need_binary

pytestmark = pytest.mark.timeout(280)

_RATE = {"type": "number", "minimum": 0, "maximum": 1}
_FRR = {
    "type": "object",
    "required": ["frr_clean", "frr_10db_snr", "by_synthesizer"],
    "properties": {
        "frr_clean": _RATE,
        "frr_10db_snr": _RATE,
        "by_synthesizer": {
            "type": "object",
            "required": ["espeak", "flite", "festival"],
            "additionalProperties": {
                "type": "object",
                "required": ["n", "frr_clean", "frr_10db_snr"],
                "properties": {"n": {"type": "integer", "minimum": 1}},
            },
        },
    },
}
SCHEMA = {
    "allOf": [
        _FRR,
        {
            "type": "object",
            "required": [
                "benchmark", "positives", "negative_hours", "false_accepts",
                "false_accepts_per_hour", "false_accepts_per_hour_upper95",
                "near_miss_accept_rate", "cpu_per_80ms", "pocketsphinx", "environment",
            ],
            "properties": {
                "benchmark": {"const": "wakeword"},
                "positives": {"const": 20},
                "negative_hours": {"type": "number", "minimum": 0.049, "maximum": 0.051},
                "false_accepts": {"type": "integer", "minimum": 0},
                "near_miss_accept_rate": _RATE,
                "cpu_per_80ms": {
                    "type": "object",
                    "required": ["cpu_mean_ms", "median_ms", "goal_ms"],
                    "properties": {"cpu_mean_ms": {"type": "number", "exclusiveMinimum": 0}},
                },
                "pocketsphinx": {
                    "allOf": [
                        _FRR,
                        {
                            "type": "object",
                            "required": ["threshold", "false_accepts_per_hour", "sweep"],
                            "properties": {"sweep": {"type": "array", "minItems": 3}},
                        },
                    ]
                },
            },
        },
    ]
}  # fmt: skip


def test_quick_evaluation_reports_every_number() -> None:
    for binary in ("espeak-ng", "flite", "text2wave"):
        need_binary(binary)
    try:
        import pocketsphinx  # noqa: F401
    except ImportError:
        missing("pocketsphinx is not installed (the baseline of the wake-word benchmark)")
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_wakeword", "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=270,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    jsonschema.validate(result, SCHEMA)
    # The upper bound is above the rate, and the rate is the count over the hours.
    assert result["false_accepts_per_hour_upper95"] > result["false_accepts_per_hour"]
    assert result["false_accepts_per_hour"] == pytest.approx(
        result["false_accepts"] / result["negative_hours"], rel=0.02, abs=1e-3
    )
    assert sum(m["n"] for m in result["by_synthesizer"].values()) == 20


def test_poisson_upper_bound_matches_the_table() -> None:
    from benchmarks.bench_wakeword import poisson_upper

    # 0 events in 10 h: 3.0/10 (the "rule of three"); 5 events in 1 h: 10.51.
    assert poisson_upper(0, 10.0) == pytest.approx(0.2996, abs=1e-3)
    assert poisson_upper(5, 1.0) == pytest.approx(10.513, abs=1e-2)
