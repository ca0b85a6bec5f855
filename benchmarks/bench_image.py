"""Image preprocessing against OpenCV: letterbox to NCHW float32, and JPEG codecs.

Run alone with ``python -m benchmarks.bench_image [--quick]``; ``benchmarks.preprocess``
includes it. OpenCV runs on one thread (``cv2.setNumThreads(1)``), like ours.

Letterbox cases compare :class:`~glasses_sdk.preprocess.image.Letterboxer` with
``cv2.dnn.blobFromImageWithParams`` (``DNN_PMODE_LETTERBOX``, swapRB, 1/255, pad 114)
writing into a preallocated blob (OpenCV 5.0's binding accepts ``blob`` as an output
argument and fills it in place), and with the memory floor: ``np.copyto`` of one output's
worth of float32 between buffers rotating through 64 (so that caches are cold). Both
sides write every output element on every call, padding included. The JPEG cases have
no goal: they record why simplejpeg is the default backend.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from benchmarks._harness import Comparison, compare, render_table, to_json
from glasses_sdk.preprocess.codec import decode_jpeg, encode_jpeg, jpeg_backend
from glasses_sdk.preprocess.image import Letterboxer, LetterboxOptions

__all__ = ["main", "run"]

_TARGET = 640
_PAD = 114
_RING = 64
_BATCH = 8


def _photo(width: int, height: int, name: str = "astronaut") -> NDArray[np.uint8]:
    """A real photo (scikit-image's, via glasses_sdk.data) scaled to ``width×height``."""
    from glasses_sdk import data

    image = data.load_photo(name)
    resized = cv2.resize(image, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(resized, dtype=np.uint8)


def _blob_params() -> Any:
    params = cv2.dnn.Image2BlobParams()
    params.scalefactor = (1 / 255, 1 / 255, 1 / 255, 1 / 255)
    params.size = (_TARGET, _TARGET)
    params.mean = (0, 0, 0, 0)
    params.swapRB = True
    params.ddepth = cv2.CV_32F
    params.paddingmode = cv2.dnn.DNN_PMODE_LETTERBOX
    params.borderValue = (_PAD, _PAD, _PAD, 0)
    return params


class _MemoryFloor:
    """``np.copyto`` of ``copies`` output-sized float32 buffers, rotating through 64."""

    def __init__(self, copies: int) -> None:
        shape = (_TARGET, _TARGET, 3)
        self._buffers = [np.full(shape, i, dtype=np.float32) for i in range(_RING)]
        self._copies = copies
        self._next = 0

    def __call__(self) -> NDArray[np.float32]:
        dst = self._buffers[0]
        for _ in range(self._copies):
            src = self._buffers[self._next]
            self._next = (self._next + 1) % _RING
            dst = self._buffers[self._next]
            np.copyto(dst, src)
        return dst


def _samples(quick: bool) -> dict[str, Any]:
    if quick:
        return {"samples": 3, "rounds": 1, "warmup": 1, "sample_ms": 2.0}
    return {"samples": 30, "rounds": 3, "warmup": 5, "sample_ms": 5.0}


def _letterbox_cases(quick: bool) -> list[Comparison]:
    params = _blob_params()
    options = LetterboxOptions(size=_TARGET, pad_value=_PAD, channel_order="rgb")
    comparisons = []
    for width, height in ((1920, 1080), (1280, 720), (640, 480)):
        frame = _photo(width, height)
        ours = Letterboxer(options)
        blob = np.empty((1, 3, _TARGET, _TARGET), dtype=np.float32)

        def blob_into(frame: NDArray[np.uint8] = frame, blob: NDArray[np.float32] = blob) -> Any:
            return cv2.dnn.blobFromImageWithParams(frame, blob, params)

        def ours_run(frame: NDArray[np.uint8] = frame, ours: Letterboxer = ours) -> Any:
            return ours.run(frame)

        comparisons.append(
            compare(
                f"letterbox {width}x{height} -> 640x640 f32",
                ("Letterboxer.run", ours_run),
                [
                    ("cv2 blobFromImageWithParams(out)", blob_into, 1.4),
                    ("np.copyto 640x640x3 f32 (cold)", _MemoryFloor(1), 1 / 6),
                ],
                **_samples(quick),
            )
        )
    frames = [_photo(1920, 1080, name) for name in ("astronaut", "coffee", "chelsea", "camera")]
    frames = (frames * _BATCH)[:_BATCH]
    ours = Letterboxer(options)
    batch_blob = np.empty((_BATCH, 3, _TARGET, _TARGET), dtype=np.float32)
    singles = [batch_blob[i : i + 1] for i in range(_BATCH)]

    def ours_batch() -> Any:
        return ours.run_batch(frames)

    def blobs_batch() -> Any:
        return cv2.dnn.blobFromImagesWithParams(frames, batch_blob, params)

    def blob_each() -> Any:
        return [
            cv2.dnn.blobFromImageWithParams(f, s, params)
            for f, s in zip(frames, singles, strict=True)
        ]

    comparisons.append(
        compare(
            f"letterbox batch {_BATCH}x1920x1080 -> {_BATCH}x3x640x640 f32",
            ("Letterboxer.run_batch", ours_batch),
            [
                ("cv2 blobFromImagesWithParams(out)", blobs_batch, 1.4),
                (f"{_BATCH}x cv2 blobFromImageWithParams(out)", blob_each, 1.4),
                (f"{_BATCH}x np.copyto 640x640x3 f32 (cold)", _MemoryFloor(_BATCH), 1 / 6),
            ],
            **_samples(quick),
        )
    )
    return comparisons


def _jpeg_references(
    frame: NDArray[np.uint8], data: bytes
) -> tuple[
    list[tuple[str, Callable[[], object], float | None]],
    list[tuple[str, Callable[[], object], float | None]],
    str,
]:
    encoders: list[tuple[str, Callable[[], object], float | None]] = [
        (
            "cv2.imencode",
            lambda: cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])[1],
            None,
        )
    ]
    decoders: list[tuple[str, Callable[[], object], float | None]] = [
        (
            "cv2.imdecode",
            lambda: cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR),
            None,
        )
    ]
    notes = ""
    try:
        import simplejpeg

        encoders.append(
            (
                "simplejpeg.encode_jpeg",
                lambda: simplejpeg.encode_jpeg(
                    frame, quality=90, colorspace="BGR", colorsubsampling="420"
                ),
                None,
            )
        )
        decoders.append(
            ("simplejpeg.decode_jpeg", lambda: simplejpeg.decode_jpeg(data, colorspace="BGR"), None)
        )
    except ImportError:
        notes += "simplejpeg not installed. "
    try:
        import turbojpeg

        jpeg = turbojpeg.TurboJPEG()
        encoders.append(("TurboJPEG.encode", lambda: jpeg.encode(frame, quality=90), None))
        decoders.append(("TurboJPEG.decode", lambda: jpeg.decode(data), None))
    except (ImportError, RuntimeError, OSError) as exc:
        # PyTurboJPEG 2.x needs libjpeg-turbo 3; Debian 12's libturbojpeg0 is 2.1.5.
        notes += f"PyTurboJPEG unavailable ({str(exc).splitlines()[0]}). "
    return encoders, decoders, notes


def _jpeg_cases(quick: bool) -> list[Comparison]:
    frame = _photo(1280, 720, "coffee")
    data = encode_jpeg(frame, 90)
    out = np.empty_like(frame)
    encoders, decoders, notes = _jpeg_references(frame, data)
    backend = jpeg_backend()
    return [
        compare(
            "jpeg encode 1280x720 q90",
            (f"encode_jpeg ({backend})", lambda: encode_jpeg(frame, 90)),
            encoders,
            notes=notes,
            **_samples(quick),
        ),
        compare(
            "jpeg decode 1280x720 q90",
            (f"decode_jpeg(out=) ({backend})", lambda: decode_jpeg(data, out=out)),
            decoders,
            notes=notes,
            **_samples(quick),
        ),
    ]


def run(quick: bool = False) -> list[Comparison]:
    """Every image comparison; ``quick`` takes few samples (a smoke run)."""
    cv2.setNumThreads(1)
    return _letterbox_cases(quick) + _jpeg_cases(quick)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: ``--json`` for JSON, ``--quick`` for a smoke run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--quick", action="store_true", help="few samples (smoke run)")
    args = parser.parse_args(argv)
    comparisons = run(quick=args.quick)
    if args.json:
        sys.stdout.write(to_json("image", comparisons) + "\n")
    else:
        from rich.console import Console

        Console().print(render_table("image preprocessing vs references", comparisons))
    return 0


if __name__ == "__main__":
    sys.exit(main())
