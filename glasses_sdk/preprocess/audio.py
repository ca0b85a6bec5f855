"""Audio preprocessing: PCM conversion, resampling, framing and a streaming log-mel.

Pure functions and small classes with preallocated buffers; no I/O. Audio is mono
``float32`` in ``[-1, 1]`` unless a name says otherwise (``int16`` PCM is what
microphones and WAV files deliver; :func:`int16_to_float32` converts it). Every stream
class (:class:`Resampler`, :class:`Framer`, :class:`LogMel`) has the same contract: the
outputs of ``push()`` over any chunking, followed by ``flush()``, equal the whole-clip
result; ``reset()`` starts a new stream. Instances keep per-stream state and work
buffers, so one instance serves one stream from one thread at a time.

Log-mel layout is librosa's: ``(n_mels, n_frames)``, ``float32``, C-contiguous; a
streaming ``push()`` returns ``(n_mels, k)`` for the ``k`` frames it completed, so the
pushes concatenate along axis 1.

How the log-mel hot path is built (measured on a shared 2-core AMD EPYC VM, one thread,
numpy 2.4, scipy 1.17; 16 kHz, n_fft 512, win 400, hop 160, 40 mels; an 80 ms chunk is 8
frames, a 10 s clip 1001 frames; times are medians of noisy runs):

- The window is zero outside ``[off, off + win_length)`` (librosa centres a shorter
  window in the FFT frame), and the power spectrum does not depend on where in the FFT
  frame a signal sits (a shift only changes the phase). So each frame multiplies only
  its ``win_length`` samples, written into the head of a zero-tailed ``n_fft`` work
  row whose tail zeros are written once. A pre-padded row is faster than
  ``rfft(n=...)``, which pads every row again.
- Frames are strided views (of the stream buffer, made once per buffer allocation; of
  the clip itself for whole clips, with small padded copies only for the frames that
  reach into the zero padding): ``sliding_window_view`` costs ~20 µs of Python per call,
  more than the FFT of a chunk, and padding a copy of a 10 s clip cost 0.2 ms.
- The FFT is scipy's pocketfft called with a preallocated complex64 output (float32 all
  the way, no float64 detour): 0.71 ms on 1001 rows against 1.75 ms for
  ``scipy.fft.rfft`` (whose fresh 2 MB output page-faults on every call) and 2.5 ms or
  more for ``numpy.fft.rfft(out=)`` (no SIMD across rows); 6.6 µs on 8 rows against
  14.9 µs. It is about half of the whole-clip time.
- The power is squared in place on the float32 view of the spectrum, and the mel
  product sums re² and im² itself: the filterbank's weights are repeated for the two,
  which saves a pass over the spectrum. For many frames the product is split into
  bands of adjacent filters over only the bins each band covers (4x fewer multiply-adds
  for 40 mels); one dense product for a few frames (fewer calls).
- dB: ``ln`` (SIMD in numpy; ``log10`` is not, and is 4-5x slower) of the mantissa plus
  the exponent taken from the float bits; see :meth:`LogMel._to_db` for why the split.
- Per-call overhead is ~1.5 µs per numpy call on this machine, so small blocks lose:
  blocks of :data:`_BLOCK_FRAMES` frames measured best (128: +5%, 1024: +3%).

Whole 10 s clip: ~1.7 ms alone (librosa's ``stft`` + cached mel basis: ~3.7 ms); one
80 ms chunk: ~50-65 µs per ``push()`` (librosa: ~240 µs).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from typing import Any, Literal, cast

import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import as_strided
from numpy.typing import NDArray

from glasses_sdk._exceptions import InvalidAudioError, InvalidConfigError

__all__ = [
    "SUPPORTED_SAMPLE_RATES_HZ",
    "Framer",
    "LogMel",
    "LogMelOptions",
    "Resampler",
    "downmix_to_mono",
    "float32_to_int16",
    "int16_to_float32",
    "mel_filterbank",
    "resample",
]


@functools.cache
def _scipy_signal() -> Any:
    """scipy.signal, imported on first use: it pulls in scipy.stats and costs about
    1.3 s at start-up, which every ``import glasses_sdk`` paid before."""
    import scipy.signal

    return scipy.signal


SUPPORTED_SAMPLE_RATES_HZ: tuple[int, ...] = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)
"""The sample rates that :func:`resample` and :class:`Resampler` convert between
(espeak-ng writes 22,050 Hz; recordings come at 24, 44.1 or 48 kHz)."""

Float32Array = NDArray[np.float32]
PcmArray = NDArray[np.float32] | NDArray[np.int16]

# int16 full scale. Dividing by a power of two is exact in float32, so
# int16 -> float32 -> int16 round-trips every value exactly.
_INT16_SCALE = 32768.0

# Frames per block on long inputs (work buffers: 256 x 512 float32 rows and 256 x 257
# complex64 spectra, about 1 MB). Fewer frames pay more calls; more spill out of L2.
_BLOCK_FRAMES = 256

# Below this many frames per call, one dense product (fewest calls) is faster than the
# banded one; _BAND_COST is a band's call overhead in multiply-adds per frame.
_GROUPED_MIN_FRAMES = 64
_BAND_COST = 1500

# The dB pass runs once over the whole output, in column chunks of at most this many.
_DB_MAX_COLUMNS = 4096

_DB_PER_NEPER = np.float32(10.0 / math.log(10.0))
_DB_PER_OCTAVE = np.float32(10.0 * math.log10(2.0))
_MANTISSA_BITS = np.int32(0x007FFFFF)
_ONE_BITS = np.int32(0x3F800000)  # exponent field of 1.0: the mantissa as a value in [1, 2)


# --------------------------------------------------------------------------- validation


def _describe(x: object) -> str:
    if isinstance(x, np.ndarray):
        return f"array of dtype {x.dtype} and shape {x.shape}"
    return f"{type(x).__name__}"


def _check_finite(x: NDArray[Any], name: str) -> None:
    # One SIMD sum instead of a full isfinite pass (40 µs vs 110 µs on 10 s at 16 kHz):
    # any NaN or inf makes the sum non-finite. A finite-but-huge signal can overflow the
    # sum, so only then is the exact element-wise check made.
    if (
        x.size
        and not math.isfinite(float(np.add.reduce(x, axis=None)))
        and not bool(np.isfinite(x).all())
    ):
        raise InvalidAudioError(f"{name} must contain only finite samples; got NaN or inf")


def _mono_float32(x: object, name: str, *, allow_empty: bool = True) -> Float32Array:
    """``x`` as a 1-D finite float32 array (no copy), or InvalidAudioError."""
    if not isinstance(x, np.ndarray):
        raise InvalidAudioError(
            f"{name} must be a numpy array of float32 samples; got {_describe(x)}"
        )
    if x.dtype != np.float32:
        raise InvalidAudioError(
            f"{name} must have dtype float32 in [-1, 1]; got {x.dtype} "
            "(convert int16 PCM with int16_to_float32, other floats with .astype(np.float32))"
        )
    if x.ndim != 1:
        raise InvalidAudioError(
            f"{name} must be mono, a 1-D array of samples; got shape {x.shape} "
            "(downmix multi-channel audio with downmix_to_mono)"
        )
    if not allow_empty and x.size == 0:
        raise InvalidAudioError(f"{name} must not be empty; got 0 samples")
    _check_finite(x, name)
    return x


def _check_rate(rate_hz: object, name: str) -> int:
    if not isinstance(rate_hz, int | np.integer) or int(rate_hz) not in SUPPORTED_SAMPLE_RATES_HZ:
        raise InvalidAudioError(
            f"{name} must be one of {SUPPORTED_SAMPLE_RATES_HZ} Hz; got {rate_hz!r}"
        )
    return int(rate_hz)


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or int(value) < 1:
        raise InvalidConfigError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


# ------------------------------------------------------------------------ PCM conversion


def int16_to_float32(pcm: NDArray[np.int16], *, out: Float32Array | None = None) -> Float32Array:
    """Convert ``int16`` PCM to ``float32`` in ``[-1, 1)`` (``x / 32768``), shape kept.

    Any shape is accepted (mono ``(n,)``, interleaved, or ``(n, channels)``). ``out``, if
    given, is a preallocated float32 array of the same shape that is written and returned.
    The conversion is exact, so :func:`float32_to_int16` gives the input back.
    """
    if not isinstance(pcm, np.ndarray) or pcm.dtype != np.int16:
        raise InvalidAudioError(f"pcm must be an int16 numpy array; got {_describe(pcm)}")
    if out is None:
        out = np.empty(pcm.shape, dtype=np.float32)
    elif out.dtype != np.float32 or out.shape != pcm.shape:
        raise InvalidAudioError(f"out must be float32 of shape {pcm.shape}; got {_describe(out)}")
    np.multiply(pcm, np.float32(1.0 / _INT16_SCALE), out=out)
    return out


def float32_to_int16(
    samples: NDArray[np.floating], *, out: NDArray[np.int16] | None = None
) -> NDArray[np.int16]:
    """Convert float audio in ``[-1, 1]`` to ``int16`` PCM, clipping what lies outside.

    ``round(x * 32768)`` clipped to ``[-32768, 32767]`` (so ``+1.0`` becomes 32767); any
    shape; float32 or float64. Non-finite samples raise :class:`InvalidAudioError`.
    """
    if not isinstance(samples, np.ndarray) or samples.dtype not in (np.float32, np.float64):
        raise InvalidAudioError(
            f"samples must be a float32 (or float64) numpy array; got {_describe(samples)}"
        )
    _check_finite(samples, "samples")
    if out is None:
        out = np.empty(samples.shape, dtype=np.int16)
    elif out.dtype != np.int16 or out.shape != samples.shape:
        raise InvalidAudioError(f"out must be int16 of shape {samples.shape}; got {_describe(out)}")
    scaled = np.multiply(samples, samples.dtype.type(_INT16_SCALE))
    np.rint(scaled, out=scaled)
    np.clip(scaled, -_INT16_SCALE, _INT16_SCALE - 1.0, out=scaled)
    np.copyto(out, scaled, casting="unsafe")
    return out


def downmix_to_mono(samples: PcmArray, channels: int) -> Float32Array:
    """Average the channels of interleaved (or ``(n, channels)``) audio into mono float32.

    ``samples`` is 1-D interleaved (``L R L R ...``, length a multiple of ``channels``) or
    2-D ``(n_samples, channels)``; ``int16`` input is scaled to ``[-1, 1)`` first. The
    mean (not the sum) keeps the result in ``[-1, 1]``.
    """
    channels = _positive_int(channels, "channels")
    if not isinstance(samples, np.ndarray) or samples.dtype not in (np.int16, np.float32):
        raise InvalidAudioError(
            f"samples must be an int16 or float32 numpy array; got {_describe(samples)}"
        )
    if samples.ndim == 1:
        if samples.size % channels:
            raise InvalidAudioError(
                f"interleaved samples must have a length that is a multiple of channels="
                f"{channels}; got {samples.size}"
            )
        frames = samples.reshape(-1, channels)
    elif samples.ndim == 2 and samples.shape[1] == channels:
        frames = samples
    else:
        raise InvalidAudioError(
            f"samples must be 1-D interleaved or 2-D (n_samples, {channels}); got shape "
            f"{samples.shape}"
        )
    if samples.dtype == np.float32:
        _check_finite(samples, "samples")
    if channels == 1:
        mono = frames[:, 0].astype(np.float32)
    else:
        mono = frames.mean(axis=1, dtype=np.float32)
    if samples.dtype == np.int16:
        mono *= np.float32(1.0 / _INT16_SCALE)
    return mono


# --------------------------------------------------------------------------- resampling

# Filter design, shared by every rate pair: a Kaiser-windowed sinc whose stop band starts
# at the lower of the two Nyquist frequencies (so nothing aliases into the output above
# -80 dB) and whose pass band reaches 85% of it (6.8 kHz for 16 kHz audio: all of
# speech). 80 dB of attenuation keeps the pass-band ripple near 1e-4, so a sine in the
# pass band comes through with an error far below -60 dB. The Kaiser formula then sets
# the length: 201 taps for 48 -> 16 kHz (67 per output sample).
_STOPBAND_ATTENUATION_DB = 80.0
_PASSBAND_FRACTION = 0.85


@dataclass(frozen=True, slots=True)
class _Polyphase:
    up: int
    down: int
    taps: Float32Array  # length 2 * half_len + 1, gain `up` (zero stuffing loses 1/up)
    half_len: int


@cache
def _design(from_rate_hz: int, to_rate_hz: int) -> _Polyphase:
    ratio = Fraction(to_rate_hz, from_rate_hz)
    up, down = ratio.numerator, ratio.denominator
    high_rate_hz = from_rate_hz * up  # the rate of the zero-stuffed signal
    nyquist_hz = min(from_rate_hz, to_rate_hz) / 2.0
    transition_hz = (1.0 - _PASSBAND_FRACTION) * nyquist_hz
    cutoff_hz = nyquist_hz - transition_hz / 2.0
    beta = 0.1102 * (_STOPBAND_ATTENUATION_DB - 8.7)
    width = 2.0 * math.pi * transition_hz / high_rate_hz
    numtaps = math.ceil((_STOPBAND_ATTENUATION_DB - 7.95) / (2.285 * width)) + 1
    numtaps += 1 - numtaps % 2  # odd: a linear-phase filter with an integer delay
    taps = _scipy_signal().firwin(numtaps, cutoff_hz, window=("kaiser", beta), fs=high_rate_hz) * up
    return _Polyphase(up, down, taps.astype(np.float32), (numtaps - 1) // 2)


def _polyphase_outputs(
    design: _Polyphase, x: Float32Array, x_start: int, n0: int, n1: int
) -> Float32Array:
    """Outputs ``n0 .. n1-1`` of the resampled signal; ``x`` holds input samples from
    absolute index ``x_start`` on, and samples outside ``x`` (before it or after) are 0.

    Output ``n`` is ``sum_k taps[k] * x_up[n * down + half_len - k]`` with ``x_up`` the
    input zero-stuffed by ``up`` (the alignment of ``scipy.signal.resample_poly``).
    ``upfirdn`` computes that from a slice whose start we choose, after a shift of the
    filter by ``pad`` zeros that lines its output grid up with ours.
    """
    up, down, half = design.up, design.down, design.half_len
    # First input sample that output n0 reads, and the last one output n1 - 1 reads.
    lo = max(-((half - n0 * down) // up), x_start)  # ceil((n0*down - half) / up)
    hi = min(((n1 - 1) * down + half) // up + 1, x_start + x.size)
    xs = x[lo - x_start : hi - x_start]
    first = -((lo * up - n0 * down - half) // down)  # ceil((n0*down + half - lo*up)/down)
    pad = lo * up + first * down - n0 * down - half
    taps = design.taps if pad == 0 else np.concatenate((np.zeros(pad, np.float32), design.taps))
    n = n1 - n0
    if xs.size == 0:
        return np.zeros(n, dtype=np.float32)
    y = _scipy_signal().upfirdn(taps, xs, up, down)
    out = y[first : first + n]
    if out.size < n:  # cannot happen with the bounds above; kept for safety
        out = np.concatenate((out, np.zeros(n - out.size, y.dtype)))
    return np.ascontiguousarray(out, dtype=np.float32)


def resample(samples: Float32Array, from_rate_hz: int, to_rate_hz: int) -> Float32Array:
    """Resample a whole mono float32 clip between two of :data:`SUPPORTED_SAMPLE_RATES_HZ`.

    Polyphase rational resampling (``up/down`` reduced) with a Kaiser-windowed FIR designed
    once per rate pair: pass band to 85% of the lower Nyquist frequency, at least 80 dB of
    attenuation from the Nyquist frequency on. The output has
    ``ceil(len * to / from)`` samples and is aligned like ``scipy.signal.resample_poly``
    (output sample ``n`` sits at input time ``n * from / to``). Equal rates return a copy.
    """
    x = _mono_float32(samples, "samples")
    src, dst = _check_rate(from_rate_hz, "from_rate_hz"), _check_rate(to_rate_hz, "to_rate_hz")
    if src == dst:
        return x.copy()
    design = _design(src, dst)
    n_out = -((-x.size * design.up) // design.down)
    if n_out == 0:
        return np.zeros(0, dtype=np.float32)
    return _polyphase_outputs(design, x, 0, 0, n_out)


class Resampler:
    """Streaming :func:`resample`: ``push()`` chunks of any size, then ``flush()``.

    The concatenated outputs equal ``resample(whole_clip, from_rate_hz, to_rate_hz)``.
    Each ``push()`` returns every output sample whose filter support is complete; the
    filter is centred, so the stream lags by half its length (``delay_samples`` input
    samples, 100 for 48 -> 16 kHz, about 2 ms) and ``flush()`` returns the tail, computed
    with zeros after the end like the whole-clip function.
    """

    def __init__(self, from_rate_hz: int, to_rate_hz: int) -> None:
        self.from_rate_hz = _check_rate(from_rate_hz, "from_rate_hz")
        self.to_rate_hz = _check_rate(to_rate_hz, "to_rate_hz")
        self._design = (
            None
            if self.from_rate_hz == self.to_rate_hz
            else _design(self.from_rate_hz, self.to_rate_hz)
        )
        self._buf = np.zeros(0, dtype=np.float32)  # input samples from _buf_start on
        self.reset()

    @property
    def delay_samples(self) -> int:
        """Input samples held back by the filter's look-ahead (0 for equal rates)."""
        return 0 if self._design is None else -(-self._design.half_len // self._design.up)

    def reset(self) -> None:
        """Forget the stream so far; the next ``push()`` starts a new stream."""
        self._buf_start = 0  # absolute input index of self._buf[0]
        self._buf_len = 0
        self._n_in = 0
        self._n_out = 0

    def _append(self, x: Float32Array) -> None:
        need = self._buf_len + x.size
        if need > self._buf.size:
            grown = np.empty(max(need, 2 * self._buf.size), dtype=np.float32)
            grown[: self._buf_len] = self._buf[: self._buf_len]
            self._buf = grown
        self._buf[self._buf_len : need] = x
        self._buf_len = need
        self._n_in += x.size

    def _emit(self, n1: int) -> Float32Array:
        design = self._design
        assert design is not None
        n0 = self._n_out
        if n1 <= n0:
            return np.zeros(0, dtype=np.float32)
        out = _polyphase_outputs(design, self._buf[: self._buf_len], self._buf_start, n0, n1)
        self._n_out = n1
        # Drop the input that no future output reads.
        keep_from = max(-((design.half_len - n1 * design.down) // design.up), self._buf_start)
        drop = min(keep_from - self._buf_start, self._buf_len)
        if drop > 0:
            self._buf[: self._buf_len - drop] = self._buf[drop : self._buf_len]
            self._buf_len -= drop
            self._buf_start += drop
        return out

    def push(self, chunk: Float32Array) -> Float32Array:
        """Add mono float32 samples; return the output samples they complete."""
        x = _mono_float32(chunk, "chunk")
        if self._design is None:
            return x.copy()
        self._append(x)
        design = self._design
        ready = (self._n_in * design.up - 1 - design.half_len) // design.down + 1
        return self._emit(max(ready, 0))

    def flush(self) -> Float32Array:
        """Return the remaining output (zeros assumed after the end) and reset the stream."""
        if self._design is None:
            self.reset()
            return np.zeros(0, dtype=np.float32)
        total = -((-self._n_in * self._design.up) // self._design.down)
        out = self._emit(total)
        self.reset()
        return out


# ------------------------------------------------------------------------------ framing


class Framer:
    """Cut a stream into frames of ``frame_length`` samples every ``hop_length`` samples.

    ``push(chunk)`` returns a ``(k, frame_length)`` array (a new array owned by the caller)
    of the ``k`` frames completed by the chunk, ``k`` possibly 0. Over any chunking the
    frames equal those of the whole signal without padding (``librosa.util.frame`` with
    ``axis=0``); at most ``frame_length - 1`` samples are held back, and an incomplete
    trailing frame is never returned. ``dtype`` is the sample type (float32 or int16).
    """

    def __init__(
        self,
        frame_length: int,
        hop_length: int,
        *,
        dtype: type[np.float32] | type[np.int16] = np.float32,
    ) -> None:
        self.frame_length = _positive_int(frame_length, "frame_length")
        self.hop_length = _positive_int(hop_length, "hop_length")
        if dtype not in (np.float32, np.int16):
            raise InvalidConfigError(f"dtype must be np.float32 or np.int16; got {dtype!r}")
        self.dtype = np.dtype(dtype)
        self._buf = np.zeros(2 * self.frame_length, dtype=self.dtype)
        self.reset()

    @property
    def pending_samples(self) -> int:
        """Samples held back for the next frame."""
        return self._buf_len

    def reset(self) -> None:
        """Drop the held-back samples; the next ``push()`` starts a new stream."""
        self._buf_len = 0
        self._skip = 0  # samples still to drop when hop_length > frame_length

    def push(self, chunk: PcmArray) -> PcmArray:
        """Add samples; return the frames they complete, shape ``(k, frame_length)``."""
        if not isinstance(chunk, np.ndarray) or chunk.dtype != self.dtype or chunk.ndim != 1:
            raise InvalidAudioError(
                f"chunk must be a 1-D {self.dtype} array; got {_describe(chunk)}"
            )
        if chunk.dtype == np.float32:
            _check_finite(chunk, "chunk")
        if self._skip:
            dropped = min(self._skip, chunk.size)
            chunk = chunk[dropped:]
            self._skip -= dropped
        length, hop = self.frame_length, self.hop_length
        total = self._buf_len + chunk.size
        if total < length:
            self._buf[self._buf_len : total] = chunk
            self._buf_len = total
            return np.zeros((0, length), dtype=self.dtype)
        k = (total - length) // hop + 1
        if self._buf_len == 0:
            source = chunk
        else:
            if total > self._buf.size:
                grown = np.empty(max(total, 2 * self._buf.size), dtype=self.dtype)
                grown[: self._buf_len] = self._buf[: self._buf_len]
                self._buf = grown
            self._buf[self._buf_len : total] = chunk
            source = self._buf[:total]
        frames = as_strided(
            source,
            shape=(k, length),
            strides=(hop * source.itemsize, source.itemsize),
            writeable=False,
        ).copy()
        consumed = k * hop
        if consumed >= total:
            self._skip = consumed - total
            self._buf_len = 0
        else:
            rest = total - consumed
            if rest > self._buf.size:
                self._buf = np.empty(2 * rest, dtype=self.dtype)
            self._buf[:rest] = source[consumed:total]
            self._buf_len = rest
        return cast("PcmArray", frames)


# ------------------------------------------------------------------------------ log-mel


def _hz_to_mel(freqs_hz: NDArray[np.float64], htk: bool) -> NDArray[np.float64]:
    if htk:
        return 2595.0 * np.log10(1.0 + freqs_hz / 700.0)
    # Slaney's Auditory Toolbox scale: linear below 1 kHz, logarithmic above.
    f_sp = 200.0 / 3
    mels = freqs_hz / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    above = freqs_hz >= min_log_hz
    mels[above] = min_log_mel + np.log(freqs_hz[above] / min_log_hz) / logstep
    return mels


def _mel_to_hz(mels: NDArray[np.float64], htk: bool) -> NDArray[np.float64]:
    if htk:
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    freqs = f_sp * mels
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    above = mels >= min_log_mel
    freqs[above] = min_log_hz * np.exp(logstep * (mels[above] - min_log_mel))
    return freqs


def mel_filterbank(
    *,
    sample_rate_hz: int,
    n_fft: int,
    n_mels: int,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
    norm: Literal["slaney"] | None = "slaney",
) -> Float32Array:
    """The ``(n_mels, 1 + n_fft // 2)`` float32 mel filterbank of ``librosa.filters.mel``.

    Triangular filters on the Slaney mel scale (``htk=True``: the HTK formula), with
    Slaney's area normalization by default (``norm=None``: peak 1). Computed in float64
    like librosa, then cast.
    """
    fmax_hz = sample_rate_hz / 2.0 if fmax is None else float(fmax)
    fft_freqs = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate_hz)
    mel_edges = np.linspace(
        _hz_to_mel(np.array([float(fmin)]), htk)[0],
        _hz_to_mel(np.array([fmax_hz]), htk)[0],
        n_mels + 2,
    )
    hz_edges = _mel_to_hz(mel_edges, htk)
    widths = np.diff(hz_edges)
    ramps = np.subtract.outer(hz_edges, fft_freqs)
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney":
        weights *= (2.0 / (hz_edges[2:] - hz_edges[:-2]))[:, None]
    result: Float32Array = weights.astype(np.float32)
    return result


def _rfft_rows_public(rows: Float32Array, out: NDArray[np.complex64]) -> None:
    out[...] = scipy.fft.rfft(rows, axis=1)


try:
    # scipy.fft's own pocketfft binding takes a preallocated output; the public
    # scipy.fft.rfft allocates one per call and adds its backend dispatch. Measured on
    # 1001 x 512 float32 rows: 0.71 ms vs 1.75 ms (a fresh 2 MB output page-faults on
    # every call); on 8 rows (one 80 ms chunk): 6.6 vs 14.9 µs. numpy.fft.rfft(out=) is
    # slower than both (no SIMD across rows). Private API, hence the fallback.
    from scipy.fft._pocketfft.pypocketfft import r2c as _r2c

    def _rfft_rows(rows: Float32Array, out: NDArray[np.complex64]) -> None:
        _r2c(rows, (1,), True, 0, out, 1)

except ImportError:  # pragma: no cover - depends on scipy's private layout
    _rfft_rows = _rfft_rows_public


def _mel_bands(bank: Float32Array) -> list[tuple[int, int, int, int, Float32Array]]:
    """Split the filterbank into bands of adjacent filters for a sparse product.

    Returns ``(m0, m1, c0, c1, weights)``: filters ``m0 .. m1-1`` read the interleaved
    (re², im²) spectrum columns ``c0 .. c1-1`` with ``weights`` ``(m1 - m0, c1 - c0)``.
    Dynamic programming over where the bands split, minimizing multiply-adds per frame
    plus :data:`_BAND_COST` for each band's call.
    """
    n_mels = bank.shape[0]
    nonzero = bank > 0
    first = np.argmax(nonzero, axis=1)
    last = bank.shape[1] - np.argmax(nonzero[:, ::-1], axis=1)
    best = [0.0] + [math.inf] * n_mels
    cut = [0] * (n_mels + 1)
    for j in range(1, n_mels + 1):
        for i in range(j):
            lo, hi = int(first[i:j].min()), int(last[i:j].max())
            cost = best[i] + (j - i) * 2 * (hi - lo) + _BAND_COST
            if cost < best[j]:
                best[j], cut[j] = cost, i
    bands = []
    j = n_mels
    while j > 0:
        i = cut[j]
        lo, hi = int(first[i:j].min()), int(last[i:j].max())
        weights = np.repeat(bank[i:j, lo:hi], 2, axis=1)
        bands.append((i, j, 2 * lo, 2 * hi, np.ascontiguousarray(weights)))
        j = i
    return bands[::-1]


@dataclass(frozen=True, slots=True)
class LogMelOptions:
    """Options of :class:`LogMel`; names and meanings are librosa's.

    The defaults are the 16 kHz speech front end (25 ms window, 10 ms hop, 40 mels).
    ``power`` is 1 (magnitude) or 2 (power) as in ``librosa.feature.melspectrogram``;
    ``to_db`` applies ``librosa.power_to_db`` (``10·log10``) whatever the power, with
    ``ref`` a constant (librosa also allows a callable such as ``np.max``, which needs
    the whole clip and cannot stream). ``top_db`` clips to ``max - top_db`` over the
    whole clip: allowed in :meth:`LogMel.compute` only, since a stream never sees its
    global maximum; librosa's default is 80, ours is None. ``center=True`` pads
    ``n_fft // 2`` zeros at both ends (librosa ≥ 0.10's ``pad_mode='constant'``).
    """

    sample_rate_hz: int = 16000
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    n_mels: int = 40
    fmin: float = 0.0
    fmax: float | None = None
    center: bool = True
    power: float = 2.0
    to_db: bool = True
    ref: float = 1.0
    amin: float = 1e-10
    top_db: float | None = None
    window: Literal["hann"] = "hann"
    htk: bool = False
    norm: Literal["slaney"] | None = "slaney"

    def __post_init__(self) -> None:
        sr = _positive_int(self.sample_rate_hz, "sample_rate_hz")
        n_fft = _positive_int(self.n_fft, "n_fft")
        win = _positive_int(self.win_length, "win_length")
        _positive_int(self.hop_length, "hop_length")
        n_mels = _positive_int(self.n_mels, "n_mels")
        if win > n_fft:
            raise InvalidConfigError(f"win_length must be at most n_fft={n_fft}; got {win}")
        nyquist = sr / 2.0
        fmax = nyquist if self.fmax is None else self.fmax
        if not (0.0 <= self.fmin < fmax <= nyquist):
            raise InvalidConfigError(
                f"need 0 <= fmin < fmax <= sample_rate_hz / 2 = {nyquist:g} Hz; got "
                f"fmin={self.fmin!r}, fmax={self.fmax!r}"
            )
        if self.power not in (1, 2):
            raise InvalidConfigError(
                f"power must be 1 (magnitude) or 2 (power); got {self.power!r}"
            )
        if not (math.isfinite(self.ref) and self.ref > 0):
            raise InvalidConfigError(f"ref must be a positive finite constant; got {self.ref!r}")
        if not (math.isfinite(self.amin) and float(np.finfo(np.float32).tiny) <= self.amin):
            raise InvalidConfigError(
                f"amin must be a finite number >= {float(np.finfo(np.float32).tiny):.3g} "
                f"(the smallest normal float32); got {self.amin!r}"
            )
        if self.top_db is not None and not (math.isfinite(self.top_db) and self.top_db >= 0):
            raise InvalidConfigError(
                f"top_db must be None or a non-negative number; got {self.top_db!r}"
            )
        if self.window != "hann":
            raise InvalidConfigError(f"window must be 'hann'; got {self.window!r}")
        if self.norm not in ("slaney", None):
            raise InvalidConfigError(f"norm must be 'slaney' or None; got {self.norm!r}")
        del n_mels


class LogMel:
    """Log-mel spectrogram of mono float32 audio, whole-clip or streaming.

    Matches ``librosa.power_to_db(librosa.feature.melspectrogram(...))`` with the same
    options (``dtype`` float32 input; to float32 rounding). Layout ``(n_mels, n_frames)``.

    Streaming: ``push(chunk)`` returns ``(n_mels, k)`` for the ``k`` frames the chunk
    completes; ``flush()`` returns the trailing frames (those that reach into the end
    padding when ``center=True``) and resets. With ``center=True`` a frame is complete as
    soon as the samples under its window have arrived, so at most ``n_fft`` samples are
    held back. The pushes and the flush concatenated along axis 1 equal
    ``compute(whole_clip)``.
    """

    def __init__(self, options: LogMelOptions | None = None) -> None:
        self.options = opts = LogMelOptions() if options is None else options
        self._n_fft = opts.n_fft
        self._win = opts.win_length
        self._hop = opts.hop_length
        # librosa centres the window in the FFT frame: samples [off, off + win) count.
        self._off = (opts.n_fft - opts.win_length) // 2
        self._pad = opts.n_fft // 2 if opts.center else 0
        # A frame is complete when its last sample under the window has arrived; without
        # centring, librosa only yields frames whose whole n_fft span is in the signal.
        self._need = self._off + self._win if opts.center else opts.n_fft
        n = np.arange(opts.win_length, dtype=np.float64)
        # scipy.signal.get_window('hann', win, fftbins=True): the periodic Hann window.
        self._window = (0.5 - 0.5 * np.cos(2.0 * np.pi * n / opts.win_length)).astype(np.float32)
        bank = mel_filterbank(
            sample_rate_hz=opts.sample_rate_hz,
            n_fft=opts.n_fft,
            n_mels=opts.n_mels,
            fmin=opts.fmin,
            fmax=opts.fmax,
            htk=opts.htk,
            norm=opts.norm,
        )
        empty = np.flatnonzero(~bank.any(axis=1))
        if empty.size:
            raise InvalidConfigError(
                f"n_mels={opts.n_mels} is too many for n_fft={opts.n_fft} between fmin and "
                f"fmax: mel filters {empty.tolist()} cover no FFT bin (lower n_mels or raise n_fft)"
            )
        used = np.flatnonzero(bank.any(axis=0))
        self._bin_lo, self._bin_hi = int(used[0]), int(used[-1]) + 1
        self._bank = np.ascontiguousarray(bank[:, self._bin_lo : self._bin_hi])
        self._bank2 = np.repeat(self._bank, 2, axis=1)
        self._bands = _mel_bands(self._bank)
        # The float32 exponent field is biased by 127: e_field * dB/octave - this offset.
        self._db_offset = np.float32(
            127 * float(_DB_PER_OCTAVE) + 10.0 * math.log10(max(opts.amin, opts.ref))
        )
        self._amin = np.float32(opts.amin)
        self._magnitude = opts.power == 1
        self._block_frames = _BLOCK_FRAMES
        self._alloc_work(0)  # grown to the largest batch seen, up to _BLOCK_FRAMES
        self._mant = np.empty((opts.n_mels, 0), dtype=np.float32)  # dB work, grown too
        self._expo = np.empty((opts.n_mels, 0), dtype=np.int32)
        self._buf = np.zeros(0, dtype=np.float32)
        self._frames = self._buf[:0].reshape(0, self._win)
        self._buf_len = 0
        self.reset()

    # -- buffers

    def _alloc_work(self, rows: int) -> None:
        # Rows are n_fft long; columns [win, n_fft) stay zero forever (see module doc).
        self._rows = np.zeros((rows, self._n_fft), dtype=np.float32)
        self._spec = np.empty((rows, self._n_fft // 2 + 1), dtype=np.complex64)
        self._spec_f = self._spec.view(np.float32)
        self._power = np.empty((rows, self._bin_hi - self._bin_lo), dtype=np.float32)

    def _ensure_buffer(self, size: int) -> None:
        if size <= self._buf.size:
            return
        grown = np.zeros(max(size, 2 * self._buf.size, self._n_fft + 4096), dtype=np.float32)
        grown[: self._buf_len] = self._buf[: self._buf_len]
        self._buf = grown
        # Frame j of the buffer reads buf[off + j*hop : off + j*hop + win]; the view is
        # made once per allocation because building it costs more than a chunk's FFT.
        n_frames = max(0, (grown.size - self._off - self._win) // self._hop + 1)
        self._frames = as_strided(
            grown[self._off :],
            shape=(n_frames, self._win),
            strides=(self._hop * 4, 4),
            writeable=False,
        )

    # -- the core

    def _rows_to_mel(self, k: int, out: Float32Array) -> None:
        """Mel power (or magnitude) of the first ``k`` windowed rows into ``out`` (n_mels, k)."""
        spec = self._spec[:k]
        _rfft_rows(self._rows[:k], spec)
        # Square all of it, not just the bins in use: numpy runs a strided 2-D slice row by
        # row, 3x slower (170 vs 60 µs on 1001 frames) than the contiguous whole.
        spec_f = self._spec_f[:k]
        np.square(spec_f, out=spec_f)
        sq = spec_f[:, 2 * self._bin_lo : 2 * self._bin_hi]
        if self._magnitude:
            power = self._power[:k]
            np.add(sq[:, 0::2], sq[:, 1::2], out=power)
            np.sqrt(power, out=power)
            np.matmul(self._bank, power.T, out=out)
        elif k < _GROUPED_MIN_FRAMES:
            # The filterbank with each weight repeated for re² and im²: the product sums
            # the two, which saves a pass over the spectrum (an np.add of two strided
            # halves cost as much as the product itself).
            np.matmul(self._bank2, sq.T, out=out)
        else:
            # Many frames: the product is worth splitting into bands of adjacent filters,
            # each over only the bins it covers (about 4x fewer multiply-adds for 40 mels
            # at n_fft 512), at a few µs of call overhead per band.
            for m0, m1, c0, c1, weights in self._bands:
                np.matmul(weights, sq[:, c0:c1].T, out=out[m0:m1])

    def _to_db(self, out: Float32Array) -> None:
        """``10·log10(max(amin, out)) - 10·log10(max(amin, ref))`` in place."""
        k = out.shape[1]
        if k > self._mant.shape[1]:
            cols = min(k, _DB_MAX_COLUMNS)
            self._mant = np.empty((self.options.n_mels, cols), dtype=np.float32)
            self._expo = np.empty((self.options.n_mels, cols), dtype=np.int32)
            if k > cols:
                for i in range(0, k, cols):
                    self._to_db(out[:, i : i + cols])
                return
        mant, expo = self._mant[:, :k], self._expo[:, :k]
        np.maximum(out, self._amin, out=out)
        # 10·log10(m·2^e) = e·10·log10(2) + (10 / ln 10)·ln(m), with m in [1, 2):
        # - ln is SIMD in numpy and log10 is not: 4-5x faster on float32.
        # - Splitting off the exponent keeps ln(m) small, so its rounding error is ~1e-8
        #   instead of ulp(ln x) ~ 2e-6 for x ~ 1e-8. The BLAS mel product may round a
        #   frame differently (by 1 ulp) depending on how many frames share the call, so
        #   a stream and a whole clip can differ in the last bit of the mel power; with
        #   the split that stays within 1 ulp of the dB value (7.6e-6 at 70 dB) instead
        #   of 2 ulps through a plain log.
        # - The split is done on the bits (amin >= the smallest normal float32, so no
        #   subnormals): 3 integer passes cost 20 µs on 40 x 1001 values, np.frexp 90 µs.
        bits = out.view(np.int32)
        np.right_shift(bits, 23, out=expo)
        np.bitwise_and(bits, _MANTISSA_BITS, out=mant.view(np.int32))
        np.bitwise_or(mant.view(np.int32), _ONE_BITS, out=mant.view(np.int32))
        np.log(mant, out=mant)
        mant *= _DB_PER_NEPER
        np.multiply(expo, _DB_PER_OCTAVE, out=out, casting="unsafe")
        # Fold the exponent bias and the reference into one constant, so that the only
        # rounding that depends on the mantissa is the last addition.
        out -= self._db_offset
        out += mant

    def _frames_to_mel(
        self, segments: list[tuple[int, int, NDArray[np.float32]]], k: int, out: Float32Array
    ) -> None:
        """Log-mel of ``k`` frames into ``out`` ``(n_mels, k)``.

        ``segments`` are ``(t0, t1, frames)`` with ``frames`` the ``(t1 - t0, win)``
        samples under the window of frames ``t0 .. t1-1``; together they cover ``0 .. k``.
        """
        if k > self._rows.shape[0] and self._rows.shape[0] < self._block_frames:
            self._alloc_work(min(k, self._block_frames))
        window, win = self._window, self._win
        for i in range(0, k, self._block_frames):
            j = min(i + self._block_frames, k)
            for t0, t1, frames in segments:
                a, b = max(t0, i), min(t1, j)
                if a < b:
                    np.multiply(
                        frames[a - t0 : b - t0], window, out=self._rows[a - i : b - i, :win]
                    )
            self._rows_to_mel(j - i, out if j - i == k else out[:, i:j])
        # Once over the whole output rather than per block: 9 calls per block were a
        # good part of the cost of small blocks.
        if self.options.to_db:
            self._to_db(out)

    # -- whole clip

    def n_frames(self, n_samples: int) -> int:
        """Frames that :meth:`compute` yields for a clip of ``n_samples`` samples."""
        total = n_samples + 2 * self._pad
        return 0 if total < self._n_fft else (total - self._n_fft) // self._hop + 1

    def _strided(self, x: Float32Array, n: int) -> NDArray[np.float32]:
        return as_strided(x, shape=(n, self._win), strides=(self._hop * 4, 4), writeable=False)

    def _clip_segments(
        self, x: Float32Array, n_out: int
    ) -> list[tuple[int, int, NDArray[np.float32]]]:
        """The clip's frames as strided views: the frames whose window reaches into the
        zero padding read small padded copies of the clip's ends; the others read the
        clip itself. Copying a 10 s clip into a padded array cost 0.2 ms, 10% of the
        whole computation."""
        hop, win = self._hop, self._win
        shift = self._off - self._pad  # x index of frame t's first sample: t*hop + shift
        # Frames [t_a, t_b) lie inside the clip.
        t_a = min(n_out, -(shift // hop)) if shift < 0 else 0
        t_b = max(t_a, min(n_out, (x.size - win - shift) // hop + 1))
        segments = []
        if t_a > 0:
            length = (t_a - 1) * hop + win
            head = np.zeros(length, dtype=np.float32)
            take = min(x.size, length + shift)
            head[-shift : -shift + take] = x[:take]
            segments.append((0, t_a, self._strided(head, t_a)))
        if t_b > t_a:
            segments.append((t_a, t_b, self._strided(x[t_a * hop + shift :], t_b - t_a)))
        if n_out > t_b:
            start = t_b * hop + shift  # >= 0 because t_b >= t_a
            length = (n_out - t_b - 1) * hop + win
            tail = np.zeros(length, dtype=np.float32)
            take = max(0, min(x.size - start, length))
            tail[:take] = x[start : start + take]
            segments.append((t_b, n_out, self._strided(tail, n_out - t_b)))
        return segments

    def compute(self, clip: Float32Array) -> Float32Array:
        """Log-mel of a whole mono float32 clip: ``(n_mels, n_frames)`` float32.

        Does not disturb a stream in progress. ``top_db`` (if set) clips to the clip's
        maximum minus ``top_db``.
        """
        x = _mono_float32(clip, "clip", allow_empty=False)
        n_out = self.n_frames(x.size)
        if n_out == 0:
            raise InvalidAudioError(
                f"clip must have at least n_fft={self._n_fft} samples when center=False; "
                f"got {x.size}"
            )
        out = np.empty((self.options.n_mels, n_out), dtype=np.float32)
        self._frames_to_mel(self._clip_segments(x, n_out), n_out, out)
        if self.options.top_db is not None and self.options.to_db:
            np.maximum(out, out.max() - np.float32(self.options.top_db), out=out)
        return out

    # -- streaming

    @property
    def pending_samples(self) -> int:
        """Samples held back for frames not yet complete (at most ``n_fft``)."""
        # The buffer is a suffix of (start padding + input): its input part.
        return min(self._buf_len, self._n_in)

    def reset(self) -> None:
        """Forget the stream; the next ``push()`` starts a new one (with its zero padding)."""
        self._ensure_buffer(self._pad)
        self._buf[: self._pad] = 0.0
        self._buf_len = self._pad  # the buffer starts at a frame start
        self._skip = 0
        self._n_in = 0
        self._n_emitted = 0

    def _check_streamable(self) -> None:
        if self.options.top_db is not None and self.options.to_db:
            raise InvalidConfigError(
                "top_db clips against the maximum of the whole clip and cannot stream; "
                "use LogMelOptions(top_db=None) for push()/flush(), or compute()"
            )

    def _emit(self, n_ready: int) -> Float32Array:
        out = np.empty((self.options.n_mels, n_ready), dtype=np.float32)
        if n_ready:
            self._frames_to_mel([(0, n_ready, self._frames[:n_ready])], n_ready, out)
            consumed = n_ready * self._hop
            if consumed >= self._buf_len:
                self._skip = consumed - self._buf_len
                self._buf_len = 0
            else:
                rest = self._buf_len - consumed
                self._buf[:rest] = self._buf[consumed : self._buf_len]
                self._buf_len = rest
            self._n_emitted += n_ready
        return out

    def push(self, chunk: Float32Array) -> Float32Array:
        """Add mono float32 samples; return ``(n_mels, k)`` for the frames they complete."""
        self._check_streamable()
        x = _mono_float32(chunk, "chunk")
        self._n_in += x.size
        if self._skip:
            dropped = min(self._skip, x.size)
            x = x[dropped:]
            self._skip -= dropped
        end = self._buf_len + x.size
        self._ensure_buffer(end)
        self._buf[self._buf_len : end] = x
        self._buf_len = end
        n_ready = (end - self._need) // self._hop + 1 if end >= self._need else 0
        return self._emit(n_ready)

    def flush(self) -> Float32Array:
        """Return the trailing frames (end padding when centred) and reset the stream."""
        self._check_streamable()
        remaining = self.n_frames(self._n_in) - self._n_emitted
        out: Float32Array
        if remaining > 0:
            # Append the end padding the remaining windows reach, then emit them.
            # Buffer index 0 is the start of the next frame (all zeros if it is skipped).
            if self._skip:
                self._buf_len, self._skip = 0, 0
            end = max(self._buf_len, (remaining - 1) * self._hop + self._need)
            self._ensure_buffer(end)
            self._buf[self._buf_len : end] = 0.0
            self._buf_len = end
            out = self._emit(remaining)
        else:
            out = np.empty((self.options.n_mels, 0), dtype=np.float32)
        self.reset()
        return out
