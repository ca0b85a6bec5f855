"""Tests of glasses_sdk.preprocess.audio: against librosa and scipy, on real speech."""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import scipy.fft
import scipy.signal
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from glasses_sdk._exceptions import InvalidAudioError, InvalidConfigError
from glasses_sdk.preprocess import audio
from glasses_sdk.preprocess.audio import (
    SUPPORTED_SAMPLE_RATES_HZ,
    Framer,
    LogMel,
    LogMelOptions,
    Resampler,
    downmix_to_mono,
    float32_to_int16,
    int16_to_float32,
    mel_filterbank,
    resample,
)

librosa = pytest.importorskip("librosa")

F32 = npt.NDArray[np.float32]
CHUNK_SIZES = (1, 160, 1280, 4000)
RATE_PAIRS = [
    (a, b) for a in SUPPORTED_SAMPLE_RATES_HZ for b in SUPPORTED_SAMPLE_RATES_HZ if a != b
]


@pytest.fixture(scope="module")
def speech_16k(speech_wav_path: Path) -> F32:
    """The real speech recording as mono float32 at 16 kHz."""
    y, sr = sf.read(speech_wav_path, dtype="float32", always_2d=True)
    mono = downmix_to_mono(np.ascontiguousarray(y), y.shape[1])
    if sr != 16000:
        mono = resample(mono, sr, 16000)
    return mono


def _any(x: object) -> Any:
    """Pass a deliberately wrong type past mypy."""
    return x


def _chunks(x: F32, size: int) -> Iterable[F32]:
    return (x[i : i + size] for i in range(0, x.size, size))


def _stream(obj: Any, x: F32, size: int, axis: int) -> Any:
    parts = [obj.push(c) for c in _chunks(x, size)]
    parts.append(obj.flush())
    return np.concatenate(parts, axis=axis)


def _sine(freq_hz: float, rate_hz: int, seconds: float, amplitude: float = 0.5) -> F32:
    n = np.arange(int(rate_hz * seconds))
    return (amplitude * np.sin(2 * np.pi * freq_hz * n / rate_hz)).astype(np.float32)


def _db(x: npt.NDArray[Any]) -> float:
    return 20 * math.log10(max(float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))), 1e-30))


# ----------------------------------------------------------------------------- PCM


@given(hnp.arrays(np.int16, hnp.array_shapes(min_dims=1, max_dims=2, max_side=64)))
def test_int16_float32_round_trip_is_exact(pcm: npt.NDArray[np.int16]) -> None:
    f = int16_to_float32(pcm)
    assert f.dtype == np.float32
    assert f.shape == pcm.shape
    assert np.all(np.abs(f) <= 1.0)
    np.testing.assert_array_equal(float32_to_int16(f), pcm)


def test_int16_extremes_and_out_buffers() -> None:
    pcm = np.array([-32768, -1, 0, 1, 32767], dtype=np.int16)
    out = np.empty(5, dtype=np.float32)
    assert int16_to_float32(pcm, out=out) is out
    np.testing.assert_array_equal(out, pcm / 32768.0)
    back = np.empty(5, dtype=np.int16)
    assert float32_to_int16(out, out=back) is back
    np.testing.assert_array_equal(back, pcm)


def test_float32_to_int16_clips_and_rounds() -> None:
    x = np.array([-2.0, -1.0, 1.0, 1.5, 0.5 / 32768, 1.49 / 32768], dtype=np.float32)
    np.testing.assert_array_equal(float32_to_int16(x), [-32768, -32768, 32767, 32767, 0, 1])
    np.testing.assert_array_equal(float32_to_int16(x.astype(np.float64)), float32_to_int16(x))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: int16_to_float32(np.zeros(3, np.float32)), "int16"),
        (lambda: int16_to_float32(_any([1, 2])), "int16"),
        (lambda: int16_to_float32(np.zeros(3, np.int16), out=np.zeros(2, np.float32)), "out"),
        (lambda: float32_to_int16(_any(np.zeros(3, np.int16))), "float32"),
        (lambda: float32_to_int16(np.array([np.nan], np.float32)), "finite"),
        (lambda: float32_to_int16(np.array([np.inf], np.float32)), "finite"),
    ],
)
def test_pcm_conversion_rejects_bad_input(call: Any, match: str) -> None:
    with pytest.raises(InvalidAudioError, match=match):
        call()


def test_downmix_interleaved_and_2d() -> None:
    left = np.array([0.5, -0.25, 1.0], dtype=np.float32)
    right = np.array([-0.5, 0.25, 0.0], dtype=np.float32)
    interleaved = np.stack([left, right], axis=1).reshape(-1)
    np.testing.assert_array_equal(downmix_to_mono(interleaved, 2), (left + right) / 2)
    np.testing.assert_array_equal(
        downmix_to_mono(interleaved.reshape(-1, 2), 2), (left + right) / 2
    )
    pcm = np.array([32767, -32768, 100, 100], dtype=np.int16)
    mono = downmix_to_mono(pcm, 2)
    assert mono.dtype == np.float32
    np.testing.assert_allclose(mono, [-0.5 / 32768, 100 / 32768])
    np.testing.assert_array_equal(downmix_to_mono(left, 1), left)


@pytest.mark.parametrize(
    ("samples", "channels", "error", "match"),
    [
        (np.zeros(5, np.float32), 2, InvalidAudioError, "multiple of channels"),
        (np.zeros((4, 3), np.float32), 2, InvalidAudioError, "2-D"),
        (np.zeros(4, np.float64), 2, InvalidAudioError, "int16 or float32"),
        (np.array([np.nan, 0.0], np.float32), 2, InvalidAudioError, "finite"),
        (np.zeros(4, np.float32), 0, InvalidConfigError, "channels"),
    ],
)
def test_downmix_rejects_bad_input(
    samples: npt.NDArray[Any], channels: int, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        downmix_to_mono(samples, channels)


# ---------------------------------------------------------------------- resampling


@pytest.mark.parametrize(("src", "dst"), RATE_PAIRS)
def test_resample_matches_scipy_resample_poly_with_our_filter(src: int, dst: int) -> None:
    design = audio._design(src, dst)
    x = (np.random.default_rng(src + dst).standard_normal(src // 5 + 13) / 4).astype(np.float32)
    ours = resample(x, src, dst)
    ref = scipy.signal.resample_poly(x, design.up, design.down, window=design.taps / design.up)
    assert ours.dtype == np.float32
    assert ours.shape == ref.shape == (math.ceil(x.size * dst / src),)
    np.testing.assert_allclose(ours, ref, atol=1e-6)


@pytest.mark.parametrize(("src", "dst"), RATE_PAIRS)
@pytest.mark.parametrize("chunk", CHUNK_SIZES)
def test_resampler_stream_equals_whole_clip(src: int, dst: int, chunk: int) -> None:
    seconds = 0.05 if chunk == 1 else 0.3
    x = np.random.default_rng(chunk).standard_normal(int(src * seconds) + 7).astype(np.float32)
    whole = resample(x, src, dst)
    streamed = _stream(Resampler(src, dst), x, chunk, axis=0)
    assert streamed.dtype == np.float32
    np.testing.assert_allclose(streamed, whole, atol=1e-6, rtol=0)


@pytest.mark.parametrize(("src", "dst"), [(48000, 16000), (44100, 16000), (16000, 48000)])
def test_sine_survives_resampling(src: int, dst: int) -> None:
    y = resample(_sine(1000.0, src, 1.0), src, dst)
    ideal = _sine(1000.0, dst, 1.0)[: y.size]
    edge = dst // 20  # the filter's zero padding at both ends
    error_db = _db(y[edge:-edge] - ideal[edge:-edge]) - _db(ideal[edge:-edge])
    assert error_db < -60, error_db


@pytest.mark.parametrize("freq_hz", [8200.0, 9000.0, 12000.0, 20000.0])
def test_aliasing_is_suppressed(freq_hz: float) -> None:
    # Above the 8 kHz Nyquist frequency of 16 kHz audio: it must not fold back.
    tone = _sine(freq_hz, 48000, 0.5)
    y = resample(tone, 48000, 16000)
    assert _db(y[800:-800]) - _db(tone) < -60


def test_resample_is_close_to_scipy_default_on_speech(speech_16k: F32) -> None:
    # A sanity check against an independent filter design: both are good low-pass
    # filters, so they agree up to their different transition bands.
    x = speech_16k[:32000]
    ours = resample(x, 16000, 48000)
    ref = scipy.signal.resample_poly(x, 3, 1).astype(np.float32)
    assert _db(ours - ref) - _db(ref) < -40


def test_resampler_tracks_delay_and_resets() -> None:
    r = Resampler(48000, 16000)
    assert r.delay_samples == audio._design(48000, 16000).half_len
    x = _sine(440.0, 48000, 0.1)
    first = _stream(r, x, 480, axis=0)
    second = _stream(r, x, 480, axis=0)  # flush() reset the stream
    np.testing.assert_array_equal(first, second)
    r.push(x[:1000])
    r.reset()
    np.testing.assert_array_equal(_stream(r, x, 480, axis=0), first)


def test_resampler_equal_rates_passes_through() -> None:
    r = Resampler(16000, 16000)
    x = _sine(440.0, 16000, 0.01)
    np.testing.assert_array_equal(r.push(x), x)
    assert r.flush().size == 0
    np.testing.assert_array_equal(resample(x, 16000, 16000), x)


def test_resample_empty_and_tiny_inputs() -> None:
    assert resample(np.zeros(0, np.float32), 48000, 16000).shape == (0,)
    assert resample(np.ones(1, np.float32), 48000, 16000).shape == (1,)
    assert resample(np.ones(1, np.float32), 8000, 44100).shape == (6,)


@settings(max_examples=40, deadline=None)
@given(
    pair=st.sampled_from(RATE_PAIRS),
    n=st.integers(0, 3000),
    cuts=st.lists(st.integers(0, 3000), max_size=6),
)
def test_resampler_any_chunking(pair: tuple[int, int], n: int, cuts: list[int]) -> None:
    src, dst = pair
    x = np.random.default_rng(n).uniform(-1, 1, n).astype(np.float32)
    r = Resampler(src, dst)
    bounds = [0, *sorted(c for c in cuts if c <= n), n]
    parts = [r.push(x[a:b]) for a, b in itertools.pairwise(bounds)]
    streamed = np.concatenate([*parts, r.flush()])
    whole = resample(x, src, dst)
    assert streamed.shape == whole.shape == (math.ceil(n * dst / src),)
    np.testing.assert_allclose(streamed, whole, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: resample(np.zeros(10, np.float32), 22000, 16000), "from_rate_hz"),
        (lambda: resample(np.zeros(10, np.float32), 16000, 96000), "to_rate_hz"),
        (lambda: resample(_any(np.zeros(10, np.float64)), 16000, 8000), "float32"),
        (lambda: resample(np.zeros((10, 2), np.float32), 16000, 8000), "mono"),
        (lambda: resample(np.array([0, np.nan], np.float32), 16000, 8000), "finite"),
        (lambda: Resampler(16000, 12345), "to_rate_hz"),
        (lambda: Resampler(16000, 8000).push(_any(np.zeros(3, np.int16))), "float32"),
    ],
)
def test_resample_rejects_bad_input(call: Any, match: str) -> None:
    with pytest.raises(InvalidAudioError, match=match):
        call()


# ------------------------------------------------------------------------- framing


@settings(max_examples=80, deadline=None)
@given(
    frame_length=st.integers(1, 64),
    hop_length=st.integers(1, 80),
    n=st.integers(0, 400),
    cuts=st.lists(st.integers(0, 400), max_size=8),
)
def test_framer_equals_framing_the_whole_signal(
    frame_length: int, hop_length: int, n: int, cuts: list[int]
) -> None:
    x = np.arange(n, dtype=np.float32)
    framer = Framer(frame_length, hop_length)
    bounds = [0, *sorted(c for c in cuts if c <= n), n]
    parts = []
    for a, b in itertools.pairwise(bounds):
        frames = framer.push(x[a:b])
        assert frames.dtype == np.float32
        assert frames.ndim == 2
        assert frames.shape[1] == frame_length
        assert framer.pending_samples < frame_length
        parts.append(frames)
    got = np.concatenate(parts, axis=0)
    if n >= frame_length:
        expected = np.lib.stride_tricks.sliding_window_view(x, frame_length)[::hop_length]
    else:
        expected = np.zeros((0, frame_length), np.float32)
    np.testing.assert_array_equal(got, expected)


def test_framer_int16_and_reset() -> None:
    framer = Framer(4, 2, dtype=np.int16)
    pcm = np.arange(10, dtype=np.int16)
    frames = framer.push(pcm)
    assert frames.dtype == np.int16
    np.testing.assert_array_equal(frames[1], [2, 3, 4, 5])
    assert frames.shape == (4, 4)
    framer.reset()
    assert framer.pending_samples == 0
    assert framer.push(pcm[:3]).shape == (0, 4)


def test_framer_output_does_not_alias_its_buffer() -> None:
    framer = Framer(4, 4)
    first = framer.push(np.ones(6, np.float32))
    framer.push(np.full(6, 2.0, np.float32))
    np.testing.assert_array_equal(first, np.ones((1, 4)))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: Framer(0, 1), InvalidConfigError, "frame_length"),
        (lambda: Framer(4, 0), InvalidConfigError, "hop_length"),
        (lambda: Framer(4, 2, dtype=_any(np.float64)), InvalidConfigError, "dtype"),
        (lambda: Framer(4, 2).push(np.zeros(4, np.int16)), InvalidAudioError, "float32"),
        (lambda: Framer(4, 2).push(np.zeros((4, 1), np.float32)), InvalidAudioError, "1-D"),
        (lambda: Framer(4, 2).push(np.array([np.inf], np.float32)), InvalidAudioError, "finite"),
    ],
)
def test_framer_rejects_bad_input(call: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


# ------------------------------------------------------------------------- log-mel


def _librosa_log_mel(y: F32, o: LogMelOptions) -> npt.NDArray[np.float32]:
    s = librosa.feature.melspectrogram(
        y=y,
        sr=o.sample_rate_hz,
        n_fft=o.n_fft,
        win_length=o.win_length,
        hop_length=o.hop_length,
        n_mels=o.n_mels,
        fmin=o.fmin,
        fmax=o.fmax,
        center=o.center,
        power=o.power,
        htk=o.htk,
        norm=o.norm,
        window=o.window,
    )
    if not o.to_db:
        return np.asarray(s)
    return np.asarray(librosa.power_to_db(s, ref=o.ref, amin=o.amin, top_db=o.top_db))


OPTION_CASES = [
    {},
    {"center": False},
    {"power": 1.0},
    {"n_mels": 64, "fmin": 20.0, "fmax": 7600.0, "htk": True, "norm": None},
    {"n_fft": 400, "win_length": 400},
    {"n_fft": 1024, "win_length": 1024, "hop_length": 256, "n_mels": 80},
    {"win_length": 511, "hop_length": 100, "ref": 1e-3},
    {"top_db": 80.0},
]


@pytest.mark.parametrize("kwargs", OPTION_CASES)
def test_mel_filterbank_matches_librosa(kwargs: dict[str, Any]) -> None:
    o = LogMelOptions(**kwargs)
    ours = mel_filterbank(
        sample_rate_hz=o.sample_rate_hz,
        n_fft=o.n_fft,
        n_mels=o.n_mels,
        fmin=o.fmin,
        fmax=o.fmax,
        htk=o.htk,
        norm=o.norm,
    )
    ref = librosa.filters.mel(
        sr=o.sample_rate_hz,
        n_fft=o.n_fft,
        n_mels=o.n_mels,
        fmin=o.fmin,
        fmax=o.fmax,
        htk=o.htk,
        norm=o.norm,
    )
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("kwargs", OPTION_CASES)
def test_log_mel_matches_librosa_on_speech(speech_16k: F32, kwargs: dict[str, Any]) -> None:
    o = LogMelOptions(**kwargs)
    ours = LogMel(o).compute(speech_16k)
    ref = _librosa_log_mel(speech_16k, o)
    assert ours.dtype == np.float32
    assert ours.flags.c_contiguous
    assert ours.shape == ref.shape
    audible = ref > -80
    assert audible.mean() > 0.5
    assert np.abs(ours - ref)[audible].max() < 0.01


def test_log_mel_power_without_db_matches_librosa(speech_16k: F32) -> None:
    o = LogMelOptions(to_db=False)
    ours = LogMel(o).compute(speech_16k)
    ref = _librosa_log_mel(speech_16k, o)
    np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-9)


@pytest.mark.parametrize("n", [1, 2, 100, 255, 256, 257, 399, 400, 511, 512, 513, 1000])
@pytest.mark.parametrize("center", [True, False])
def test_log_mel_short_clips_match_librosa(n: int, center: bool) -> None:
    o = LogMelOptions(center=center)
    y = np.random.default_rng(n).uniform(-0.5, 0.5, n).astype(np.float32)
    if not center and n < o.n_fft:
        with pytest.raises(InvalidAudioError, match="n_fft"):
            LogMel(o).compute(y)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa: "n_fft is too large for input signal"
        ref = _librosa_log_mel(y, o)
    ours = LogMel(o).compute(y)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=0.01)
    streamed = _stream(LogMel(o), y, 37, axis=1)
    np.testing.assert_allclose(streamed, ours, atol=1e-5, rtol=0)


@pytest.mark.parametrize("chunk", CHUNK_SIZES)
@pytest.mark.parametrize(
    "kwargs", [{}, {"center": False}, {"power": 1.0}, {"hop_length": 128, "n_fft": 400}]
)
def test_log_mel_stream_equals_whole_clip(
    speech_16k: F32, chunk: int, kwargs: dict[str, Any]
) -> None:
    o = LogMelOptions(**kwargs)
    x = speech_16k[:24000] if chunk == 1 else speech_16k
    whole = LogMel(o).compute(x)
    stream = LogMel(o)
    parts = []
    for c in _chunks(x, chunk):
        part = stream.push(c)
        assert part.dtype == np.float32
        assert part.shape[0] == o.n_mels
        assert stream.pending_samples <= o.n_fft
        parts.append(part)
    parts.append(stream.flush())
    np.testing.assert_allclose(np.concatenate(parts, axis=1), whole, atol=1e-5, rtol=0)


def test_log_mel_stream_without_db_equals_whole_clip(speech_16k: F32) -> None:
    o = LogMelOptions(to_db=False)
    whole = LogMel(o).compute(speech_16k)
    streamed = _stream(LogMel(o), speech_16k, 160, axis=1)
    np.testing.assert_allclose(streamed, whole, rtol=2e-6, atol=1e-12)


def test_push_returns_each_frame_as_soon_as_its_window_is_complete() -> None:
    o = LogMelOptions()  # n_fft 512, win 400, hop 160: window at [56, 456) of the frame
    lm = LogMel(o)
    # Frame t covers padded samples [t*160 + 56, t*160 + 456); padding is 256 zeros.
    assert lm.push(np.zeros(199, np.float32)).shape == (40, 0)
    assert lm.push(np.zeros(1, np.float32)).shape == (40, 1)
    assert lm.push(np.zeros(159, np.float32)).shape == (40, 0)
    assert lm.push(np.zeros(1, np.float32)).shape == (40, 1)
    assert lm.push(np.zeros(1280, np.float32)).shape == (40, 8)
    assert lm.pending_samples < o.n_fft


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(0, 4000),
    cuts=st.lists(st.integers(0, 4000), max_size=6),
    center=st.booleans(),
    hop_length=st.sampled_from([80, 160, 400, 600]),
)
def test_log_mel_any_chunking(n: int, cuts: list[int], center: bool, hop_length: int) -> None:
    o = LogMelOptions(center=center, hop_length=hop_length)
    x = np.random.default_rng(n).uniform(-1, 1, n).astype(np.float32)
    stream = LogMel(o)
    bounds = [0, *sorted(c for c in cuts if c <= n), n]
    parts = [stream.push(x[a:b]) for a, b in itertools.pairwise(bounds)]
    streamed = np.concatenate([*parts, stream.flush()], axis=1)
    lm = LogMel(o)
    assert streamed.shape == (o.n_mels, lm.n_frames(n))
    if lm.n_frames(n):
        np.testing.assert_allclose(streamed, lm.compute(x), atol=1e-5, rtol=0)


def test_log_mel_reset_and_compute_do_not_disturb_the_stream(speech_16k: F32) -> None:
    x = speech_16k[:8000]
    lm = LogMel()
    expected = _stream(LogMel(), x, 1280, axis=1)
    lm.push(x[:3000])
    lm.reset()
    parts = [lm.push(x[:4000])]
    lm.compute(speech_16k)  # a whole clip in between
    parts += [lm.push(x[4000:]), lm.flush()]
    # Other chunk sizes: the BLAS product may differ in the last bit (see the module doc).
    np.testing.assert_allclose(np.concatenate(parts, axis=1), expected, atol=1e-5, rtol=0)
    # flush() reset it: a second stream gives the same frames.
    np.testing.assert_array_equal(_stream(lm, x, 1280, axis=1), expected)


def test_log_mel_long_clip_spans_several_blocks(speech_16k: F32) -> None:
    x = np.tile(speech_16k, 4)  # about 40 s: 4000 frames, many blocks
    o = LogMelOptions()
    np.testing.assert_allclose(LogMel(o).compute(x), _librosa_log_mel(x, o), atol=0.01)


def test_rfft_fast_path_equals_public_scipy() -> None:
    rows = np.random.default_rng(0).standard_normal((9, 512)).astype(np.float32)
    fast = np.empty((9, 257), np.complex64)
    public = np.empty((9, 257), np.complex64)
    audio._rfft_rows(rows, fast)
    audio._rfft_rows_public(rows, public)
    np.testing.assert_array_equal(fast, public)
    np.testing.assert_allclose(fast, scipy.fft.rfft(rows.astype(np.float64)), rtol=1e-4, atol=1e-3)


def test_top_db_only_for_whole_clips(speech_16k: F32) -> None:
    lm = LogMel(LogMelOptions(top_db=80.0))
    out = lm.compute(speech_16k)
    assert out.min() >= out.max() - 80.0 - 1e-4
    with pytest.raises(InvalidConfigError, match="top_db"):
        lm.push(speech_16k[:160])
    with pytest.raises(InvalidConfigError, match="top_db"):
        lm.flush()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"win_length": 600}, "win_length"),
        ({"fmax": 9000.0}, "fmax"),
        ({"fmin": 5000.0, "fmax": 4000.0}, "fmin"),
        ({"power": 3.0}, "power"),
        ({"ref": 0.0}, "ref"),
        ({"amin": 0.0}, "amin"),
        ({"top_db": -1.0}, "top_db"),
        ({"window": "hamming"}, "window"),
        ({"norm": "l2"}, "norm"),
        ({"n_fft": 0}, "n_fft"),
        ({"hop_length": 0}, "hop_length"),
        ({"sample_rate_hz": 16000.5}, "sample_rate_hz"),
    ],
)
def test_log_mel_options_reject_impossible_values(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidConfigError, match=match):
        LogMelOptions(**kwargs)


def test_log_mel_rejects_empty_mel_filters() -> None:
    with pytest.raises(InvalidConfigError, match="n_mels"):
        LogMel(LogMelOptions(n_fft=256, win_length=256, n_mels=128))


@pytest.mark.parametrize(
    ("clip", "match"),
    [
        (np.zeros(0, np.float32), "empty"),
        (np.zeros(1000, np.float64), "float32"),
        (np.zeros(1000, np.int16), "float32"),
        (np.zeros((1000, 2), np.float32), "mono"),
        (np.array([0.0, np.nan] * 500, np.float32), "finite"),
        ([0.0] * 1000, "numpy array"),
    ],
)
def test_log_mel_rejects_bad_audio(clip: Any, match: str) -> None:
    with pytest.raises(InvalidAudioError, match=match):
        LogMel().compute(clip)
    if np.asarray(clip).size:
        with pytest.raises(InvalidAudioError, match=match):
            LogMel().push(clip)
