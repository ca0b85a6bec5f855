"""The shared espeak-ng WAV parser and 16 kHz resampling, and how each caller translates
their errors."""

from __future__ import annotations

import math
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from glasses_sdk._espeak import SAMPLE_RATE_HZ, parse_wav, resample_to_16k
from glasses_sdk._exceptions import (
    BackendUnavailableError,
    InvalidAudioError,
    WakeWordTrainingError,
)
from tests.conftest import need_binary

STREAMED = 0x7FFFFFFF  # the largest placeholder a streaming writer puts in a size field


def _fmt(*, channels: int = 1, rate_hz: int = 22_050, bits: int = 16) -> bytes:
    block = channels * bits // 8
    body = struct.pack("<HHIIHH", 1, channels, rate_hz, rate_hz * block, block, bits)
    return b"fmt " + struct.pack("<I", len(body)) + body


def _wav(
    samples: bytes,
    *,
    fmt: bytes | None = None,
    before_data: bytes = b"",
    riff_size: int = STREAMED,
    data_size: int = STREAMED,
) -> bytes:
    fmt = _fmt() if fmt is None else fmt
    data = b"data" + struct.pack("<I", data_size) + samples
    return b"RIFF" + struct.pack("<I", riff_size) + b"WAVE" + fmt + before_data + data


PCM = np.array([0, 1, -1, 32767, -32768, 1234], dtype=np.int16)


def test_parses_a_streamed_wav_whose_sizes_are_0x7fffffff() -> None:
    pcm, rate_hz = parse_wav(_wav(PCM.astype("<i2").tobytes()))
    assert rate_hz == 22_050
    assert pcm.dtype == np.int16 and pcm.shape == (6,)
    np.testing.assert_array_equal(pcm, PCM)


def test_honours_true_sizes_skips_other_chunks_and_drops_a_partial_sample() -> None:
    # An odd-sized chunk is padded to an even length; a data size that is not bogus
    # stops the samples before what follows; a stray last byte is not half a sample.
    list_chunk = b"LIST" + struct.pack("<I", 3) + b"abc" + b"\0"
    body = PCM.astype("<i2").tobytes()
    wav = _wav(body + b"\x7f", before_data=list_chunk, riff_size=0, data_size=len(body) + 1)
    pcm, _ = parse_wav(wav)
    np.testing.assert_array_equal(pcm, PCM)
    pcm, _ = parse_wav(_wav(body, data_size=4) + b"junk")
    np.testing.assert_array_equal(pcm, PCM[:2])


def test_keeps_the_first_channel_of_a_stereo_wav() -> None:
    left, right = PCM, -PCM
    interleaved = np.stack([left, right], axis=1).astype("<i2").tobytes()
    pcm, rate_hz = parse_wav(_wav(interleaved, fmt=_fmt(channels=2, rate_hz=16_000)))
    assert rate_hz == 16_000
    np.testing.assert_array_equal(pcm, left)


@pytest.mark.parametrize(
    "data",
    [b"", b"ID3\x03 an mp3", b"RIFF\xff\xff\xff\x7fAVI LIST", b"espeak-ng: no such voice\n"],
)
def test_refuses_what_is_not_a_wav(data: bytes) -> None:
    with pytest.raises(InvalidAudioError, match=r"expected a WAV file \(RIFF\.\.\.\.WAVE\)"):
        parse_wav(data)


def test_refuses_8_bit_samples_and_says_what_it_got() -> None:
    with pytest.raises(InvalidAudioError, match="expected 16-bit PCM WAV audio, got 8-bit 1-"):
        parse_wav(_wav(b"\x80\x81\x82\x83", fmt=_fmt(bits=8)))


def test_refuses_zero_channels() -> None:
    with pytest.raises(InvalidAudioError, match="got 16-bit 0-channel audio"):
        parse_wav(_wav(b"\0\0", fmt=_fmt(channels=0)))


def test_refuses_a_wav_without_a_data_chunk() -> None:
    wav = b"RIFF" + struct.pack("<I", STREAMED) + b"WAVE" + _fmt()
    with pytest.raises(InvalidAudioError, match="expected a WAV with a data chunk, found none"):
        parse_wav(wav)
    with pytest.raises(InvalidAudioError, match="data chunk, found none"):
        parse_wav(b"RIFF\0\0\0\0WAVE")


def test_refuses_a_short_or_missing_fmt_chunk() -> None:
    with pytest.raises(InvalidAudioError, match="fmt chunk of at least 16 bytes, got 4"):
        parse_wav(_wav(b"\0\0", fmt=b"fmt " + struct.pack("<I", 4) + b"\1\0\1\0"))
    with pytest.raises(InvalidAudioError, match="fmt chunk of at least 16 bytes, got 2"):
        parse_wav(b"RIFF\0\0\0\0WAVE" + b"fmt " + struct.pack("<I", 16) + b"\1\0")
    with pytest.raises(InvalidAudioError, match="fmt chunk before the data chunk"):
        parse_wav(_wav(b"\0\0", fmt=b""))


def test_resamples_22050_hz_to_16_khz_and_converts_16_khz_exactly() -> None:
    t = np.arange(22_050) / 22_050
    tone = np.round(8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    out = resample_to_16k(tone, 22_050)
    assert out.dtype == np.float32
    assert out.shape == (math.ceil(len(tone) * SAMPLE_RATE_HZ / 22_050),)
    # The tone keeps its level (8000 / 32768 peak) through the anti-aliasing filter.
    assert abs(float(np.abs(out[100:-100]).max()) - 8000 / 32768) < 0.005
    same = resample_to_16k(PCM, SAMPLE_RATE_HZ)
    np.testing.assert_array_equal(same, PCM.astype(np.float32) / 32768)


def test_refuses_an_unsupported_rate() -> None:
    with pytest.raises(InvalidAudioError, match="from_rate_hz must be one of"):
        resample_to_16k(PCM, 12_345)


def test_espeak_ng_really_streams_bogus_sizes_and_the_parser_reads_them() -> None:
    exe = need_binary("espeak-ng")
    done = subprocess.run([exe, "--stdout"], input=b"hello", capture_output=True, check=True)
    riff_size = struct.unpack_from("<I", done.stdout, 4)[0]
    at = done.stdout.find(b"data")
    data_size = struct.unpack_from("<I", done.stdout, at + 4)[0]
    # Placeholders (0x7ffff024 and 0x7ffff000 from espeak-ng 1.51), far past the end.
    assert riff_size > 0x7FFF0000 and data_size > 0x7FFF0000
    pcm, rate_hz = parse_wav(done.stdout)
    assert rate_hz == 22_050
    assert len(pcm) == (len(done.stdout) - at - 8) // 2
    assert np.abs(pcm.astype(np.int32)).max() > 1000  # speech, not silence


def _fake_espeak(monkeypatch: pytest.MonkeyPatch, stdout: bytes) -> None:
    def run(cmd: Any, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        return subprocess.CompletedProcess(cmd, 0, stdout, b"")

    monkeypatch.setattr(subprocess, "run", run)


@pytest.mark.parametrize(
    ("stdout", "reason"),
    [
        (b"not a wav", "expected a WAV file"),
        (_wav(b"\0\0", fmt=_fmt(bits=8)), "got 8-bit 1-channel audio"),
        (b"RIFF\0\0\0\0WAVE", "data chunk, found none"),
    ],
)
def test_the_assistant_says_speech_synthesis_is_unavailable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, stdout: bytes, reason: str
) -> None:
    from glasses_sdk.assistant import _speech

    # A stand-in espeak-ng (named as such): a script that reads the text and writes
    # the given bytes, run as a real process like the real one.
    (tmp_path / "output.bin").write_bytes(stdout)
    script = tmp_path / "espeak-ng"
    script.write_text(f"#!/bin/sh\ncat > /dev/null\ncat '{tmp_path / 'output.bin'}'\n")
    script.chmod(0o755)
    monkeypatch.setattr(shutil, "which", lambda name: str(script))
    with pytest.raises(BackendUnavailableError, match="espeak-ng's output cannot be read") as e:
        _speech.synthesize("hello")
    assert e.value.backend == "speech synthesis"
    assert reason in e.value.reason


@pytest.mark.parametrize(
    ("stdout", "reason"),
    [
        (b"not a wav", "synthesizer output cannot be read: expected a WAV file"),
        (_wav(b"\0\0", fmt=_fmt(bits=8)), "cannot be read: expected 16-bit PCM"),
        (b"RIFF\0\0\0\0WAVE", "cannot be read: expected a WAV with a data chunk"),
        (_wav(b"\0\0", fmt=_fmt(rate_hz=12_345)), "an unsupported rate of 12345 Hz"),
    ],
)
def test_the_trainer_says_the_synthesizer_failed(
    monkeypatch: pytest.MonkeyPatch, stdout: bytes, reason: str
) -> None:
    from glasses_sdk.wakeword_train._synth import Voice, synthesize

    _fake_espeak(monkeypatch, stdout)
    with pytest.raises(WakeWordTrainingError, match=reason):
        synthesize("hello", Voice("espeak", "en-us"))
