"""JPEG round trips on real photos, decoding into a buffer, and bad bytes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from glasses_sdk._exceptions import InvalidConfigError, InvalidFrameError
from glasses_sdk.preprocess import codec
from glasses_sdk.preprocess.codec import decode_jpeg, encode_jpeg, jpeg_backend

BACKENDS = ["simplejpeg", "opencv"]


def _psnr_db(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float(10 * np.log10(255.0**2 / mse))


@pytest.fixture(scope="module")
def frames(real_photo_paths: list[Path]) -> list[NDArray[np.uint8]]:
    out = []
    for path in real_photo_paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        assert image is not None
        out.append(np.asarray(image, dtype=np.uint8))
    # A 1280×720 frame, the camera's size.
    out.append(np.asarray(cv2.resize(out[0], (1280, 720), interpolation=cv2.INTER_CUBIC)))
    return out


def test_default_backend_is_simplejpeg() -> None:
    assert jpeg_backend() == "simplejpeg"


@pytest.mark.parametrize("backend", BACKENDS)
def test_round_trip_psnr_above_35_db_at_quality_90(
    frames: list[NDArray[np.uint8]], backend: codec.JpegBackend
) -> None:
    for frame in frames:
        data = encode_jpeg(frame, 90, backend=backend)
        assert isinstance(data, bytes) and data[:3] == b"\xff\xd8\xff"
        decoded = decode_jpeg(data, backend=backend)
        assert decoded.shape == frame.shape and decoded.dtype == np.uint8
        assert _psnr_db(decoded, frame) > 35.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_backends_read_each_others_files(
    frames: list[NDArray[np.uint8]], backend: codec.JpegBackend
) -> None:
    other: codec.JpegBackend = "opencv" if backend == "simplejpeg" else "simplejpeg"
    data = encode_jpeg(frames[0], 90, backend=other)
    assert _psnr_db(decode_jpeg(data, backend=backend), frames[0]) > 35.0


def test_quality_changes_size(frames: list[NDArray[np.uint8]]) -> None:
    assert len(encode_jpeg(frames[-1], 50)) < len(encode_jpeg(frames[-1], 95))


@pytest.mark.parametrize("backend", BACKENDS)
def test_decode_into_out_buffer(
    frames: list[NDArray[np.uint8]], backend: codec.JpegBackend
) -> None:
    data = encode_jpeg(frames[-1], 90)
    out = np.zeros_like(frames[-1])
    result = decode_jpeg(data, out=out, backend=backend)
    assert result is out
    np.testing.assert_array_equal(out, decode_jpeg(data, backend=backend))
    # bytearray, memoryview and uint8 arrays are accepted as well as bytes.
    for view in (bytearray(data), memoryview(data), np.frombuffer(data, np.uint8)):
        np.testing.assert_array_equal(decode_jpeg(view, backend=backend), out)
    with pytest.raises(
        InvalidFrameError, match=r"expected a uint8 array of shape \(720, 1280, 3\)"
    ):
        decode_jpeg(data, out=np.zeros((720, 1279, 3), np.uint8), backend=backend)
    with pytest.raises(InvalidFrameError, match="C-contiguous"):
        decode_jpeg(data, out=np.zeros((720, 1280 * 2, 3), np.uint8)[:, ::2], backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_grey_jpeg_decodes_to_bgr(backend: codec.JpegBackend) -> None:
    grey = np.tile(np.arange(256, dtype=np.uint8), (64, 1))
    ok, data = cv2.imencode(".jpg", grey)
    assert ok
    decoded = decode_jpeg(data.tobytes(), backend=backend)
    assert decoded.shape == (64, 256, 3)
    assert np.abs(decoded[..., 0].astype(int) - grey).max() < 8


@pytest.mark.parametrize("backend", BACKENDS)
def test_invalid_and_truncated_bytes_raise(
    frames: list[NDArray[np.uint8]], backend: codec.JpegBackend
) -> None:
    data = encode_jpeg(frames[-1], 90)
    bad = {
        "empty": b"",
        "text": b"hello, world",
        "png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 100,
        "truncated": data[: len(data) // 2],
        "header only": data[:600],
    }
    for name, blob in bad.items():
        with pytest.raises(InvalidFrameError, match=r"expected a complete JPEG image") as info:
            decode_jpeg(blob, backend=backend)
        assert f"received {len(blob)} bytes" in str(info.value), name
    with pytest.raises(InvalidFrameError, match="expected JPEG bytes, received str"):
        decode_jpeg("not bytes", backend=backend)  # type: ignore[arg-type]
    with pytest.raises(InvalidFrameError, match="1-D uint8 array"):
        decode_jpeg(np.zeros((4, 4), np.uint8), backend=backend)


def test_bad_frames_and_options_raise() -> None:
    with pytest.raises(InvalidFrameError, match=r"BGR uint8 array.*float32"):
        encode_jpeg(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(InvalidFrameError, match=r"\(8, 8\)"):
        encode_jpeg(np.zeros((8, 8), np.uint8))
    with pytest.raises(InvalidFrameError, match="non-empty"):
        encode_jpeg(np.zeros((0, 8, 3), np.uint8))
    with pytest.raises(InvalidFrameError, match="received list"):
        encode_jpeg([[0]])  # type: ignore[arg-type]
    frame = np.zeros((8, 8, 3), np.uint8)
    for quality in (0, 101, 90.0, True):
        with pytest.raises(InvalidConfigError, match=r"quality: expected an int in 1\.\.100"):
            encode_jpeg(frame, quality)  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError, match="backend"):
        encode_jpeg(frame, backend="pillow")  # type: ignore[arg-type]


def test_opencv_fallback_when_simplejpeg_is_missing(
    monkeypatch: pytest.MonkeyPatch, frames: list[NDArray[np.uint8]]
) -> None:
    monkeypatch.setattr(codec, "_simplejpeg", None)
    assert jpeg_backend() == "opencv"
    data = encode_jpeg(frames[0])
    assert _psnr_db(decode_jpeg(data), frames[0]) > 35.0
    with pytest.raises(InvalidConfigError, match="not installed"):
        decode_jpeg(data, backend="simplejpeg")
