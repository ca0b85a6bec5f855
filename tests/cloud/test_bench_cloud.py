"""benchmarks/bench_cloud.py's model-stage comparisons: the batch-dynamic BlazeFace copy
answers as the original does, image by image, and a short run reports its ratios."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from glasses_sdk._exceptions import ModelNotBuiltError
from tests.conftest import missing, need_data


def test_batch_dynamic_blazeface_matches_the_original() -> None:
    import onnxruntime as ort

    from benchmarks.bench_cloud import _batch_dynamic_blazeface
    from glasses_sdk.inference._registry import default_registry

    try:
        path = default_registry().path("blazeface-short", "fp32")
    except ModelNotBuiltError as exc:
        missing(str(exc))
    if not path.is_file():
        missing(f"{path} is not built (glasses models build)")
    original = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    dynamic = ort.InferenceSession(
        _batch_dynamic_blazeface(path), providers=["CPUExecutionProvider"]
    )
    names = [o.name for o in original.get_outputs()]
    images = np.random.default_rng(7).uniform(-1, 1, (5, 3, 128, 128)).astype(np.float32)
    batched = dynamic.run(names, {"input": images})
    for i in range(len(images)):
        single = original.run(names, {"input": images[i : i + 1]})
        for got, expected in zip(batched, single, strict=True):
            np.testing.assert_allclose(got[i], expected[0], rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_model_stage_comparison_reports_ratios() -> None:
    from benchmarks.bench_cloud import _batching_json, _faces_model_stage_pairs, _jpeg

    try:
        pairs = _faces_model_stage_pairs(need_data(_jpeg), 0.3, 1)
    except ModelNotBuiltError as exc:
        missing(str(exc))
    report = _batching_json(pairs)
    assert report["on"][0]["statuses"]["200"] > 0 and report["off"][0]["statuses"]["200"] > 0
    assert report["median_ratio"] > 0 and report["median_cpu_ratio"] > 0
    assert report["on"][0]["cpu_ms_per_answer"] > 0


def test_overhead_phase_reports_server_time_and_cpu(tmp_path: Path) -> None:
    # A short run of phase 2 (a real server process with the no-op face backend): every
    # request answered, the Server-Timing median and the server's CPU per request told.
    from benchmarks.bench_cloud import _jpeg, _overhead

    report = _overhead(tmp_path, need_data(lambda: _jpeg(128)), 0.5)
    for name in ("overhead", "overhead_512_jpeg"):
        phase = report[name]
        assert set(phase["statuses"]) == {"200"}, phase
        assert phase["server_p50_ms"] > 0
        assert phase["server_cpu_ms_per_request"] > 0
