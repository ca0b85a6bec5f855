"""``glasses models bench`` runs and reports every comparison (a smoke run: numbers of a
--quick run are not measurements, so nothing here asserts a speedup)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from glasses_sdk._paths import repo_root
from glasses_sdk.inference import ModelRegistry

_DECISION = {
    "type": "object",
    "required": [
        "model",
        "variant",
        "size_bytes",
        "speedup_vs_fp32",
        "accuracy",
        "faster",
        "within_tolerance",
        "keep_as_default",
        "manifest_default",
    ],
    "properties": {
        "accuracy": {"type": "object", "required": ["metric", "fp32", "int8", "tolerance"]},
        "keep_as_default": {"type": "boolean"},
    },
}

SCHEMA = {
    "type": "object",
    "required": [
        "benchmark",
        "environment",
        "results",
        "ocr_accuracy",
        "vad_accuracy",
        "int8_decisions",
        "peak_rss_bytes_all_tasks",
    ],
    "properties": {
        "benchmark": {"const": "models"},
        "results": {
            "type": "array",
            "minItems": 5,
            "items": {
                "type": "object",
                "required": ["case", "ours_name", "ours_median_ms", "references"],
                "properties": {"ours_median_ms": {"type": "number", "exclusiveMinimum": 0}},
            },
        },
        "int8_decisions": {"type": "array", "minItems": 2, "items": _DECISION},
        "vad_accuracy": {
            "type": "object",
            "required": ["precision", "recall", "f1", "white_noise_speech_s"],
        },
        "ocr_accuracy": {
            "type": "object",
            "required": ["ours", "ours_v5", "rapidocr", "cpu_ms"],
            "properties": {"cpu_ms": {"type": "object", "required": ["read", "detect"]}},
        },
        "peak_rss_bytes_all_tasks": {"type": "integer", "minimum": 1},
    },
}


@pytest.mark.slow
def test_bench_models_json(registry: ModelRegistry) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_models", "--quick", "--json", "--no-install"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=repo_root(),
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    jsonschema.validate(document, SCHEMA)
    cases = " ".join(r["case"] for r in document["results"])
    for needle in (
        "vad",
        "vad fused",
        "1280x720",
        "640x480",
        "blazeface-short int8",
        "ppocr-rec int8",
        "ppocr fused",
        "ppocr v5 fused",
    ):
        assert needle in cases, needle
    # A variant that is not both faster and within tolerance is never the default.
    for decision in document["int8_decisions"]:
        if not decision["keep_as_default"]:
            assert decision["manifest_default"] != decision["variant"]
    # The fused PP-OCR files (the default) read exactly what the shipped files read.
    assert document["ocr_fused"]["same_text"] and document["ocr_fused_v5"]["same_text"]
    # So does the fused VAD: the same segments, probabilities within 1e-4.
    assert document["vad_fused"]["same_segments"]
    assert document["vad_fused"]["max_probability_difference"] < 1e-4


def test_bench_env_reports_what_is_missing_without_installing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmarks import _bench_env
    from glasses_sdk._paths import CACHE_ENV

    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    lock = _bench_env.bench_lock()
    pins = [ln.split("#")[0].strip() for ln in lock.read_text().splitlines()]
    pins = [p for p in pins if p]
    assert {p.split("==")[0].lower() for p in pins} >= {"pyclipper", "shapely", "pyyaml", "six"}
    assert _bench_env.missing_bench_deps() == pins
    before = list(sys.path)
    why = _bench_env.activate(install=False)
    assert why is not None and "pyclipper==" in why and str(tmp_path) in why
    assert sys.path == before
    # A package counts as installed by its dist-info folder, as pip --target leaves it.
    name, version = pins[0].split("==")
    (tmp_path / "bench-deps" / f"{name.replace('-', '_')}-{version}.dist-info").mkdir(parents=True)
    assert _bench_env.missing_bench_deps() == pins[1:]
