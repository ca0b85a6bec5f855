"""silero VAD rewritten as matrix products (the default ``fused`` variant) on real speech."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from glasses_sdk import data
from glasses_sdk._exceptions import ModelBuildError
from glasses_sdk.inference import ModelRegistry, VadOptions, VoiceActivityDetector, _vad_graph
from glasses_sdk.inference._vad_graph import fuse_silero_vad
from tests.conftest import missing

try:
    import onnx
except ImportError:  # the `models` extra
    onnx = None  # type: ignore[assignment]


def _recordings() -> list[tuple[str, np.ndarray, int]]:
    out = []
    for name in sorted(data.SPEECH):
        samples, rate = soundfile.read(str(data.speech_path(name)), dtype="float32")
        out.append((name, samples if samples.ndim == 1 else samples.mean(axis=1), int(rate)))
    return out


def test_the_fused_file_is_the_default_and_scores_real_speech_as_the_shipped_one(
    registry: ModelRegistry,
) -> None:
    assert registry.get("silero-vad").default == "fused"
    fused = VoiceActivityDetector(VadOptions(variant="fused"))
    shipped = VoiceActivityDetector(VadOptions(variant="fp32"))
    for name, samples, rate in _recordings():
        a, b = fused.detect(samples, rate), shipped.detect(samples, rate)
        assert a.probabilities.size > 100, name
        # Each call's probability, carried state included, over the whole recording.
        worst = float(np.abs(a.probabilities - b.probabilities).max())
        assert worst < 1e-4, (name, worst)
        assert a.segments == b.segments, name


def test_the_rewrite_has_no_convolution_and_far_fewer_nodes(registry: ModelRegistry) -> None:
    if onnx is None:
        missing("onnx is not installed (the `models` extra)")
    fused = onnx.load(str(registry.path("silero-vad", "fused"))).graph
    shipped = onnx.load(str(registry.path("silero-vad", "fp32"))).graph
    assert not [n for n in fused.node if n.op_type == "Conv"]
    assert len(fused.node) < len(shipped.node) / 3
    assert [i.name for i in fused.input] == ["input", "state"]
    assert [o.name for o in fused.output] == ["output", "stateN"]


def test_a_file_that_is_not_silero_vad_is_refused(registry: ModelRegistry, tmp_path: Path) -> None:
    if onnx is None:
        missing("onnx is not installed (the `models` extra)")
    with pytest.raises(ModelBuildError, match="not silero VAD's 16 kHz graph: expected 6 Conv"):
        fuse_silero_vad(registry.path("blazeface-short", "fp32"), tmp_path / "out.onnx")
    damaged = tmp_path / "damaged.onnx"
    damaged.write_bytes(registry.path("silero-vad", "fp32").read_bytes()[:5000])
    with pytest.raises(ModelBuildError, match="onnxruntime cannot load it"):
        fuse_silero_vad(damaged, tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()


def test_a_rewrite_that_disagrees_with_its_source_is_refused_and_removed(
    registry: ModelRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if onnx is None:
        missing("onnx is not installed (the `models` extra)")
    original = _vad_graph._Weights.__init__

    def shifted(self: _vad_graph._Weights, model: object, source: Path) -> None:
        original(self, model, source)
        weight, bias = self.decoder
        self.decoder = weight, bias + 1.0  # a wrong decoder bias: every probability moves

    monkeypatch.setattr(_vad_graph._Weights, "__init__", shifted)
    out = tmp_path / "out.onnx"
    with pytest.raises(ModelBuildError, match=r"differs from fp32.onnx by .* \(expected at most"):
        fuse_silero_vad(registry.path("silero-vad", "fp32"), out)
    assert not out.exists()
