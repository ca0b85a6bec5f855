"""BlazeFace on real photos and LFW, against the tflite interpreter, and the blur."""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest
from numpy.typing import NDArray

from glasses_sdk._exceptions import InvalidConfigError, InvalidFrameError, SourceClosedError
from glasses_sdk.inference import (
    FaceDetector,
    FaceDetectorOptions,
    ModelRegistry,
    RunningMode,
    blur_faces,
)
from glasses_sdk.inference.faces import (
    FaceDetectionResult,
    _decode_few,
    _decode_many,
    blaze_anchors,
    weighted_nms,
)
from tests.conftest import missing
from tests.inference.conftest import read_photo

# The true faces, drawn by hand on the photos (forehead to chin, ear to ear or nose).
TRUE_FACES = {
    "astronaut": (175.0, 75.0, 275.0, 180.0),
    "camera": (170.0, 110.0, 255.0, 205.0),
}


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


@pytest.mark.parametrize("model", ["short", "full"])
@pytest.mark.parametrize("photo", sorted(TRUE_FACES))
def test_the_face_is_found_in_real_photos(registry: ModelRegistry, model: str, photo: str) -> None:
    detector = FaceDetector(FaceDetectorOptions(model=model))  # type: ignore[arg-type]
    result = detector.detect(read_photo(photo))
    assert len(result.faces) == 1, result.faces
    face = result.faces[0]
    assert _iou(face.box, TRUE_FACES[photo]) > 0.3, face.box
    assert 0.5 <= face.score <= 1.0
    x0, y0, x1, y1 = face.box
    inside = [x0 <= x <= x1 and y0 <= y <= y1 for x, y in face.keypoints[:4]]
    assert all(inside), face.keypoints  # eyes, nose, mouth lie in the box


@pytest.mark.parametrize("photo", ["coffee", "chelsea"])
def test_no_face_where_there_is_none(registry: ModelRegistry, photo: str) -> None:
    assert FaceDetector().detect(read_photo(photo)).faces == []


def test_lfw_faces_and_non_faces(registry: ModelRegistry, lfw_crops: NDArray[np.uint8]) -> None:
    detector = FaceDetector()
    found = np.array([bool(detector.detect(crop).faces) for crop in lfw_crops])
    face_rate, non_face_rate = found[:100].mean(), found[100:].mean()
    assert face_rate >= 0.95, face_rate
    assert non_face_rate <= 0.15, non_face_rate


def test_boxes_follow_the_frame_size(registry: ModelRegistry) -> None:
    import cv2

    photo = read_photo("astronaut")
    wide = cv2.resize(photo, (1280, 720))  # anisotropic: the letterbox pads top and bottom
    face = FaceDetector().detect(wide).faces[0]
    truth = TRUE_FACES["astronaut"]
    scaled = (truth[0] * 2.5, truth[1] * 720 / 512, truth[2] * 2.5, truth[3] * 720 / 512)
    assert _iou(face.box, scaled) > 0.3


def test_matches_the_tflite_interpreter(registry: ModelRegistry) -> None:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        missing("ai-edge-litert is not installed (the dev extra)")
    from glasses_sdk._sources import locate_package

    rng = np.random.default_rng(0)
    for model in ("blazeface-short", "blazeface-full"):
        spec = registry.get(model)
        size = int(spec.input["shape"][-1])
        interpreter = Interpreter(str(locate_package(spec.module) / spec.file))
        interpreter.allocate_tensors()
        detector = FaceDetector(
            FaceDetectorOptions(model="short" if model.endswith("short") else "full")
        )
        photo = read_photo("astronaut")
        tensors = [detector._letterboxer.run(photo)[0].copy()]
        tensors.append(rng.uniform(-1, 1, (1, 3, size, size)).astype(np.float32))
        for nchw in tensors:
            interpreter.set_tensor(
                interpreter.get_input_details()[0]["index"], nchw.transpose(0, 2, 3, 1).copy()
            )
            interpreter.invoke()
            expected = {
                d["shape"][-1]: interpreter.get_tensor(d["index"])
                for d in interpreter.get_output_details()
            }
            regressors, logits = detector.model.session.run(
                detector._outputs, {detector._input_name: nchw}
            )
            np.testing.assert_allclose(regressors, expected[16], atol=1e-3, rtol=0)
            np.testing.assert_allclose(logits, expected[1], atol=1e-3, rtol=0)


def test_anchors_are_mediapipes() -> None:
    short = blaze_anchors(128, (8, 16, 16, 16), 2)
    full = blaze_anchors(192, (4,), 1)
    assert short.shape == (896, 2)
    assert full.shape == (2304, 2)
    # First cell of the 16x16 grid, twice; then the first cell of the 8x8 grid, six times.
    np.testing.assert_allclose(short[:3], [[1 / 32, 1 / 32], [1 / 32, 1 / 32], [3 / 32, 1 / 32]])
    np.testing.assert_allclose(short[512:518], [[1 / 16, 1 / 16]] * 6)
    np.testing.assert_allclose(full[-1], [95 / 96, 95 / 96])


def test_weighted_nms_merges_overlaps_by_score() -> None:
    boxes = [[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]]
    scores = [0.9, 0.6, 0.8]
    keypoints = np.zeros((3, 6, 2))
    keypoints[1] += 10
    out_boxes, out_scores, out_keypoints = weighted_nms(boxes, scores, keypoints, 0.3)
    np.testing.assert_allclose(out_scores, [0.9, 0.8])
    np.testing.assert_allclose(out_boxes[0], [0.4, 0.4, 10.4, 10.4])
    np.testing.assert_allclose(out_boxes[1], [50, 50, 60, 60])
    np.testing.assert_allclose(out_keypoints[0], np.full((6, 2), 4.0))
    assert weighted_nms(boxes, scores, keypoints, 0.3, max_out=1)[0].shape == (1, 4)
    empty = weighted_nms(np.zeros((0, 4)), [], np.zeros((0, 6, 2)), 0.3)
    assert empty[0].shape == (0, 4)


@pytest.mark.parametrize("count", [1, 2, 5, 16])
@pytest.mark.parametrize("max_out", [None, 1])
def test_python_and_numpy_decoders_agree(count: int, max_out: int | None) -> None:
    # The detector decodes up to 16 candidates in plain Python and more with NumPy: both
    # must give the same faces. Candidates in three clusters, as real faces give them.
    rng = np.random.default_rng(count)
    centres = rng.uniform(20, 108, (3, 2))[rng.integers(0, 3, count)]
    rows = np.empty((count, 16))
    rows[:, 0:2] = centres + rng.normal(0, 2, (count, 2))
    rows[:, 2:4] = rng.uniform(20, 30, (count, 2))
    rows[:, 4:] = np.tile(centres, 6) + rng.normal(0, 3, (count, 12))
    logits = rng.uniform(0.1, 4, count).astype(np.float32)
    few = _decode_few(rows.tolist(), logits.tolist(), 0.3, max_out)
    many = _decode_many(rows.copy(), logits, 0.3, max_out)
    assert len(few) == len(many) >= 1
    for (row_a, score_a), (row_b, score_b) in zip(few, many, strict=True):
        np.testing.assert_allclose(row_a, row_b, rtol=0, atol=1e-9)
        assert score_a == pytest.approx(score_b, abs=1e-12)


def test_blur_hides_the_face_and_nothing_else(registry: ModelRegistry) -> None:
    frame = read_photo("astronaut")
    original = frame.copy()
    result = FaceDetector().blur(frame)
    assert len(result.faces) == 1
    x0, y0, x1, y1 = (int(v) for v in result.faces[0].box)

    def colours(image: NDArray[np.uint8]) -> int:
        return len(np.unique(image[y0:y1, x0:x1].reshape(-1, 3), axis=0))

    # Eyes, mouth and skin texture are gone: the face is a grid of at most 8x8 blocks.
    assert colours(original) > 1000
    assert colours(frame) <= 64
    assert (frame[:, :100] == original[:, :100]).all()  # far from the face: untouched
    assert blur_faces(frame, []) == 0


def test_video_mode_needs_increasing_timestamps(registry: ModelRegistry) -> None:
    photo = read_photo("astronaut")
    video = FaceDetector(FaceDetectorOptions(running_mode=RunningMode.VIDEO))
    assert video.detect_for_video(photo, 0).timestamp_ms == 0
    assert len(video.detect_for_video(photo, 33).faces) == 1
    with pytest.raises(InvalidFrameError, match="timestamp_ms"):
        video.detect_for_video(photo, 33)
    with pytest.raises(InvalidConfigError, match="VIDEO mode"):
        video.detect(photo)
    with pytest.raises(InvalidConfigError, match="IMAGE"):
        FaceDetector().detect_for_video(photo, 0)


def test_live_stream_delivers_to_the_callback_and_drops_frames_while_busy(
    registry: ModelRegistry,
) -> None:
    photo = read_photo("astronaut")
    delivered: list[tuple[int, int, tuple[int, ...]]] = []
    release = threading.Event()

    def on_result(result: FaceDetectionResult, frame: NDArray[np.uint8], timestamp_ms: int) -> None:
        assert result.timestamp_ms == timestamp_ms
        delivered.append((timestamp_ms, len(result.faces), frame.shape))
        assert release.wait(10.0)  # hold the worker busy until the test lets it go

    options = FaceDetectorOptions(running_mode=RunningMode.LIVE_STREAM, result_callback=on_result)
    with FaceDetector(options) as live:
        frame = photo.copy()
        assert live.detect_async(frame, 0) is True
        frame[:] = 0  # the caller reuses its buffer at once: the detector took a copy
        # The worker is busy with frame 0 (its callback waits): frame 33 is dropped.
        assert live.detect_async(frame, 33) is False
        assert live.dropped_frames == 1
        # Timestamps must increase across dropped frames too.
        with pytest.raises(InvalidFrameError, match="expected more than the previous 33"):
            live.detect_async(photo, 33)
        release.set()
        assert live.wait_until_idle(10.0)
        assert live.detect_async(photo, 66) is True
        assert live.wait_until_idle(10.0)
        with pytest.raises(InvalidConfigError, match="LIVE_STREAM mode: call detect_async"):
            live.detect(photo)
    assert delivered == [(0, 1, photo.shape), (66, 1, photo.shape)]
    with pytest.raises(SourceClosedError, match="closed"):
        live.detect_async(photo, 99)


def test_a_failing_live_callback_is_logged_and_the_stream_goes_on(
    registry: ModelRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    photo = read_photo("astronaut")
    seen: list[int] = []

    def on_result(result: FaceDetectionResult, frame: NDArray[np.uint8], timestamp_ms: int) -> None:
        seen.append(timestamp_ms)
        if timestamp_ms == 0:
            raise RuntimeError("a bug in the app's callback")

    options = FaceDetectorOptions(running_mode=RunningMode.LIVE_STREAM, result_callback=on_result)
    logs = caplog.at_level(logging.ERROR, logger="glasses_sdk.inference.faces")
    with logs, FaceDetector(options) as live:
        assert live.detect_async(photo, 0)
        assert live.wait_until_idle(10.0)
        assert live.detect_async(photo, 40)
        assert live.wait_until_idle(10.0)
    assert seen == [0, 40]
    assert "live frame at 0 ms failed" in caplog.text
    assert "a bug in the app's callback" in caplog.text


def test_live_stream_options_are_checked(registry: ModelRegistry) -> None:
    with pytest.raises(InvalidConfigError, match=r"result_callback: RunningMode\.LIVE_STREAM"):
        FaceDetectorOptions(running_mode=RunningMode.LIVE_STREAM)
    with pytest.raises(InvalidConfigError, match=r"only for RunningMode\.LIVE_STREAM"):
        FaceDetectorOptions(result_callback=lambda result, frame, timestamp_ms: None)
    with pytest.raises(InvalidConfigError, match="IMAGE mode: call detect"):
        FaceDetector().detect_async(read_photo("astronaut"), 0)
    options = FaceDetectorOptions(
        running_mode=RunningMode.LIVE_STREAM, result_callback=lambda result, frame, ts: None
    )
    with FaceDetector(options) as live, pytest.raises(InvalidFrameError, match="uint8"):
        live.detect_async(np.zeros((4, 4, 3), np.float32), 0)  # type: ignore[arg-type]


def test_bad_frames_and_options_are_rejected(registry: ModelRegistry) -> None:
    detector = FaceDetector()
    with pytest.raises(InvalidFrameError, match="uint8"):
        detector.detect(np.zeros((10, 10, 3), dtype=np.float32))  # type: ignore[arg-type]
    with pytest.raises(InvalidFrameError, match="shape"):
        detector.detect(np.zeros((10, 10, 4), dtype=np.uint8))
    with pytest.raises(InvalidConfigError, match="model"):
        FaceDetectorOptions(model="medium")  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError, match="score_threshold"):
        FaceDetectorOptions(score_threshold=0.0)


def test_detectors_in_threads_share_one_session(registry: ModelRegistry) -> None:
    import threading

    from glasses_sdk.inference import SessionManager

    sessions = SessionManager()
    photos = [read_photo("astronaut"), read_photo("camera")]
    expected = [FaceDetector(sessions=sessions).detect(p).faces for p in photos]
    errors: list[str] = []

    def worker(index: int) -> None:
        detector = FaceDetector(sessions=sessions)  # one per thread, as documented
        for _ in range(20):
            faces = detector.detect(photos[index % 2]).faces
            if faces != expected[index % 2]:
                errors.append(f"thread {index}: {faces}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(sessions.loaded()) == 1
