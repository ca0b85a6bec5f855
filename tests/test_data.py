"""Real test data: located in installed packages without importing them, or explained."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile

from glasses_sdk import DataNotFoundError, data
from glasses_sdk._sources import locate_package, missing_sources, sources_lock
from tests.conftest import need_data


def test_photos_are_real_images(real_photo_paths: list[Path]) -> None:
    for path in real_photo_paths:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert image is not None and image.shape[0] >= 150 and image.shape[1] >= 150, path
        assert float(image.std()) > 20, f"{path} looks blank"


def test_speech_is_a_real_recording(speech_wav_path: Path) -> None:
    samples, rate = soundfile.read(speech_wav_path, dtype="float32")
    assert rate >= 16_000 and len(samples) / rate > 5
    assert 0.01 < float(np.sqrt(np.mean(samples**2))) < 0.9


def test_lfw_subset_has_faces_and_non_faces() -> None:
    crops = np.load(need_data(data.lfw_subset_path))
    assert crops.shape == (200, 25, 25)


def test_pedestrian_video_opens(pedestrian_video_path: Path) -> None:
    capture = cv2.VideoCapture(str(pedestrian_video_path))
    try:
        ok, frame = capture.read()
        assert ok and frame.shape == (576, 768, 3)
    finally:
        capture.release()


def test_locating_a_package_does_not_import_it() -> None:
    need_data(lambda: data.photo_path("astronaut"))
    assert "skimage" not in sys.modules
    assert "moonshine_voice" not in sys.modules


def test_everything_pinned_is_installed() -> None:
    assert "scikit-image==" in sources_lock().read_text()
    missing = missing_sources()
    if missing:
        from tests.conftest import missing as report_missing

        report_missing(f"not installed: {missing}; run `glasses data install`")


def test_unknown_names_and_missing_packages_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="expected one of astronaut"):
        data.photo_path("mona-lisa")
    with pytest.raises(DataNotFoundError, match="expected one of beckett"):
        data.speech_path("nobody")
    with pytest.raises(DataNotFoundError, match="glasses data install"):
        locate_package("skimage", tmp_path)
    with pytest.raises(DataNotFoundError, match="bare file name"):
        data.opencv_sample_path("../../etc/passwd")


def test_photos_load_as_bgr_without_libpng_warnings(capfd: pytest.CaptureFixture[str]) -> None:
    for name in data.PHOTOS:
        image = need_data(lambda name=name: data.load_photo(name))
        reference = cv2.imread(str(data.photo_path(name)), cv2.IMREAD_COLOR)
        np.testing.assert_array_equal(image, reference)
    capfd.readouterr()
    for name in data.PHOTOS:
        data.load_photo(name)
    assert "libpng warning" not in capfd.readouterr().err
