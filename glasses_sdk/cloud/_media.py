"""Uploaded images and audio: size limits checked on the header, before decoding.

A 20 kB PNG can claim 100 000 × 100 000 pixels and decode into 30 GB; so the
dimensions are read from the JPEG or PNG header first, and the duration from the audio
header, and only then is anything decoded.
"""

from __future__ import annotations

import io
import struct
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from glasses_sdk._exceptions import InvalidAudioError, InvalidFrameError
from glasses_sdk.cloud._settings import CloudSettings

__all__ = ["decode_audio", "decode_image", "image_size"]

TARGET_RATE_HZ = 16_000

# JPEG start-of-frame markers (baseline, progressive, lossless...); C4, C8 and CC are
# other segments that share the range.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _jpeg_size(data: bytes) -> tuple[int, int]:
    i = 2
    n = len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            raise InvalidFrameError("image: the JPEG header is corrupt (expected a marker)")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _SOF:
            if i + 9 > n:
                break
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return int(width), int(height)
        i += 2 + length
    raise InvalidFrameError("image: the JPEG has no frame header (truncated or not a JPEG)")


def image_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` from a JPEG or PNG header, without decoding the pixels."""
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    if data.startswith(_PNG_SIGNATURE):
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise InvalidFrameError("image: the PNG header is truncated")
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    raise InvalidFrameError(
        f"image: expected a JPEG or PNG file, got {len(data)} bytes starting {data[:8]!r}"
    )


def decode_image(data: bytes, settings: CloudSettings) -> NDArray[np.uint8]:
    """A BGR ``uint8`` ``(H, W, 3)`` image, after checking its size against the limits."""
    width, height = image_size(data)
    side = settings.max_image_side_px
    if width < 1 or height < 1:
        raise InvalidFrameError(f"image: expected a non-empty image, got {width}×{height}")
    if width > side or height > side or width * height > settings.max_image_pixels:
        raise InvalidFrameError(
            f"image: {width}×{height} is over this server's limits "
            f"(at most {side} px a side and {settings.max_image_pixels} pixels)"
        )
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise InvalidFrameError(f"image: the {width}×{height} file could not be decoded")
    return np.ascontiguousarray(image, dtype=np.uint8)


def decode_audio(data: bytes, settings: CloudSettings) -> NDArray[np.float32]:
    """16 kHz mono float32 samples from a WAV, FLAC or Ogg file, within the duration limit."""
    import soundfile as sf

    sf_module: Any = sf
    try:
        info = sf_module.info(io.BytesIO(data))
    except (RuntimeError, sf_module.LibsndfileError, TypeError, ValueError) as exc:
        raise InvalidAudioError(
            f"file: expected a WAV, FLAC or Ogg audio file ({type(exc).__name__})"
        ) from None
    rate = int(info.samplerate)
    frames = int(info.frames)
    if rate < 8000 or rate > 192_000:
        raise InvalidAudioError(f"file: expected 8000..192000 Hz audio, got {rate} Hz")
    duration_s = frames / rate
    if duration_s > settings.max_audio_s:
        raise InvalidAudioError(
            f"file: {duration_s:.1f} s of audio is over this server's limit of "
            f"{settings.max_audio_s:g} s"
        )
    try:
        samples, _ = sf_module.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (RuntimeError, sf_module.LibsndfileError, ValueError) as exc:
        raise InvalidAudioError(f"file: the audio could not be decoded ({exc})") from None
    mono = np.ascontiguousarray(samples.mean(axis=1), dtype=np.float32)
    if not np.all(np.isfinite(mono)):
        raise InvalidAudioError("file: the audio has non-finite samples")
    if rate != TARGET_RATE_HZ:
        from scipy.signal import resample_poly

        g = int(np.gcd(rate, TARGET_RATE_HZ))
        mono = np.asarray(resample_poly(mono, TARGET_RATE_HZ // g, rate // g), dtype=np.float32)
    return mono
