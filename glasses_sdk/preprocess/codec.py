"""JPEG encode and decode of BGR uint8 frames; no I/O.

The default backend is simplejpeg (libjpeg-turbo 3 linked into its wheel), with
OpenCV's ``imencode``/``imdecode`` as the fallback when simplejpeg is not installed.
Measured with ``benchmarks/_harness.compare`` (interleaved, 3 rounds) on four real
photos scaled to 1280×720 (astronaut, coffee, chelsea, camera), quality 90, 4:2:0, one
thread, on a shared 2-core x86 machine; time of each library relative to simplejpeg:

=====================  ==================  ==================
library                encode (× slower)   decode (× slower)
=====================  ==================  ==================
simplejpeg 1.9.0       1 (2.6–2.9 ms)      1 (2.7–3.2 ms)
OpenCV 5.0 imencode/   1.03–1.06           1.11–1.67
imdecode
PyTurboJPEG 1.8.3      1.24–1.30           1.02–1.51
=====================  ==================  ==================

Encoding is a tie with OpenCV; decoding, which the receive side of the camera stream
does for every frame, is up to 1.7× faster on detailed photos (1.1× on smooth ones),
and simplejpeg can decode straight into a caller's buffer (OpenCV's ``imdecode``
always allocates). PyTurboJPEG 2.x (the version that pip resolves) needs a
libjpeg-turbo 3 shared library that Debian 12 does not ship: its ``libturbojpeg0`` is
2.1.5, and PyTurboJPEG 2.x refuses it, so the row above used PyTurboJPEG 1.8.3 with
that library. It lost to simplejpeg everywhere, so it is not a dependency.
"""

from __future__ import annotations

from typing import Any, Literal

import cv2
import numpy as np
from numpy.typing import NDArray

from glasses_sdk._exceptions import InvalidConfigError, InvalidFrameError

__all__ = ["JpegBackend", "decode_jpeg", "encode_jpeg", "jpeg_backend"]

JpegBackend = Literal["simplejpeg", "opencv"]

# The module, or None when it is not installed (then OpenCV does the work).
_simplejpeg: Any = None
try:
    import simplejpeg as _imported_simplejpeg

    _simplejpeg = _imported_simplejpeg
except ImportError:  # pragma: no cover - the tests simulate it with monkeypatch
    pass


def jpeg_backend() -> JpegBackend:
    """The library that :func:`encode_jpeg` and :func:`decode_jpeg` use by default."""
    return "simplejpeg" if _simplejpeg is not None else "opencv"


def _resolve(backend: JpegBackend | None) -> JpegBackend:
    if backend is None:
        return jpeg_backend()
    if backend not in ("simplejpeg", "opencv"):
        raise InvalidConfigError(
            f"backend: expected 'simplejpeg', 'opencv' or None, received {backend!r}"
        )
    if backend == "simplejpeg" and _simplejpeg is None:
        raise InvalidConfigError("backend: 'simplejpeg' was asked for but is not installed")
    return backend


def _check_bgr(frame: object) -> NDArray[np.uint8]:
    if not isinstance(frame, np.ndarray):
        raise InvalidFrameError(
            f"frame: expected a numpy uint8 array of shape (H, W, 3), "
            f"received {type(frame).__name__}"
        )
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise InvalidFrameError(
            "frame: expected a BGR uint8 array of shape (H, W, 3), "
            f"received dtype {frame.dtype} and shape {frame.shape}"
        )
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise InvalidFrameError(f"frame: expected a non-empty frame, received shape {frame.shape}")
    # The JPEG format stores sides as 16-bit numbers.
    if frame.shape[0] > 65500 or frame.shape[1] > 65500:
        raise InvalidFrameError(
            f"frame: expected sides of at most 65500 pixels for JPEG, received {frame.shape}"
        )
    return frame


def encode_jpeg(
    frame: NDArray[np.uint8], quality: int = 90, *, backend: JpegBackend | None = None
) -> bytes:
    """Encode a BGR uint8 ``(H, W, 3)`` frame as baseline JPEG (4:2:0) bytes.

    ``quality`` is 1..100 (libjpeg's scale). ``backend`` forces a library; by default
    the fastest installed one (:func:`jpeg_backend`).
    """
    frame = _check_bgr(frame)
    if not (isinstance(quality, int) and not isinstance(quality, bool) and 1 <= quality <= 100):
        raise InvalidConfigError(f"quality: expected an int in 1..100, received {quality!r}")
    if _resolve(backend) == "simplejpeg":
        data: bytes = _simplejpeg.encode_jpeg(
            np.ascontiguousarray(frame), quality=quality, colorspace="BGR", colorsubsampling="420"
        )
        return data
    ok, encoded = cv2.imencode(
        ".jpg",
        frame,
        [
            cv2.IMWRITE_JPEG_QUALITY,
            quality,
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420,
        ],
    )
    if not ok:  # pragma: no cover - OpenCV fails only on impossible input checked above
        raise InvalidFrameError(f"frame: OpenCV could not encode shape {frame.shape} as JPEG")
    return bytes(encoded.tobytes())


def _as_bytes(data: object) -> bytes | bytearray | memoryview:
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8 or data.ndim != 1:
            raise InvalidFrameError(
                "data: expected JPEG bytes or a 1-D uint8 array, "
                f"received an array of dtype {data.dtype} and shape {data.shape}"
            )
        return np.ascontiguousarray(data).data
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidFrameError(f"data: expected JPEG bytes, received {type(data).__name__}")
    return data


def _check_out(out: object, height: int, width: int) -> NDArray[np.uint8]:
    expected = (height, width, 3)
    if not isinstance(out, np.ndarray):
        raise InvalidFrameError(
            f"out: expected a uint8 array of shape {expected}, received {type(out).__name__}"
        )
    if out.dtype != np.uint8 or out.shape != expected:
        raise InvalidFrameError(
            f"out: expected a uint8 array of shape {expected} (the JPEG's size), "
            f"received dtype {out.dtype} and shape {out.shape}"
        )
    if not (out.flags.c_contiguous and out.flags.writeable):
        raise InvalidFrameError("out: expected a writeable C-contiguous array")
    return out


def _bad_jpeg(data: bytes | bytearray | memoryview, why: str) -> InvalidFrameError:
    head = bytes(data[:4]).hex(" ")
    return InvalidFrameError(
        f"data: expected a complete JPEG image (starting ff d8 ff), received {len(data)} "
        f"bytes starting {head or '(nothing)'}: {why}"
    )


def decode_jpeg(
    data: bytes | bytearray | memoryview | NDArray[np.uint8],
    *,
    out: NDArray[np.uint8] | None = None,
    backend: JpegBackend | None = None,
) -> NDArray[np.uint8]:
    """Decode JPEG bytes into a BGR uint8 ``(H, W, 3)`` frame (grey JPEGs become BGR).

    With ``out`` (uint8, C-contiguous, the JPEG's exact shape) the pixels are written
    there and ``out`` is returned; simplejpeg decodes straight into it. Invalid or
    truncated data raises :class:`~glasses_sdk.InvalidFrameError`, never returns None.
    """
    raw = _as_bytes(data)
    if len(raw) < 4 or bytes(raw[:3]) != b"\xff\xd8\xff":
        raise _bad_jpeg(raw, "not a JPEG start-of-image marker")
    if _resolve(backend) == "simplejpeg":
        try:
            height, width, _, _ = _simplejpeg.decode_jpeg_header(raw)
            if out is not None:
                _check_out(out, height, width)
            # strict=True turns libjpeg's warnings (premature end of data, corrupt
            # segments) into errors instead of returning a grey-filled image.
            image: NDArray[np.uint8] = _simplejpeg.decode_jpeg(
                raw, colorspace="BGR", buffer=out, strict=True
            )
        except ValueError as exc:
            raise _bad_jpeg(raw, str(exc)) from exc
        if out is not None:
            return out
        return image
    # OpenCV fills a truncated scan with grey and only warns on stderr; requiring the
    # end-of-image marker catches the common truncation (a cut-off transfer).
    if bytes(raw[-2:]) != b"\xff\xd9" and b"\xff\xd9" not in bytes(raw[-64:]):
        raise _bad_jpeg(raw, "no end-of-image marker (truncated)")
    decoded = cv2.imdecode(np.frombuffer(raw, dtype=np.uint8), cv2.IMREAD_COLOR)
    if decoded is None:
        raise _bad_jpeg(raw, "OpenCV could not decode it")
    if out is not None:
        np.copyto(_check_out(out, decoded.shape[0], decoded.shape[1]), decoded)
        return out
    return np.asarray(decoded, dtype=np.uint8)
