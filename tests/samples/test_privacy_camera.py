"""``samples/privacy_camera.py`` on the emulator: the astronaut on camera; every photo
written has the face pixelated and the rest of the picture intact; with the capture LED
blocked, nothing is captured."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from firmware_bridge.emulator._scenario import TimelineEvent
from tests.samples.emulated_scenes import emulator, run_sample, scenes

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def test_photos_are_written_with_the_face_blurred(tmp_path: Path) -> None:
    assets = scenes(("data:photo:astronaut", "take a photo"))
    out = tmp_path / "photos"
    with emulator(assets, tmp_path / "emulator") as uri:
        result = run_sample(
            "privacy_camera.py", "--uri", uri, "--out", str(out), "--every-s", "1", "--seconds", "8"
        )
    assert result.returncode == 0, result.stderr
    lines = re.findall(
        r"^(photo-\d+\.jpg): (\d+)x(\d+), 1 face\(s\) blurred \[(\d+), (\d+), (\d+), (\d+)\]$",
        result.stdout,
        re.M,
    )
    # One photo a second for 8 s: at least 3 even on a loaded machine, each with the
    # astronaut's face found and blurred (no photo without it).
    assert len(lines) >= 3, result.stdout
    assert len(lines) == len(re.findall(r"^photo-\d+\.jpg: ", result.stdout, re.M)), result.stdout
    assert f"{len(lines)} photo(s) in {out}" in result.stdout

    # The camera's own view of the same frame, without the filter: the assembled video
    # resized as the emulator resizes it.
    capture = cv2.VideoCapture(str(assets.video_path))
    ok, source = capture.read()
    capture.release()
    assert ok
    for name, width, height, *box in lines:
        photo = cv2.imread(str(out / name))
        assert photo is not None and photo.shape == (int(height), int(width), 3)
        view = cv2.resize(source, (int(width), int(height)), interpolation=cv2.INTER_AREA)
        x0, y0, x1, y1 = (int(v) for v in box)
        face = photo[y0:y1, x0:x1].astype(int)
        original_face = view[y0:y1, x0:x1].astype(int)
        # Everything away from the face is the camera's picture (JPEG aside)...
        keep = np.ones(photo.shape[:2], bool)
        pad = max(x1 - x0, y1 - y0)
        keep[max(y0 - pad, 0) : y1 + pad, max(x0 - pad, 0) : x1 + pad] = False
        elsewhere = float(np.mean(np.abs(photo.astype(int) - view.astype(int))[keep]))
        assert elsewhere < 6.0
        # ...and the face is not: pixelated into blocks of one colour each, so that a
        # row inside a block is (JPEG aside) the row above it.
        assert float(np.mean(np.abs(face - original_face))) > 3 * elsewhere + 5
        step = np.mean(np.abs(np.diff(face, axis=0)), axis=(1, 2))
        original_step = np.mean(np.abs(np.diff(original_face, axis=0)), axis=(1, 2))
        assert np.median(step) < 0.5 * np.median(original_step), (step, original_step)


def test_no_capture_while_the_led_cannot_be_shown(tmp_path: Path) -> None:
    assets = scenes(("data:photo:astronaut", "take a photo"))
    out = tmp_path / "photos"
    blocked = (TimelineEvent(0.0, "led_blocked", True),)
    with emulator(assets, tmp_path / "emulator", timeline=blocked) as uri:
        result = run_sample("privacy_camera.py", "--uri", uri, "--out", str(out), "--seconds", "5")
    assert result.returncode == 2
    assert "capture LED" in result.stderr and "refused" in result.stderr
    assert not list(out.glob("*.jpg"))
