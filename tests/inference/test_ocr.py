"""PP-OCR text reading on a real printed page and on rendered text."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from glasses_sdk._exceptions import (
    InvalidConfigError,
    InvalidFrameError,
    MissingDependencyError,
    ModelError,
)
from glasses_sdk._paths import CACHE_ENV
from glasses_sdk.inference import ModelRegistry, SessionManager, TextReader, TextReaderOptions
from glasses_sdk.inference.ocr import ctc_greedy_decode
from tests.conftest import missing
from tests.inference.conftest import read_photo

# scikit-image's page.png, transcribed by hand.
PAGE_TEXT = """Region-based segmentation
Let us first determine markers of the coins and the
background. These markers are pixels that we can label
unambiguously as either object or background. Here,
the markers are found at the two extreme parts of the
histogram of grey values:
>>> markers = np.zeros_like(coins)"""

RENDERED_LINES = ["Platform 9 departs at 10:45", "Coffee 3.50 EUR", "Exit to Market Street"]


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions) between two strings."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def character_error_rate(hypothesis: str, reference: str) -> float:
    """CER over the text with every run of whitespace (line breaks too) as one space."""
    hyp, ref = " ".join(hypothesis.split()), " ".join(reference.split())
    return levenshtein(hyp, ref) / len(ref)


def render(lines: list[str], background: NDArray[np.uint8] | None = None) -> NDArray[np.uint8]:
    """Dark text lines drawn on white (or on a photo), 640 px wide."""
    image = np.full((80 + 70 * len(lines), 640, 3), 255, np.uint8)
    if background is not None:
        image = cv2.resize(background, (640, 480))
        cv2.rectangle(image, (20, 20), (600, 60 + 70 * len(lines)), (245, 245, 245), -1)
    for i, line in enumerate(lines):
        cv2.putText(
            image, line, (30, 60 + 70 * i), cv2.FONT_HERSHEY_DUPLEX, 1.2, (20, 20, 20), 2,
            cv2.LINE_AA,
        )  # fmt: skip
    return image


def test_the_printed_page_is_read(registry: ModelRegistry) -> None:
    result = TextReader().read(read_photo("page"))
    cer = character_error_rate(result.text, PAGE_TEXT)
    assert cer < 0.10, (cer, result.text)
    assert len(result.lines) == 7
    assert result.lines[0].text == "Region-based segmentation"
    # Reading order: top to bottom.
    tops = [line.box[1] for line in result.lines]
    assert tops == sorted(tops)


def test_the_printed_page_is_read_with_the_v5_set(registry: ModelRegistry) -> None:
    reader = TextReader(TextReaderOptions(model_set="v5"))
    assert len(reader.characters) == 18385  # blank, the v5 dictionary, space
    result = reader.read(read_photo("page"))
    cer = character_error_rate(result.text, PAGE_TEXT)
    assert cer < 0.10, (cer, result.text)
    assert result.lines[0].text == "Region-based segmentation"
    scene = reader.read(render(RENDERED_LINES, background=read_photo("coffee")))
    assert [line.text for line in scene.lines] == RENDERED_LINES


def test_rendered_lines_are_read_exactly(registry: ModelRegistry) -> None:
    result = TextReader().read(render(RENDERED_LINES))
    assert [line.text for line in result.lines] == RENDERED_LINES
    for line in result.lines:
        assert line.score > 0.9
        x0, y0, x1, y1 = line.box
        assert 10 <= x0 < 60
        assert x1 < 640
        assert y1 - y0 < 70


def test_text_on_a_photo_is_read(registry: ModelRegistry) -> None:
    image = render(RENDERED_LINES, background=read_photo("coffee"))
    result = TextReader().read(image)
    assert [line.text for line in result.lines] == RENDERED_LINES


def test_upside_down_text_is_turned(registry: ModelRegistry) -> None:
    image = cv2.rotate(render(RENDERED_LINES[:1]), cv2.ROTATE_180)
    result = TextReader().read(image)
    assert [line.text for line in result.lines] == RENDERED_LINES[:1]
    plain = TextReader(TextReaderOptions(use_angle_classifier=False)).read(image)
    assert [line.text for line in plain.lines] != RENDERED_LINES[:1]


def test_no_text_in_a_photo_without_text(registry: ModelRegistry) -> None:
    assert TextReader().read(read_photo("chelsea")).lines == []


def test_small_images_are_handled(registry: ModelRegistry) -> None:
    tiny = render(["Hi"])[:, :200]
    tiny = cv2.resize(tiny, (50, 15))
    result = TextReader().read(tiny)
    assert result.frame_size == (50, 15)
    grey = cv2.cvtColor(render(RENDERED_LINES[1:2]), cv2.COLOR_BGR2GRAY)
    assert [line.text for line in TextReader().read(grey).lines] == RENDERED_LINES[1:2]


def test_ctc_decoding_collapses_repeats_then_drops_blanks() -> None:
    characters = ["", "a", "b"]
    steps = [1, 1, 0, 1, 2, 2, 0, 0]
    probs = np.full((1, len(steps), 3), 0.1, dtype=np.float32)
    for t, c in enumerate(steps):
        probs[0, t, c] = 0.8
    assert ctc_greedy_decode(probs, characters) == [("aab", pytest.approx(0.8))]
    assert ctc_greedy_decode(np.zeros((1, 4, 3), np.float32), characters) == [("", 0.0)]
    with pytest.raises(ModelError, match="recognizer output"):
        ctc_greedy_decode(np.zeros((1, 4, 5), np.float32), characters)


def test_bad_frames_and_options_are_rejected(registry: ModelRegistry) -> None:
    with pytest.raises(InvalidFrameError, match="uint8"):
        TextReader().read(np.zeros((10, 10, 3), np.float32))  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError, match="max_side_px"):
        TextReaderOptions(max_side_px=10)
    with pytest.raises(InvalidConfigError, match=r"model_set: expected one of \('v4', 'v5'\)"):
        TextReaderOptions(model_set="v6")  # type: ignore[arg-type]


def test_a_recognizer_whose_character_list_does_not_fit_is_rejected(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    import onnx

    model = onnx.load(str(registry.path("ppocr-rec")))
    meta = {p.key: p.value for p in model.metadata_props}
    # One entry short: every character after the gap would be read as its neighbour.
    meta["character"] = "\n".join(meta["character"].split("\n")[1:])
    onnx.helper.set_model_props(model, meta)
    short = tmp_path / "rec.onnx"
    onnx.save(model, str(short))
    paths = (registry.path("ppocr-det"), registry.path("ppocr-cls"), short)
    with pytest.raises(ModelError, match=r"expected 6624 classes .* the model has 6625"):
        TextReader(model_paths=paths, sessions=SessionManager())


def test_the_cloud_ocr_backend_uses_v5_when_built_and_v4_otherwise(
    registry: ModelRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        from glasses_sdk.cloud._backends import InferenceOcrBackend
        from glasses_sdk.cloud._limits import Deadline
    except MissingDependencyError as exc:
        missing(f"the cloud extra: {exc}")

    backend = InferenceOcrBackend()
    assert backend.name == "ppocr-v5"
    page = read_photo("page")
    text = " ".join(line.text for line in backend.read(page, Deadline.none()))
    assert character_error_rate(text, PAGE_TEXT) < 0.10, text
    # A cache where only the v4 files are built: the backend falls back to them.
    for name in ("ppocr-det", "ppocr-cls", "ppocr-rec"):
        (tmp_path / "models").mkdir(exist_ok=True)
        (tmp_path / "models" / name).symlink_to(registry.path(name).parent)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    fallback = InferenceOcrBackend()
    assert fallback.name == "ppocr-v4"
    text = " ".join(line.text for line in fallback.read(page, Deadline.none()))
    assert character_error_rate(text, PAGE_TEXT) < 0.10, text
