"""espeak-ng's WAV and its resampling to 16 kHz, shared by the assistant's spoken answers
(:mod:`glasses_sdk.assistant._speech`) and the wake-word trainer's synthetic speech
(:mod:`glasses_sdk.wakeword_train._synth`).

``espeak-ng --stdout`` streams its WAV and cannot seek back to fill in the sizes, so the
RIFF and data size fields are placeholders near 0x7fffffff (1.51 writes 0x7ffff000 for
the data); :func:`parse_wav` walks the chunks by hand and takes a data size that runs
past the end of the bytes to mean "to the end". It reads
the ordinary WAV files that flite and festival write as well. espeak-ng speaks at
22,050 Hz; :func:`resample_to_16k` brings any supported rate to the 16 kHz that the
device speaker and the wake-word models use.

Both raise :class:`~glasses_sdk.InvalidAudioError`; each caller translates it into the
error its own users expect (the assistant a ``BackendUnavailableError``, the trainer a
``WakeWordTrainingError``).
"""

from __future__ import annotations

import struct

import numpy as np
from numpy.typing import NDArray

from glasses_sdk._exceptions import InvalidAudioError
from glasses_sdk.preprocess.audio import int16_to_float32, resample

__all__ = ["SAMPLE_RATE_HZ", "parse_wav", "resample_to_16k"]

SAMPLE_RATE_HZ = 16_000
"""The rate that :func:`resample_to_16k` returns."""

_FMT_MIN_BYTES = 16  # WAVEFORMAT up to wBitsPerSample; extensible formats add to it


def parse_wav(data: bytes) -> tuple[NDArray[np.int16], int]:
    """Samples and rate of a 16-bit PCM WAV whose size fields may be bogus (~0x7fffffff).

    Returns ``(samples, sample_rate_hz)``: int16 of shape ``(n,)``. A multi-channel WAV
    gives its first channel rather than an error (none of the synthesizers writes one).
    A trailing partial frame is dropped.

    Raises:
        InvalidAudioError: ``data`` is not a RIFF/WAVE file, its samples are not 16-bit,
            it has no ``fmt`` chunk before its data, or it has no data chunk.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise InvalidAudioError(
            f"expected a WAV file (RIFF....WAVE), got {len(data)} bytes "
            f"starting {bytes(data[:12])!r}"
        )
    pos, rate_hz, channels, bits = 12, 0, 0, 0
    while pos + 8 <= len(data):
        tag, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if tag == b"fmt ":
            if size < _FMT_MIN_BYTES or body + _FMT_MIN_BYTES > len(data):
                raise InvalidAudioError(
                    f"expected a WAV fmt chunk of at least {_FMT_MIN_BYTES} bytes, got "
                    f"{min(size, len(data) - body)}"
                )
            _, channels, rate_hz = struct.unpack_from("<HHI", data, body)
            bits = struct.unpack_from("<H", data, body + 14)[0]
        elif tag == b"data":
            if bits == 0:
                raise InvalidAudioError("expected a WAV fmt chunk before the data chunk")
            if bits != 16 or channels < 1:
                raise InvalidAudioError(
                    f"expected 16-bit PCM WAV audio, got {bits}-bit {channels}-channel audio"
                )
            # A streamed WAV's placeholder data size runs past the end: read to the end.
            end = min(body + size, len(data))
            end -= (end - body) % (2 * channels)
            pcm = np.frombuffer(data[body:end], dtype="<i2").astype(np.int16)
            return pcm.reshape(-1, channels)[:, 0].copy(), rate_hz
        pos = body + size + (size & 1)  # chunks are padded to an even length
    raise InvalidAudioError("expected a WAV with a data chunk, found none")


def resample_to_16k(pcm: NDArray[np.int16], sample_rate_hz: int) -> NDArray[np.float32]:
    """``pcm`` at ``sample_rate_hz`` as float32 in ``[-1, 1)`` at 16 kHz.

    The preprocessing core's polyphase :func:`~glasses_sdk.preprocess.audio.resample`;
    16 kHz input is only converted. The int16 -> float32 conversion is exact, so a caller
    that needs PCM16 gets it back with ``float32_to_int16``.

    Raises:
        InvalidAudioError: ``sample_rate_hz`` is not one of
            :data:`~glasses_sdk.preprocess.audio.SUPPORTED_SAMPLE_RATES_HZ`.
    """
    x = int16_to_float32(pcm)
    if sample_rate_hz == SAMPLE_RATE_HZ:
        return x
    return resample(x, sample_rate_hz, SAMPLE_RATE_HZ)
