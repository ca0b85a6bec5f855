"""The benchmarks run and report every comparison with its ratio (a smoke run: the
numbers of a --quick run are not measurements, so nothing here asserts a speedup)."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest

SCHEMA = {
    "type": "object",
    "required": ["benchmark", "environment", "results"],
    "properties": {
        "benchmark": {"const": "preprocess"},
        "environment": {"type": "object", "required": ["python", "numpy", "opencv"]},
        "results": {
            "type": "array",
            "minItems": 8,
            "items": {
                "type": "object",
                "required": ["case", "ours_name", "ours_median_ms", "references"],
                "properties": {
                    "ours_median_ms": {"type": "number", "exclusiveMinimum": 0},
                    "references": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["name", "median_ms", "speedup", "speedup_rounds", "met"],
                            "properties": {
                                "median_ms": {"type": "number", "exclusiveMinimum": 0},
                                "speedup": {"type": "number", "exclusiveMinimum": 0},
                            },
                        },
                    },
                },
            },
        },
    },
}


@pytest.mark.slow
def test_bench_preprocess_json_names_every_implementation_and_ratio() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "glasses_sdk.cli", "bench", "preprocess", "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    jsonschema.validate(document, SCHEMA)
    cases = " ".join(r["case"] for r in document["results"])
    for needle in ("1920x1080", "1280x720", "640x480", "batch", "80 ms", "10 s"):
        assert needle in cases, needle
    references = {ref["name"] for r in document["results"] for ref in r["references"]}
    assert any("blobFromImage" in name for name in references), references
    assert any("librosa" in name for name in references), references
    goals = [ref for r in document["results"] for ref in r["references"] if ref["goal_speedup"]]
    assert len(goals) >= 10
    for result_item in document["results"]:
        for ref in result_item["references"]:
            expected = ref["median_ms"] / result_item["ours_median_ms"]
            # The reported speedup is a median of pair ratios, near the ratio of medians.
            assert 0.1 * expected < ref["speedup"] < 10 * expected, (result_item["case"], ref)
