"""Wake-word spotting, streaming, with several phrases on one feature stream, and
endpointing of the command that follows.

Audio at 16 kHz (or any supported rate, resampled) arrives in chunks of any size. One
:class:`~glasses_sdk.preprocess.audio.LogMel` stream (40 mels, 10 ms hop, not centred,
so that streaming frames equal whole-window frames) feeds a ring of the last
``WINDOW_FRAMES`` frames; every 80 ms (``HOP_SAMPLES``) each wake-word model scores the
window it needs (its last ``window_frames`` frames) with one onnxruntime call. A score
at or above the model's threshold (shifted by ``sensitivity``) is a detection, after
which that phrase stays silent for ``refractory_s``.

A model is a folder written by ``glasses wake train``: ``model.onnx`` (input
``features`` ``(n, 40, window_frames)`` in dB, output ``score`` ``(n, 1)`` in 0..1) and
``wakeword.json`` (phrase, threshold, window, the median phrase duration). The shipped
"hey glasses" is the registry's ``hey-glasses``.

:class:`WakeWordListener` adds endpointing: after a wake word, silero VAD decides when
the command has ended (``trailing_silence_ms`` of non-speech after speech, or
``max_command_s``, or no speech within ``no_speech_timeout_s``) and returns the
command's audio.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from glasses_sdk._exceptions import InvalidAudioError, InvalidConfigError, ModelError
from glasses_sdk.inference._registry import ModelRegistry, default_registry
from glasses_sdk.inference._session import LoadedModel, SessionManager, default_session_manager
from glasses_sdk.preprocess.audio import (
    SUPPORTED_SAMPLE_RATES_HZ,
    LogMel,
    LogMelOptions,
    Resampler,
    int16_to_float32,
    resample,
)

__all__ = [
    "FEATURE_OPTIONS",
    "HOP_SAMPLES",
    "WAKE_SAMPLE_RATE_HZ",
    "WINDOW_FRAMES",
    "WINDOW_SAMPLES",
    "Command",
    "EndpointOptions",
    "WakeWordDetection",
    "WakeWordDetector",
    "WakeWordListener",
    "WakeWordModel",
    "WakeWordOptions",
    "WakeWordResult",
    "log_mel_window",
]

WAKE_SAMPLE_RATE_HZ = 16000
"""The rate the models run at."""
HOP_SAMPLES = 1280
"""Audio between two model calls: 80 ms at 16 kHz."""
FEATURE_OPTIONS = LogMelOptions(center=False)
"""The front end of every wake-word model: 25 ms windows, 10 ms hop, 40 mels, dB."""
WINDOW_FRAMES = 150
"""Frames a model sees by default: 1.5 s, room for a phrase spoken slowly."""
WINDOW_SAMPLES = (WINDOW_FRAMES - 1) * FEATURE_OPTIONS.hop_length + FEATURE_OPTIONS.n_fft
"""Samples whose (uncentred) log-mel is exactly ``WINDOW_FRAMES`` frames."""

_HOP_FRAMES = HOP_SAMPLES // FEATURE_OPTIONS.hop_length
# 10*log10(amin): what digital silence gives; the ring starts filled with it.
_SILENCE_DB = 10.0 * math.log10(FEATURE_OPTIONS.amin)
_CARD_FILE = "wakeword.json"
_MODEL_FILE = "model.onnx"


_LOCAL = threading.local()


def log_mel_window(samples: NDArray[np.float32]) -> NDArray[np.float32]:
    """The features of one window of 16 kHz audio, ``(40, n_frames)``, as the detector
    computes them (training uses this very function)."""
    # One LogMel per thread: building one (filterbank, buffers) costs more than a window.
    logmel: LogMel | None = getattr(_LOCAL, "logmel", None)
    if logmel is None:
        logmel = _LOCAL.logmel = LogMel(FEATURE_OPTIONS)
    return logmel.compute(samples)


@dataclass(frozen=True)
class WakeWordModel:
    """One trained wake word: its ONNX file and what ``wakeword.json`` says about it."""

    phrase: str
    path: Path
    threshold: float
    window_frames: int = WINDOW_FRAMES
    phrase_s: float = 0.8
    card: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def load(cls, location: Path) -> WakeWordModel:
        """Read a model folder (or its ``model.onnx``) written by ``glasses wake train``."""
        folder = location.parent if location.suffix == ".onnx" else location
        onnx_path = location if location.suffix == ".onnx" else folder / _MODEL_FILE
        card_path = folder / _CARD_FILE
        if not onnx_path.is_file() or not card_path.is_file():
            raise ModelError(
                f"wake-word model folder {folder}: expected {_MODEL_FILE} and {_CARD_FILE} "
                "(written by `glasses wake train PHRASE --out DIR`)"
            )
        try:
            card = json.loads(card_path.read_text(encoding="utf-8"))
            return cls(
                phrase=str(card["phrase"]),
                path=onnx_path,
                threshold=float(card["threshold"]),
                window_frames=int(card.get("window_frames", WINDOW_FRAMES)),
                phrase_s=float(card.get("phrase_s", 0.8)),
                card=card,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"{card_path}: not a valid wake-word card ({exc})") from exc


@dataclass(frozen=True)
class WakeWordOptions:
    """Which wake words, how eagerly, and the input rate.

    ``models`` are registry names (``"hey-glasses"``) or folders written by
    ``glasses wake train``. ``sensitivity`` in ``[0, 1]``: 0.5 uses each model's own
    threshold, higher detects more (and falsely accepts more), lower fewer; it moves
    the threshold in logit space by ``(0.5 - sensitivity) * 6``. ``refractory_s``: after
    a detection, the same phrase is not reported again for this long.
    """

    models: tuple[str | Path, ...] = ("hey-glasses",)
    sensitivity: float = 0.5
    refractory_s: float = 1.5
    sample_rate_hz: int = WAKE_SAMPLE_RATE_HZ

    def __post_init__(self) -> None:
        if not self.models:
            raise InvalidConfigError("models: expected at least one wake-word model")
        if not (isinstance(self.sensitivity, int | float) and 0.0 <= self.sensitivity <= 1.0):
            raise InvalidConfigError(
                f"sensitivity: expected a number in [0, 1], got {self.sensitivity!r}"
            )
        if not (isinstance(self.refractory_s, int | float) and self.refractory_s >= 0):
            raise InvalidConfigError(
                f"refractory_s: expected a number >= 0, got {self.refractory_s!r}"
            )
        if self.sample_rate_hz not in SUPPORTED_SAMPLE_RATES_HZ:
            raise InvalidConfigError(
                f"sample_rate_hz: expected one of {SUPPORTED_SAMPLE_RATES_HZ}, got "
                f"{self.sample_rate_hz!r}"
            )

    def threshold_for(self, model: WakeWordModel) -> float:
        """The score at which ``model`` detects under this sensitivity."""
        p = min(max(model.threshold, 1e-6), 1 - 1e-6)
        logit = math.log(p / (1 - p)) + (0.5 - self.sensitivity) * 6.0
        return 1.0 / (1.0 + math.exp(-logit))


@dataclass(frozen=True)
class WakeWordDetection:
    """A wake word heard between ``start_s`` and ``end_s`` (seconds from stream start).

    ``end_s`` is when the detector fired (the end of the window that scored);
    ``start_s`` is that minus the model's typical phrase duration.
    """

    phrase: str
    start_s: float
    end_s: float
    score: float

    def to_json(self) -> dict[str, Any]:
        """``{"phrase", "start_s", "end_s", "score"}``, times rounded to milliseconds."""
        return {
            "phrase": self.phrase,
            "start_s": round(self.start_s, 3),
            "end_s": round(self.end_s, 3),
            "score": round(self.score, 4),
        }


@dataclass(frozen=True)
class WakeWordResult:
    """Detections in a clip, the per-hop scores (hops x models), and the time it took."""

    detections: list[WakeWordDetection]
    scores: NDArray[np.float32]
    phrases: tuple[str, ...]
    duration_s: float
    latency_ms: float

    def to_json(self) -> dict[str, Any]:
        """The CLI's ``--json`` document (without the scores)."""
        return {
            "detections": [d.to_json() for d in self.detections],
            "phrases": list(self.phrases),
            "duration_s": round(self.duration_s, 3),
            "latency_ms": round(self.latency_ms, 3),
        }


def _as_float32(samples: object, name: str) -> NDArray[np.float32]:
    if isinstance(samples, np.ndarray) and samples.dtype == np.int16 and samples.ndim == 1:
        return int16_to_float32(samples)
    if not isinstance(samples, np.ndarray) or samples.dtype != np.float32 or samples.ndim != 1:
        got = (
            f"{samples.dtype} of shape {samples.shape}"
            if isinstance(samples, np.ndarray)
            else type(samples).__name__
        )
        raise InvalidAudioError(f"{name}: expected mono float32 or int16 samples, got {got}")
    if samples.size and not math.isfinite(float(samples.sum())):
        raise InvalidAudioError(f"{name}: expected finite samples, got NaN or infinity")
    return samples


def _resolve(spec: str | Path, registry: ModelRegistry | None) -> WakeWordModel:
    if isinstance(spec, Path):
        return WakeWordModel.load(spec)
    if "/" in spec or spec.endswith(".onnx"):
        return WakeWordModel.load(Path(spec))
    return WakeWordModel.load((registry or default_registry()).path(spec))


class WakeWordDetector:
    """Streaming wake-word detection over one shared log-mel stream.

    :meth:`push` chunks of any size (returns the detections they completed),
    :meth:`flush` at the end, :meth:`reset` between streams; :meth:`detect` runs a
    whole clip at any supported rate. One instance serves one stream from one thread;
    the sessions underneath are shared.
    """

    def __init__(
        self,
        options: WakeWordOptions | None = None,
        *,
        sessions: SessionManager | None = None,
        registry: ModelRegistry | None = None,
    ) -> None:
        """Load every model ``options.models`` names (sessions once per process)."""
        self.options = options or WakeWordOptions()
        self.models = [_resolve(m, registry) for m in self.options.models]
        manager = sessions or default_session_manager()
        self._window = max(m.window_frames for m in self.models)
        self._loaded: list[LoadedModel] = []
        self._feeds: list[NDArray[np.float32]] = []
        for model in self.models:
            feed = np.full(
                (1, FEATURE_OPTIONS.n_mels, model.window_frames), _SILENCE_DB, np.float32
            )
            loaded = manager.load(model.path, warmup_feed={"features": feed})
            if loaded.input_names != ["features"]:
                raise ModelError(
                    f"{model.path}: expected one input 'features', got {loaded.input_names}"
                )
            self._loaded.append(loaded)
            self._feeds.append(feed)
        self.thresholds = [self.options.threshold_for(m) for m in self.models]
        self._logmel = LogMel(FEATURE_OPTIONS)
        self._resampler = (
            None
            if self.options.sample_rate_hz == WAKE_SAMPLE_RATE_HZ
            else Resampler(self.options.sample_rate_hz, WAKE_SAMPLE_RATE_HZ)
        )
        # The ring holds twice the window so that the window is always one slice.
        self._ring = np.empty((FEATURE_OPTIONS.n_mels, 2 * self._window), np.float32)
        self.reset()

    @property
    def phrases(self) -> tuple[str, ...]:
        """The phrases of the loaded models, in order."""
        return tuple(m.phrase for m in self.models)

    def reset(self) -> None:
        """Start a new stream: clear the features, the timers and the resampler."""
        self._logmel.reset()
        if self._resampler is not None:
            self._resampler.reset()
        self._ring.fill(_SILENCE_DB)
        self._ring_end = self._window  # frames [end - window, end) are the window
        self._n_frames = 0
        self._since_hop = 0
        self._blocked_until = [-math.inf] * len(self.models)
        self._scores: list[list[float]] = []

    def _append(self, frames: NDArray[np.float32]) -> None:
        k = frames.shape[1]
        if self._ring_end + k > self._ring.shape[1]:
            keep = self._window - min(k, self._window)
            self._ring[:, :keep] = self._ring[:, self._ring_end - keep : self._ring_end]
            self._ring_end = keep
        self._ring[:, self._ring_end : self._ring_end + k] = frames[:, -self._window :]
        self._ring_end += min(k, self._window)

    def _score_window(self) -> list[WakeWordDetection]:
        # Time of the end of the newest frame (frames are not centred).
        end_s = (
            (self._n_frames - 1) * FEATURE_OPTIONS.hop_length + FEATURE_OPTIONS.n_fft
        ) / WAKE_SAMPLE_RATE_HZ
        found: list[WakeWordDetection] = []
        row: list[float] = []
        for i, (model, loaded, feed) in enumerate(
            zip(self.models, self._loaded, self._feeds, strict=True)
        ):
            w = model.window_frames
            feed[0] = self._ring[:, self._ring_end - w : self._ring_end]
            score = float(loaded.session.run(None, {"features": feed})[0].reshape(-1)[0])
            row.append(score)
            if score >= self.thresholds[i] and end_s >= self._blocked_until[i]:
                self._blocked_until[i] = end_s + self.options.refractory_s
                found.append(
                    WakeWordDetection(model.phrase, max(end_s - model.phrase_s, 0.0), end_s, score)
                )
        self._scores.append(row)
        return found

    def _consume(self, frames: NDArray[np.float32]) -> list[WakeWordDetection]:
        found: list[WakeWordDetection] = []
        start = 0
        total = frames.shape[1]
        while start < total:
            take = min(_HOP_FRAMES - self._since_hop, total - start)
            self._append(frames[:, start : start + take])
            self._n_frames += take
            self._since_hop += take
            start += take
            if self._since_hop == _HOP_FRAMES:
                self._since_hop = 0
                found += self._score_window()
        return found

    def push(self, samples: NDArray[np.float32] | NDArray[np.int16]) -> list[WakeWordDetection]:
        """Feed audio at ``options.sample_rate_hz``; return the detections it completed."""
        x = _as_float32(samples, "samples")
        if self._resampler is not None:
            x = self._resampler.push(x)
        return self._consume(self._logmel.push(x))

    def flush(self) -> list[WakeWordDetection]:
        """End the stream: score the last partial hop, then reset."""
        found: list[WakeWordDetection] = []
        if self._resampler is not None:
            found += self._consume(self._logmel.push(self._resampler.flush()))
        found += self._consume(self._logmel.flush())
        if self._since_hop:
            self._since_hop = 0
            found += self._score_window()
        self._logmel.reset()
        return found

    def detect(
        self, samples: NDArray[np.float32] | NDArray[np.int16], sample_rate_hz: int
    ) -> WakeWordResult:
        """Detections in a whole clip at any supported rate (resets the stream first)."""
        x = _as_float32(samples, "samples")
        if sample_rate_hz not in SUPPORTED_SAMPLE_RATES_HZ:
            raise InvalidAudioError(
                f"sample_rate_hz: expected one of {SUPPORTED_SAMPLE_RATES_HZ}, got "
                f"{sample_rate_hz!r}"
            )
        if sample_rate_hz != WAKE_SAMPLE_RATE_HZ:
            x = resample(x, sample_rate_hz, WAKE_SAMPLE_RATE_HZ)
        resampler, self._resampler = self._resampler, None
        try:
            self.reset()
            t0 = time.perf_counter()
            detections = self.push(x) + self.flush()
            latency_ms = (time.perf_counter() - t0) * 1000.0
            scores = np.asarray(self._scores, np.float32).reshape(-1, len(self.models))
        finally:
            self._resampler = resampler
            self.reset()
        return WakeWordResult(
            detections, scores, self.phrases, x.size / WAKE_SAMPLE_RATE_HZ, latency_ms
        )


@dataclass(frozen=True)
class EndpointOptions:
    """When a command after a wake word ends.

    It ends after ``trailing_silence_ms`` without speech once speech has started, at
    ``max_command_s`` in any case, or at ``no_speech_timeout_s`` when nobody speaks.
    ``vad_threshold`` is silero's speech probability threshold.
    """

    trailing_silence_ms: float = 700.0
    max_command_s: float = 8.0
    no_speech_timeout_s: float = 3.0
    vad_threshold: float = 0.5

    def __post_init__(self) -> None:
        for name in ("trailing_silence_ms", "max_command_s", "no_speech_timeout_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise InvalidConfigError(f"{name}: expected a finite number > 0, got {value!r}")
        if not 0.0 < self.vad_threshold < 1.0:
            raise InvalidConfigError(
                f"vad_threshold: expected a value in (0, 1), got {self.vad_threshold!r}"
            )


EndReason = Literal["silence", "max_length", "no_speech", "end_of_stream"]


@dataclass(frozen=True)
class Command:
    """The audio after a wake word, up to the end that endpointing found.

    ``audio`` is 16 kHz float32 from ``start_s`` (the wake word's end) to ``end_s``;
    ``speech`` says whether the VAD heard any speech in it.
    """

    wake: WakeWordDetection
    start_s: float
    end_s: float
    audio: NDArray[np.float32]
    reason: EndReason
    speech: bool

    def to_json(self) -> dict[str, Any]:
        """Times, reason and the wake word; not the audio."""
        return {
            "phrase": self.wake.phrase,
            "start_s": round(self.start_s, 3),
            "end_s": round(self.end_s, 3),
            "reason": self.reason,
            "speech": self.speech,
        }


class WakeWordListener:
    """Wake word, then the command: :meth:`push` returns each command as it ends.

    Between commands only the wake-word detector runs; after a detection the audio goes
    to silero VAD (32 ms chunks) until one of :class:`EndpointOptions`' conditions ends
    the command. Audio is 16 kHz (``detector.options.sample_rate_hz`` must be 16 kHz).
    """

    def __init__(
        self,
        detector: WakeWordDetector,
        vad: Any,
        options: EndpointOptions | None = None,
    ) -> None:
        """``vad`` is a :class:`~glasses_sdk.inference.vad.VoiceActivityDetector`."""
        if detector.options.sample_rate_hz != WAKE_SAMPLE_RATE_HZ:
            raise InvalidConfigError("WakeWordListener: the detector must take 16 kHz audio")
        from glasses_sdk.inference.vad import VAD_CHUNK_SAMPLES

        self.detector = detector
        self.vad = vad
        self.options = options or EndpointOptions()
        self._chunk = VAD_CHUNK_SAMPLES
        self.reset()

    def reset(self) -> None:
        """Start a new stream."""
        self.detector.reset()
        self.vad.reset()
        self._position = 0  # 16 kHz samples seen
        self._wake: WakeWordDetection | None = None
        self._command: list[NDArray[np.float32]] = []
        self._command_len = 0
        self._speech = False
        self._silence = 0
        self._pending = np.zeros(0, np.float32)

    def _finish(self, reason: EndReason) -> Command:
        assert self._wake is not None
        audio = np.concatenate(self._command) if self._command else np.zeros(0, np.float32)
        start_s = self._wake.end_s
        command = Command(
            self._wake, start_s, start_s + audio.size / WAKE_SAMPLE_RATE_HZ, audio, reason,
            self._speech,
        )  # fmt: skip
        self._wake = None
        self._command, self._command_len = [], 0
        self._speech, self._silence = False, 0
        self.detector.reset()
        return command

    def _listen(self, x: NDArray[np.float32]) -> tuple[Command | None, NDArray[np.float32]]:
        """Feed the command's audio; return a finished command and the audio left over."""
        opts = self.options
        rate = WAKE_SAMPLE_RATE_HZ
        buf = np.concatenate((self._pending, x)) if self._pending.size else x
        i = 0
        while i + self._chunk <= buf.size:
            chunk = buf[i : i + self._chunk]
            i += self._chunk
            self._command.append(chunk.copy())
            self._command_len += chunk.size
            if self.vad.process(chunk) >= opts.vad_threshold:
                self._speech, self._silence = True, 0
            else:
                self._silence += chunk.size
            length_s = self._command_len / rate
            reason: EndReason | None = None
            if self._speech and self._silence >= opts.trailing_silence_ms * rate / 1000:
                reason = "silence"
            elif length_s >= opts.max_command_s:
                reason = "max_length"
            elif not self._speech and length_s >= opts.no_speech_timeout_s:
                reason = "no_speech"
            if reason is not None:
                self._pending = np.zeros(0, np.float32)
                return self._finish(reason), buf[i:]
        self._pending = buf[i:].copy()
        return None, np.zeros(0, np.float32)

    def push(self, samples: NDArray[np.float32] | NDArray[np.int16]) -> list[Command]:
        """Feed 16 kHz audio; return the commands that ended in it."""
        x = _as_float32(samples, "samples")
        done: list[Command] = []
        while x.size:
            if self._wake is None:
                # Feed the detector a hop at a time so a wake word splits the audio there.
                take = min(HOP_SAMPLES, x.size)
                found = self.detector.push(x[:take])
                self._position += take
                x = x[take:]
                if found:
                    self._wake = found[0]
                    self.vad.reset()
            else:
                command, x = self._listen(x)
                if command is not None:
                    done.append(command)
        return done

    def flush(self) -> list[Command]:
        """End the stream: a command still open ends with reason ``end_of_stream``."""
        if self._wake is None:
            self.detector.flush()
            return []
        if self._pending.size:
            self._command.append(self._pending)
            self._pending = np.zeros(0, np.float32)
        return [self._finish("end_of_stream")]


def load_models(specs: Sequence[str | Path]) -> list[WakeWordModel]:
    """The models named by registry names or folders (for listings and the CLI)."""
    return [_resolve(s, None) for s in specs]
