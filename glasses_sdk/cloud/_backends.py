"""The model backends behind the routes: four small interfaces, and the default ones.

Each task is one :class:`typing.Protocol` with one method that takes the request's
:class:`~glasses_sdk.cloud.Deadline` (and checks it between chunks of work):

- :class:`Transcriber` — 16 kHz mono float32 → :class:`Transcript` (default:
  :class:`PocketsphinxTranscriber`, pocketsphinx's bundled en-us model);
- :class:`FaceBackend` — a list of BGR images → faces per image (default: BlazeFace from
  :mod:`glasses_sdk.inference`); it takes a list so that the batcher can hand it several;
- :class:`OcrBackend` — one BGR image → text lines (default: PP-OCR from
  :mod:`glasses_sdk.inference`, with a larger detector input than on the device);
- :class:`EmbeddingBackend` — texts → ``(N, D)`` float32 (default:
  :class:`InferenceEmbeddingBackend`, all-MiniLM-L6-v2 in FP32 from
  :mod:`glasses_sdk.inference`); it takes a list so that the batcher can hand it the
  texts of several requests at once.

:func:`load_backends` loads the enabled ones and records, for each one that fails, the
reason (a missing package, a model not built); the server starts anyway and ``/readyz``
reports what is missing. Tests and operators pass their own :class:`Backends`.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import queue
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from glasses_sdk._exceptions import BackendUnavailableError, DeadlineExceededError, GlassesError
from glasses_sdk.cloud._limits import Deadline
from glasses_sdk.cloud._settings import CloudSettings

__all__ = [
    "BACKEND_LOADERS",
    "Backends",
    "EmbeddingBackend",
    "FaceBackend",
    "FaceBox",
    "InferenceEmbeddingBackend",
    "InferenceFaceBackend",
    "InferenceOcrBackend",
    "OcrBackend",
    "PocketsphinxTranscriber",
    "TextLine",
    "Transcriber",
    "Transcript",
    "TranscriptSegment",
    "TranscriptWord",
    "load_backends",
]

SAMPLE_RATE_HZ = 16_000


@dataclass(frozen=True)
class TranscriptWord:
    """One recognized word and its time span in the audio."""

    word: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class TranscriptSegment:
    """A stretch of speech between pauses."""

    start_s: float
    end_s: float
    text: str
    avg_logprob: float = 0.0


@dataclass(frozen=True)
class Transcript:
    """A transcription: the text, its segments and words, and the audio's duration."""

    text: str
    duration_s: float
    language: str = "en"
    segments: tuple[TranscriptSegment, ...] = ()
    words: tuple[TranscriptWord, ...] = ()


@dataclass(frozen=True)
class FaceBox:
    """One face: ``[x0, y0, x1, y1]`` in pixels of the input image, and a 0..1 score."""

    box: tuple[float, float, float, float]
    score: float


@dataclass(frozen=True)
class TextLine:
    """One line of text read, its confidence and its box in pixels of the input image."""

    text: str
    score: float
    box: tuple[float, float, float, float]


@runtime_checkable
class Transcriber(Protocol):
    """Speech to text."""

    name: str

    def transcribe(self, samples: NDArray[np.float32], deadline: Deadline) -> Transcript:
        """Transcribe 16 kHz mono float32 samples in [-1, 1]."""
        ...


@runtime_checkable
class FaceBackend(Protocol):
    """Faces in images; takes several images at once so that calls can be batched."""

    name: str

    def detect(
        self, images: Sequence[NDArray[np.uint8]], deadline: Deadline
    ) -> list[list[FaceBox]]:
        """The faces of each BGR ``uint8`` ``(H, W, 3)`` image, best first."""
        ...


@runtime_checkable
class OcrBackend(Protocol):
    """Text in an image."""

    name: str

    def read(self, image: NDArray[np.uint8], deadline: Deadline) -> list[TextLine]:
        """The text lines of a BGR ``uint8`` ``(H, W, 3)`` image, in reading order."""
        ...


@runtime_checkable
class EmbeddingBackend(Protocol):
    """Sentence embeddings."""

    name: str
    dimensions: int

    def embed(self, texts: Sequence[str], deadline: Deadline) -> NDArray[np.float32]:
        """``(len(texts), dimensions)`` L2-normalized float32 vectors."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """The tokens each text counts for (the ``usage`` of the OpenAI API)."""
        ...


# --- pocketsphinx -------------------------------------------------------------------

_FRAMES_PER_S = 100  # pocketsphinx's default frame rate
_UTTERANCE_SAMPLES = 20 * SAMPLE_RATE_HZ  # decoded whole; the deadline is checked between
_MIN_REAL_TIME_FACTOR = 0.2  # faster than measured here: below this a deadline cannot be met
_PAUSE_S = 0.5  # a silence this long ends a segment
_ALTERNATE = re.compile(r"\(\d+\)$")  # "the(2)": the dictionary's second pronunciation


class PocketsphinxTranscriber:
    """pocketsphinx with its bundled en-us model: about 0.3–0.5× real time on one core.

    A decoder is not thread-safe and takes about 0.4 s and 30 MB to load, so a small pool
    of them is kept, one per concurrent call, created on first need.
    """

    name = "pocketsphinx"

    def __init__(self, max_decoders: int = 2) -> None:
        """Import pocketsphinx and load one decoder (so that a broken install fails here)."""
        try:
            self._module: Any = importlib.import_module("pocketsphinx")
        except ImportError:
            raise BackendUnavailableError(
                "transcription", "pocketsphinx is not installed: pip install pocketsphinx"
            ) from None
        self._pool: queue.Queue[Any] = queue.Queue()
        self._created = 0
        self._max = max_decoders
        self._lock = threading.Lock()
        self._pool.put(self._new_decoder())

    def _new_decoder(self) -> Any:
        with self._lock:
            self._created += 1
        return self._module.Decoder(loglevel="FATAL")

    def _acquire(self) -> Any:
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            can_create = self._created < self._max
        return self._new_decoder() if can_create else self._pool.get()

    def transcribe(self, samples: NDArray[np.float32], deadline: Deadline) -> Transcript:
        """Decode in utterances of up to 20 s, checking the deadline before each.

        Each utterance is decoded whole (``full_utt``): pocketsphinx then normalizes the
        cepstra over the utterance. Fed live in small chunks, a fresh decoder starts from
        its prior mean and misrecognizes the first seconds (measured here on espeak-ng
        speech: "no way to not look you" for "hello world turn on the").
        """
        pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
        duration_s = len(pcm) / SAMPLE_RATE_HZ
        remaining = deadline.remaining_s()
        if remaining is not None and remaining < duration_s * _MIN_REAL_TIME_FACTOR:
            raise DeadlineExceededError(
                f"{duration_s:.1f} s of audio needs at least "
                f"{duration_s * _MIN_REAL_TIME_FACTOR:.2f} s to transcribe; "
                f"the deadline leaves {max(remaining, 0):.2f} s"
            )
        decoder = self._acquire()
        words: list[TranscriptWord] = []
        try:
            for start in range(0, len(pcm), _UTTERANCE_SAMPLES):
                deadline.check("speech recognition")
                offset_s = start / SAMPLE_RATE_HZ
                decoder.start_utt()
                try:
                    decoder.process_raw(
                        pcm[start : start + _UTTERANCE_SAMPLES].tobytes(), False, True
                    )
                finally:
                    decoder.end_utt()
                for seg in decoder.seg():
                    word = _ALTERNATE.sub("", str(seg.word))
                    if word.startswith(("<", "[", "+")):  # <s>, <sil>, [NOISE], ++FILLER++
                        continue
                    words.append(
                        TranscriptWord(
                            word,
                            offset_s + seg.start_frame / _FRAMES_PER_S,
                            offset_s + (seg.end_frame + 1) / _FRAMES_PER_S,
                        )
                    )
        finally:
            self._pool.put(decoder)
        return Transcript(
            text=" ".join(w.word for w in words),
            duration_s=duration_s,
            segments=_segments(words),
            words=tuple(words),
        )


def _segments(words: Sequence[TranscriptWord]) -> tuple[TranscriptSegment, ...]:
    out: list[TranscriptSegment] = []
    group: list[TranscriptWord] = []
    for word in words:
        if group and word.start_s - group[-1].end_s >= _PAUSE_S:
            out.append(_segment(group))
            group = []
        group.append(word)
    if group:
        out.append(_segment(group))
    return tuple(out)


def _segment(words: Sequence[TranscriptWord]) -> TranscriptSegment:
    return TranscriptSegment(words[0].start_s, words[-1].end_s, " ".join(w.word for w in words))


# --- faces (glasses_sdk.inference) ----------------------------------------------------


class InferenceFaceBackend:
    """BlazeFace from :mod:`glasses_sdk.inference`, one detector per model thread.

    The ONNX model has a fixed batch of one, so a batch is run image by image on the
    calling thread; the batcher still saves the queueing and thread hand-offs.
    """

    name = "blazeface"

    def __init__(self, model: Literal["short", "full"] = "short") -> None:
        """Load the model once (raises :class:`BackendUnavailableError` if not built)."""
        try:
            from glasses_sdk.inference import FaceDetector, FaceDetectorOptions
        except ImportError as exc:
            raise BackendUnavailableError("faces", f"glasses_sdk.inference: {exc}") from None
        self._factory: Callable[[], Any] = lambda: FaceDetector(FaceDetectorOptions(model=model))
        self._local = threading.local()
        try:
            self._local.detector = self._factory()
        except GlassesError as exc:
            raise BackendUnavailableError("faces", str(exc)) from None

    def _detector(self) -> Any:
        detector = getattr(self._local, "detector", None)
        if detector is None:
            detector = self._local.detector = self._factory()
        return detector

    def detect(
        self, images: Sequence[NDArray[np.uint8]], deadline: Deadline
    ) -> list[list[FaceBox]]:
        """BlazeFace on each image in turn."""
        detector = self._detector()
        out: list[list[FaceBox]] = []
        for image in images:
            deadline.check("face detection")
            result = detector.detect(image)
            out.append([FaceBox(tuple(f.box), float(f.score)) for f in result.faces])
        return out


class InferenceOcrBackend:
    """PP-OCR from :mod:`glasses_sdk.inference` (:class:`TextReader`), one reader per
    model thread, with a larger detector input than on the device (full resolution up to
    ``max_side_px``). The heavier PP-OCRv5 set where it is built, PP-OCRv4 otherwise;
    ``name`` (``ppocr-v5`` or ``ppocr-v4``, shown by the server's status) says which."""

    name = "ppocr-v4"

    def __init__(self, max_side_px: int = 1280, threads: int = 1) -> None:
        """Load the three models once (raises :class:`BackendUnavailableError` if not
        built); ``threads`` is onnxruntime's intra-op threads of each call."""
        try:
            from glasses_sdk.inference import (
                SessionConfig,
                SessionManager,
                TextReader,
                TextReaderOptions,
            )
        except ImportError as exc:
            raise BackendUnavailableError("ocr", f"glasses_sdk.inference: {exc}") from None
        self._local = threading.local()
        # One manager for this backend: the readers of every model thread share its
        # sessions, which run concurrent calls safely.
        sessions = SessionManager(SessionConfig(intra_op_threads=threads))
        failures = []
        for model_set in ("v5", "v4"):
            options = TextReaderOptions(model_set=model_set, max_side_px=max_side_px)
            try:
                self._local.reader = TextReader(options, sessions=sessions)
            except GlassesError as exc:
                failures.append(f"{model_set}: {exc}")
                continue
            self.name = f"ppocr-{model_set}"
            self._factory: Callable[[], Any] = functools.partial(
                TextReader, options, sessions=sessions
            )
            return
        raise BackendUnavailableError("ocr", "; ".join(failures))

    def read(self, image: NDArray[np.uint8], deadline: Deadline) -> list[TextLine]:
        """The lines of one image, in reading order."""
        reader = getattr(self._local, "reader", None)
        if reader is None:
            reader = self._local.reader = self._factory()
        deadline.check("text reading")
        result = reader.read(image)
        out = []
        for line in result.lines:
            x0, y0, x1, y1 = (float(v) for v in line.box)
            out.append(TextLine(str(line.text), float(line.score), (x0, y0, x1, y1)))
        return out


# --- sentence embeddings (glasses_sdk.inference) --------------------------------------


class InferenceEmbeddingBackend:
    """all-MiniLM-L6-v2 (FP32) from :mod:`glasses_sdk.inference`: one embedder shared by
    the model threads (its tokenizer and session are safe to call concurrently).

    A call of N texts runs them sorted by length in chunks of ``max_batch_size``, each
    padded to its longest: the batcher's concurrent requests become one such call.
    """

    name = "minilm-l6"
    dimensions = 384

    def __init__(self, max_batch_size: int = 64) -> None:
        """Load the model once (raises :class:`BackendUnavailableError` if not built)."""
        try:
            from glasses_sdk.inference.embeddings import (
                SentenceEmbedder,
                SentenceEmbedderOptions,
            )
        except ImportError as exc:
            raise BackendUnavailableError("embeddings", f"glasses_sdk.inference: {exc}") from None
        try:
            self._embedder = SentenceEmbedder(
                SentenceEmbedderOptions(variant="fp32", max_batch_size=max_batch_size)
            )
        except (GlassesError, ImportError) as exc:
            raise BackendUnavailableError("embeddings", str(exc)) from None
        self.dimensions = self._embedder.dimensions

    def embed(self, texts: Sequence[str], deadline: Deadline) -> NDArray[np.float32]:
        """Unit vectors, one per text, in order."""
        deadline.check("sentence embeddings")
        return self._embedder.embed(texts).vectors

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text, special tokens included, after truncation to 256."""
        return self._embedder.count_tokens(texts)


BACKEND_LOADERS: dict[str, Callable[[CloudSettings], object]] = {
    "transcription": lambda s: PocketsphinxTranscriber(max_decoders=s.model_threads),
    "faces": lambda s: InferenceFaceBackend(s.faces_model),
    "ocr": lambda s: InferenceOcrBackend(s.ocr_max_side_px, s.ocr_threads),
    "embeddings": lambda s: InferenceEmbeddingBackend(),
}
"""How each backend is loaded by default; replace an entry to plug in another one."""


@dataclass
class Backends:
    """The loaded backends, and why each missing one is missing."""

    transcription: Transcriber | None = None
    faces: FaceBackend | None = None
    ocr: OcrBackend | None = None
    embeddings: EmbeddingBackend | None = None
    reasons: dict[str, str] = field(default_factory=dict)
    load_ms: dict[str, float] = field(default_factory=dict)

    def _need(self, name: str, value: Any) -> Any:
        if value is None:
            reason = self.reasons.get(name, "not enabled in this server's settings (backends)")
            raise BackendUnavailableError(name, reason)
        return value

    def need_transcription(self) -> Transcriber:
        """The transcriber, or :class:`BackendUnavailableError` with the reason."""
        backend: Transcriber = self._need("transcription", self.transcription)
        return backend

    def need_faces(self) -> FaceBackend:
        """The face backend, or :class:`BackendUnavailableError` with the reason."""
        backend: FaceBackend = self._need("faces", self.faces)
        return backend

    def need_ocr(self) -> OcrBackend:
        """The text reader, or :class:`BackendUnavailableError` with the reason."""
        backend: OcrBackend = self._need("ocr", self.ocr)
        return backend

    def need_embeddings(self) -> EmbeddingBackend:
        """The embedding model, or :class:`BackendUnavailableError` with the reason."""
        backend: EmbeddingBackend = self._need("embeddings", self.embeddings)
        return backend

    def status(self) -> dict[str, dict[str, Any]]:
        """Each backend: ready or not, its name, or the reason it is missing."""
        out: dict[str, dict[str, Any]] = {}
        for name in ("transcription", "faces", "ocr", "embeddings"):
            value = getattr(self, name)
            if value is not None:
                out[name] = {"ready": True, "backend": getattr(value, "name", type(value).__name__)}
            else:
                reason = self.reasons.get(name, "not enabled in this server's settings")
                out[name] = {"ready": False, "reason": reason}
        return out


def load_backends(settings: CloudSettings) -> Backends:
    """Load each enabled backend; a failure is recorded as a reason, never raised."""
    backends = Backends()
    for name in settings.backends:
        start = time.perf_counter()
        try:
            value = BACKEND_LOADERS[name](settings)
        except BackendUnavailableError as exc:
            backends.reasons[name] = exc.reason
            continue
        except (GlassesError, ImportError, OSError, RuntimeError) as exc:
            backends.reasons[name] = f"{type(exc).__name__}: {exc}"
            continue
        setattr(backends, name, value)
        backends.load_ms[name] = (time.perf_counter() - start) * 1e3
    return backends
