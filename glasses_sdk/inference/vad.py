"""Voice activity detection with silero VAD, streaming, with speech segments.

silero VAD scores 32 ms of 16 kHz audio per call: 512 new samples preceded by the
previous call's last 64 samples (without that context, speech scores near 0), and a
recurrent state tensor carried from call to call. :class:`VoiceActivityDetector` keeps
both inside, accepts audio at any rate (resampled to 16 kHz) and in chunks of any size,
and turns the per-chunk probabilities into speech segments with silero's own
hysteresis: speech starts at ``threshold``, ends after ``min_silence_ms`` below
``neg_threshold``, is dropped when shorter than ``min_speech_ms``, and is padded by
``speech_pad_ms`` on both sides.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from glasses_sdk._exceptions import InvalidAudioError, InvalidConfigError
from glasses_sdk.inference._registry import ModelRegistry, default_registry
from glasses_sdk.inference._session import SessionManager, default_session_manager
from glasses_sdk.preprocess.audio import (
    SUPPORTED_SAMPLE_RATES_HZ,
    Resampler,
    int16_to_float32,
)

__all__ = [
    "VAD_CHUNK_SAMPLES",
    "VAD_CONTEXT_SAMPLES",
    "VAD_SAMPLE_RATE_HZ",
    "SpeechSegment",
    "VadOptions",
    "VadResult",
    "VoiceActivityDetector",
]

VAD_SAMPLE_RATE_HZ = 16000
"""The rate the model runs at; other rates are resampled to it."""
VAD_CHUNK_SAMPLES = 512
"""New samples per model call (32 ms at 16 kHz)."""
VAD_CONTEXT_SAMPLES = 64
"""Samples of the previous call that precede each chunk."""

_CHUNK_S = VAD_CHUNK_SAMPLES / VAD_SAMPLE_RATE_HZ


@dataclass(frozen=True)
class VadOptions:
    """Thresholds and durations of the segmenter, the input rate, and the model.

    ``neg_threshold`` defaults to ``threshold - 0.15`` (silero's default);
    ``sample_rate_hz`` is the rate of the audio given to :meth:`~VoiceActivityDetector.push`.
    """

    threshold: float = 0.5
    neg_threshold: float | None = None
    min_speech_ms: float = 250.0
    min_silence_ms: float = 100.0
    speech_pad_ms: float = 30.0
    sample_rate_hz: int = VAD_SAMPLE_RATE_HZ
    model: str = "silero-vad"
    variant: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise InvalidConfigError(
                f"threshold: expected a value in (0, 1), got {self.threshold!r}"
            )
        neg = self.effective_neg_threshold
        if not 0.0 <= neg <= self.threshold:
            raise InvalidConfigError(
                f"neg_threshold: expected a value in [0, threshold={self.threshold}], got {neg!r}"
            )
        for name in ("min_speech_ms", "min_silence_ms", "speech_pad_ms"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise InvalidConfigError(f"{name}: expected a finite number >= 0, got {value!r}")
        if self.sample_rate_hz not in SUPPORTED_SAMPLE_RATES_HZ:
            raise InvalidConfigError(
                f"sample_rate_hz: streaming accepts {SUPPORTED_SAMPLE_RATES_HZ} Hz, got "
                f"{self.sample_rate_hz!r}; whole clips at any rate go through detect()"
            )

    @property
    def effective_neg_threshold(self) -> float:
        """The threshold below which speech may end."""
        if self.neg_threshold is None:
            return max(self.threshold - 0.15, 0.01)
        return self.neg_threshold


@dataclass(frozen=True)
class SpeechSegment:
    """Speech from ``start_s`` to ``end_s``, in seconds from the start of the stream."""

    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        """Length of the segment in seconds."""
        return self.end_s - self.start_s

    def to_json(self) -> dict[str, float]:
        """``{"start_s", "end_s"}`` rounded to milliseconds."""
        return {"start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3)}


@dataclass(frozen=True)
class VadResult:
    """Speech segments of a clip, the per-chunk probabilities, and the time it took."""

    segments: list[SpeechSegment]
    probabilities: NDArray[np.float32]
    duration_s: float
    latency_ms: float
    chunk_s: float = _CHUNK_S

    def to_json(self) -> dict[str, Any]:
        """The CLI's ``--json`` document (without the probabilities)."""
        voiced = sum(s.duration_s for s in self.segments)
        return {
            "segments": [s.to_json() for s in self.segments],
            "duration_s": round(self.duration_s, 3),
            "speech_s": round(voiced, 3),
            "latency_ms": round(self.latency_ms, 3),
        }


class _Segmenter:
    """silero's hysteresis over chunk probabilities, in 16 kHz samples, streaming."""

    def __init__(self, options: VadOptions) -> None:
        rate = VAD_SAMPLE_RATE_HZ
        self.threshold = options.threshold
        self.neg_threshold = options.effective_neg_threshold
        self.min_speech = options.min_speech_ms * rate / 1000
        self.min_silence = options.min_silence_ms * rate / 1000
        self.pad = int(options.speech_pad_ms * rate / 1000)
        self.reset()

    def reset(self) -> None:
        self.triggered = False
        self.start = 0
        self.temp_end = 0
        self.last_end = 0  # end of the last emitted (padded) segment, in samples

    def _emit(self, start: int, end: int) -> SpeechSegment | None:
        if end - start < self.min_speech:
            return None
        padded_start = max(start - self.pad, self.last_end)
        padded_end = end + self.pad
        self.last_end = padded_end
        return SpeechSegment(padded_start / VAD_SAMPLE_RATE_HZ, padded_end / VAD_SAMPLE_RATE_HZ)

    def update(self, prob: float, position: int) -> SpeechSegment | None:
        """Feed the probability of the chunk starting at sample ``position``."""
        if prob >= self.threshold:
            self.temp_end = 0
            if not self.triggered:
                self.triggered = True
                self.start = position
            return None
        if self.triggered and prob < self.neg_threshold:
            if not self.temp_end:
                self.temp_end = position
            if position - self.temp_end < self.min_silence:
                return None
            self.triggered = False
            end, self.temp_end = self.temp_end, 0
            return self._emit(self.start, end)
        return None

    def finish(self, total: int) -> SpeechSegment | None:
        """Close a segment still open at the end of the stream (``total`` samples)."""
        if not self.triggered:
            return None
        self.triggered = False
        segment = self._emit(self.start, total)
        if segment is not None:
            segment = SpeechSegment(segment.start_s, min(segment.end_s, total / VAD_SAMPLE_RATE_HZ))
        return segment


def _as_float32(samples: object, name: str) -> NDArray[np.float32]:
    if isinstance(samples, np.ndarray) and samples.dtype == np.int16:
        if samples.ndim != 1:
            raise InvalidAudioError(
                f"{name}: expected mono (1-D) samples, got shape {samples.shape}"
            )
        return int16_to_float32(samples)
    if not isinstance(samples, np.ndarray) or samples.dtype != np.float32:
        got = samples.dtype if isinstance(samples, np.ndarray) else type(samples).__name__
        raise InvalidAudioError(f"{name}: expected float32 or int16 samples, got {got}")
    if samples.ndim != 1:
        raise InvalidAudioError(f"{name}: expected mono (1-D) samples, got shape {samples.shape}")
    if samples.size and not math.isfinite(float(samples.sum())):
        raise InvalidAudioError(f"{name}: expected finite samples, got NaN or infinity")
    return samples


def _resample_any(x: NDArray[np.float32], from_hz: int) -> NDArray[np.float32]:
    """Whole-clip resampling to 16 kHz from any rate (the core handles four rates)."""
    if from_hz == VAD_SAMPLE_RATE_HZ:
        return x
    if from_hz in SUPPORTED_SAMPLE_RATES_HZ:
        from glasses_sdk.preprocess.audio import resample

        return resample(x, from_hz, VAD_SAMPLE_RATE_HZ)
    from scipy.signal import resample_poly

    g = math.gcd(from_hz, VAD_SAMPLE_RATE_HZ)
    y = resample_poly(x, VAD_SAMPLE_RATE_HZ // g, from_hz // g)
    return np.ascontiguousarray(y, dtype=np.float32)


class VoiceActivityDetector:
    """Streaming voice activity detection on silero VAD.

    Live stream: :meth:`push` audio chunks of any size as they arrive (returns the
    segments that ended), :meth:`flush` at the end, :meth:`reset` between streams.
    Whole clip: :meth:`detect`. Low level: :meth:`process` scores one 512-sample chunk
    at 16 kHz. One instance serves one stream from one thread; the session underneath
    is shared.
    """

    def __init__(
        self,
        options: VadOptions | None = None,
        *,
        sessions: SessionManager | None = None,
        registry: ModelRegistry | None = None,
        model_path: Path | None = None,
    ) -> None:
        """Load (lazily, once per process) the model ``options`` name."""
        self.options = options or VadOptions()
        registry = registry or default_registry()
        path = model_path or registry.path(self.options.model, self.options.variant)
        self._buffer = np.zeros((1, VAD_CONTEXT_SAMPLES + VAD_CHUNK_SAMPLES), dtype=np.float32)
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._state_out = np.zeros_like(self._state)
        self._prob = np.zeros((1, 1), dtype=np.float32)
        self._sr = np.array(VAD_SAMPLE_RATE_HZ, dtype=np.int64)
        feed: dict[str, NDArray[Any]] = {
            "input": self._buffer,
            "state": self._state,
            "sr": self._sr,
        }
        self.model = (sessions or default_session_manager()).load(path, warmup_feed=feed)
        # The hot path runs through an IO binding over these preallocated arrays: no
        # feed dict, no output allocation, 0.15 instead of 0.23 ms a call here. Some
        # silero files take the sample rate as an input, others are 16 kHz only.
        session = self.model.session
        self._binding = session.io_binding()
        for name, array in feed.items():
            if name in self.model.input_names:
                self._binding.bind_cpu_input(name, array)
        prob_name, state_name = self.model.output_names[:2]
        self._binding.bind_output(
            prob_name, "cpu", 0, np.float32, list(self._prob.shape), self._prob.ctypes.data
        )
        self._binding.bind_output(
            state_name, "cpu", 0, np.float32, list(self._state.shape), self._state_out.ctypes.data
        )
        self._run_bound = session.run_with_iobinding
        self._segmenter = _Segmenter(self.options)
        self._resampler = (
            None
            if self.options.sample_rate_hz == VAD_SAMPLE_RATE_HZ
            else Resampler(self.options.sample_rate_hz, VAD_SAMPLE_RATE_HZ)
        )
        self._pending = np.zeros(VAD_CHUNK_SAMPLES, dtype=np.float32)
        self.reset()

    def reset(self) -> None:
        """Start a new stream: clear the context, the recurrent state and the segmenter."""
        # In place: the IO binding holds these arrays' memory.
        self._buffer.fill(0.0)
        self._state.fill(0.0)
        self._segmenter.reset()
        if self._resampler is not None:
            self._resampler.reset()
        self._n_pending = 0
        self._position = 0  # 16 kHz samples scored so far

    def process(self, chunk: NDArray[np.float32]) -> float:
        """The speech probability of one chunk of 512 float32 samples at 16 kHz.

        Advances the context and the recurrent state; does not run the segmenter.
        """
        if chunk.shape != (VAD_CHUNK_SAMPLES,) or chunk.dtype != np.float32:
            raise InvalidAudioError(
                f"chunk: expected {VAD_CHUNK_SAMPLES} float32 samples at 16 kHz, got "
                f"{getattr(chunk, 'dtype', type(chunk).__name__)} of shape "
                f"{getattr(chunk, 'shape', None)}"
            )
        buffer = self._buffer
        buffer[0, VAD_CONTEXT_SAMPLES:] = chunk
        self._run_bound(self._binding)
        np.copyto(self._state, self._state_out)
        buffer[0, :VAD_CONTEXT_SAMPLES] = buffer[0, -VAD_CONTEXT_SAMPLES:]
        return float(self._prob[0, 0])

    def _score(
        self, samples_16k: NDArray[np.float32], probs: list[float] | None
    ) -> list[SpeechSegment]:
        segments: list[SpeechSegment] = []
        pending = self._pending
        i = 0
        n = samples_16k.size
        while i < n:
            take = min(VAD_CHUNK_SAMPLES - self._n_pending, n - i)
            pending[self._n_pending : self._n_pending + take] = samples_16k[i : i + take]
            self._n_pending += take
            i += take
            if self._n_pending == VAD_CHUNK_SAMPLES:
                segment = self._step(probs)
                if segment is not None:
                    segments.append(segment)
        return segments

    def _step(self, probs: list[float] | None) -> SpeechSegment | None:
        """Score the full pending chunk and feed the segmenter."""
        prob = self.process(self._pending)
        if probs is not None:
            probs.append(prob)
        segment = self._segmenter.update(prob, self._position)
        self._position += VAD_CHUNK_SAMPLES
        self._n_pending = 0
        return segment

    def push(self, samples: NDArray[np.float32] | NDArray[np.int16]) -> list[SpeechSegment]:
        """Feed audio at ``options.sample_rate_hz``; return the segments that ended."""
        x = _as_float32(samples, "samples")
        if self._resampler is not None:
            x = self._resampler.push(x)
        return self._score(x, None)

    def flush(self) -> list[SpeechSegment]:
        """End the stream: score the remaining samples (zero-padded) and close speech."""
        return self._flush(None)

    def _flush(self, probs: list[float] | None) -> list[SpeechSegment]:
        segments: list[SpeechSegment] = []
        if self._resampler is not None:
            segments += self._score(self._resampler.flush(), probs)
        total = self._position + self._n_pending
        if self._n_pending:
            self._pending[self._n_pending :] = 0.0
            segment = self._step(probs)
            if segment is not None:
                segments.append(segment)
        last = self._segmenter.finish(total)
        if last is not None:
            segments.append(last)
        return segments

    def detect(
        self, samples: NDArray[np.float32] | NDArray[np.int16], sample_rate_hz: int
    ) -> VadResult:
        """Speech segments of a whole clip at any sample rate (resets the stream first)."""
        if (
            isinstance(sample_rate_hz, bool)
            or not isinstance(sample_rate_hz, int)
            or not (1000 <= sample_rate_hz <= 384_000)
        ):
            raise InvalidAudioError(
                f"sample_rate_hz: expected an int in 1000..384000, got {sample_rate_hz!r}"
            )
        start = time.perf_counter()
        x = _resample_any(_as_float32(samples, "samples"), sample_rate_hz)
        resampler, self._resampler = self._resampler, None
        try:
            self.reset()
            probs: list[float] = []
            segments = self._score(x, probs)
            segments += self._flush(probs)
        finally:
            self._resampler = resampler
            self.reset()
        return VadResult(
            segments=segments,
            probabilities=np.asarray(probs, dtype=np.float32),
            duration_s=x.size / VAD_SAMPLE_RATE_HZ,
            latency_ms=(time.perf_counter() - start) * 1e3,
        )
