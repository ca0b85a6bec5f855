"""The session manager: one session per file, thread safety, configuration, memory."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from glasses_sdk._exceptions import InvalidConfigError, ModelError, ModelNotBuiltError
from glasses_sdk.inference import ModelRegistry, SessionConfig, SessionManager
from glasses_sdk.inference._session import PROVIDERS_ENV


def test_one_session_per_file(registry: ModelRegistry, sessions: SessionManager) -> None:
    path = registry.path("blazeface-short")
    first = sessions.load(path)
    assert sessions.load(path) is first
    assert sessions.load(Path(str(path))) is first
    assert len(sessions.loaded()) == 1
    other = sessions.load(
        registry.path("silero-vad"),
        warmup_feed={
            "input": np.zeros((1, 576), np.float32),
            "state": np.zeros((2, 1, 128), np.float32),
            "sr": np.array(16000, np.int64),
        },
    )
    assert other is not first
    assert len(sessions.loaded()) == 2


def test_concurrent_loads_create_one_session(
    registry: ModelRegistry, sessions: SessionManager
) -> None:
    path = registry.path("blazeface-full")
    barrier = threading.Barrier(8)
    got: list[object] = []
    tensor = np.zeros((1, 3, 192, 192), np.float32)
    outputs: list[np.ndarray] = []

    def worker() -> None:
        barrier.wait()
        loaded = sessions.load(path)
        got.append(loaded)
        outputs.append(loaded.session.run(None, {"input": tensor})[1])

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 8
    assert all(g is got[0] for g in got)
    for out in outputs:
        np.testing.assert_array_equal(out, outputs[0])


def test_defaults_are_single_thread_without_spinning() -> None:
    config = SessionConfig()
    options = config.session_options()
    assert options.intra_op_num_threads == 1
    assert options.inter_op_num_threads == 1
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert config.resolved_providers() == ["CPUExecutionProvider"]


def test_providers_unavailable_are_skipped_and_cpu_is_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = SessionConfig(providers=("cuda", "NoSuchExecutionProvider", "CPUExecutionProvider"))
    resolved = config.resolved_providers()
    assert resolved[-1] == "CPUExecutionProvider"
    assert "NoSuchExecutionProvider" not in resolved
    monkeypatch.setenv(PROVIDERS_ENV, "coreml,cpu")
    assert SessionConfig.from_env().providers == ("coreml", "cpu")
    assert SessionConfig.from_env().resolved_providers()[-1] == "CPUExecutionProvider"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"intra_op_threads": -1}, "intra_op_threads"),
        ({"optimization": "max"}, "optimization"),
        ({"providers": ()}, "providers"),
        ({"warmup_runs": -1}, "warmup_runs"),
    ],
)
def test_bad_config_is_rejected(kwargs: dict[str, object], expected: str) -> None:
    with pytest.raises(InvalidConfigError, match=expected):
        SessionConfig(**kwargs)  # type: ignore[arg-type]


def test_memory_is_accounted(registry: ModelRegistry, sessions: SessionManager) -> None:
    loaded = sessions.load(registry.path("ppocr-rec"))
    assert loaded.file_bytes == registry.path("ppocr-rec").stat().st_size
    # The recognizer's weights (11 MB) are resident once loaded.
    assert sessions.memory_bytes() >= loaded.file_bytes // 2
    assert loaded.to_json()["file_bytes"] == loaded.file_bytes
    sessions.unload()
    assert sessions.loaded() == []


def test_missing_and_broken_files_raise_model_errors(
    sessions: SessionManager, tmp_path: Path
) -> None:
    with pytest.raises(ModelNotBuiltError, match="glasses models build"):
        sessions.load(tmp_path / "absent.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="could not load"):
        sessions.load(broken)
