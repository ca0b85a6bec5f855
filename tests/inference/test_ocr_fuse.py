"""Folding PP-OCR's affine blocks and hard-swish (fuse_affine_activations) on the real v4 files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from glasses_sdk._exceptions import ModelError
from glasses_sdk.inference import ModelRegistry, SessionManager, TextReader, TextReaderOptions
from glasses_sdk.inference.ocr import fuse_affine_activations
from glasses_sdk.preprocess.image import crop_quad
from tests.conftest import missing
from tests.inference.conftest import read_photo
from tests.inference.test_ocr import PAGE_TEXT, RENDERED_LINES, character_error_rate, render

try:
    import onnx
except ImportError:  # the `models` extra
    onnx = None  # type: ignore[assignment]


@pytest.fixture(scope="module")
def fused(registry: ModelRegistry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The v4 detector and recognizer, folded, in a temporary folder."""
    if onnx is None:
        missing("onnx is not installed (the `models` extra)")
    folder = tmp_path_factory.mktemp("fused")
    out = {}
    for name in ("ppocr-det", "ppocr-rec"):
        out[name] = folder / f"{name}.onnx"
        counts = fuse_affine_activations(registry.path(name, "fp32"), out[name])
        # Every hard-swish and every affine block after a convolution is folded.
        assert counts["hard_swish"] >= 24, counts
        assert counts["conv_affine"] == 28, counts
        assert counts["affine_conv"] >= 10, counts
        # The affine blocks left (before padded depthwise convolutions) become 1x1
        # depthwise convolutions: no element-wise Mul or Add of scalars is left.
        assert counts["affine_depthwise"] >= 10, counts
        graph = onnx.load(str(out[name])).graph
        scalars = {t.name for t in graph.initializer if int(np.prod(t.dims)) == 1} | {
            n.output[0]
            for n in graph.node
            if n.op_type == "Constant" and int(np.prod(n.attribute[0].t.dims)) == 1
        }
        adds = {n.input[0]: n for n in graph.node if n.op_type == "Add" and set(n.input) & scalars}
        affine = [
            n.name
            for n in graph.node
            if n.op_type == "Mul" and set(n.input) & scalars and n.output[0] in adds
        ]
        assert affine == [], affine
    return out


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def test_the_folded_graphs_compute_the_same_outputs(
    registry: ModelRegistry, fused: dict[str, Path]
) -> None:
    scene = render(RENDERED_LINES, background=read_photo("coffee"))
    reader = TextReader(sessions=SessionManager())
    det_in = np.ascontiguousarray(
        ((scene.astype(np.float32) / 255 - 0.5) / 0.5).transpose(2, 0, 1)[None]
    )
    crop = crop_quad(scene, reader.detect(scene)[0])
    rec_in = np.zeros((1, 3, 48, 640), np.float32)
    width = min(640, round(48 * crop.shape[1] / crop.shape[0]))
    resized = cv2.resize(crop, (width, 48)).astype(np.float32)
    rec_in[0, :, :, :width] = (resized / 127.5 - 1.0).transpose(2, 0, 1)
    for name, feed in (("ppocr-det", det_in), ("ppocr-rec", rec_in)):
        original = _session(registry.path(name, "fp32")).run(None, {"x": feed})[0]
        folded = _session(fused[name]).run(None, {"x": feed})[0]
        assert folded.shape == original.shape
        np.testing.assert_allclose(folded, original, atol=1e-4, rtol=0)
        # Fewer nodes to run: the point of the rewrite.
        assert len(onnx.load(str(fused[name])).graph.node) < len(
            onnx.load(str(registry.path(name, "fp32"))).graph.node
        )


def test_a_reader_on_the_folded_files_reads_as_well(
    registry: ModelRegistry, fused: dict[str, Path]
) -> None:
    reader = TextReader(
        sessions=SessionManager(),
        model_paths=(fused["ppocr-det"], registry.path("ppocr-cls"), fused["ppocr-rec"]),
    )
    reference = TextReader(
        TextReaderOptions(det_variant="fp32", rec_variant="fp32"), sessions=SessionManager()
    )
    page = read_photo("page")
    result = reader.read(page)
    assert character_error_rate(result.text, PAGE_TEXT) < 0.10, result.text
    assert result.text == reference.read(page).text
    scene = render(RENDERED_LINES, background=read_photo("coffee"))
    assert [line.text for line in reader.read(scene).lines] == RENDERED_LINES


def test_a_file_that_is_not_onnx_is_rejected(tmp_path: Path) -> None:
    if onnx is None:
        missing("onnx is not installed (the `models` extra)")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not an ONNX model"):
        fuse_affine_activations(bad, tmp_path / "out.onnx")


def test_the_v5_fused_files_compute_what_the_shipped_ones_do(registry: ModelRegistry) -> None:
    # The cloud's default PP-OCRv5 files are these rewrites (every affine block as a 1x1
    # depthwise convolution): the same function on real inputs, the same text read.
    scene = render(RENDERED_LINES, background=read_photo("coffee"))
    rng = np.random.default_rng(0)
    feeds = {
        "ppocrv5-det": np.ascontiguousarray(
            ((scene.astype(np.float32) / 255 - 0.5) / 0.5).transpose(2, 0, 1)[None]
        ),
        "ppocrv5-rec": rng.uniform(-1, 1, (2, 3, 48, 320)).astype(np.float32),
    }
    for name, feed in feeds.items():
        assert registry.get(name).default == "fused"
        original = _session(registry.path(name, "fp32")).run(None, {"x": feed})[0]
        folded = _session(registry.path(name, "fused")).run(None, {"x": feed})[0]
        np.testing.assert_allclose(folded, original, atol=1e-4, rtol=0)
    readers = [
        TextReader(
            TextReaderOptions(model_set="v5", det_variant=v, rec_variant=v),
            sessions=SessionManager(),
        )
        for v in ("fused", "fp32")
    ]
    page = read_photo("page")
    assert readers[0].read(page).text == readers[1].read(page).text
