"""On-device inference: the model registry and build, onnxruntime sessions, and the tasks.

Models are declared in ``models/manifest.toml`` (:class:`ModelRegistry`), built from
their pinned packages by :func:`build_models` (``glasses models build``), and run
through one shared onnxruntime session per file (:class:`SessionManager`). The tasks:

- :class:`VoiceActivityDetector` (silero VAD): speech segments, streaming;
- :class:`FaceDetector` (BlazeFace) and :func:`blur_faces`: faces, and the privacy blur;
- :class:`TextReader` (PP-OCR): lines of text with their polygons;
- :class:`WakeWordDetector` (trained here): wake words in a stream, and the command
  that follows, ended by the VAD (:class:`WakeWordListener`);
- :class:`SentenceEmbedder` (MiniLM): sentence embeddings, for the cloud server.
"""

from __future__ import annotations

from glasses_sdk.inference._build import BuildRecord, build_models
from glasses_sdk.inference._registry import (
    ModelRegistry,
    ModelSpec,
    VariantSpec,
    built_dir,
    default_registry,
)
from glasses_sdk.inference._session import (
    LoadedModel,
    SessionConfig,
    SessionManager,
    default_session_manager,
)
from glasses_sdk.inference.embeddings import (
    EmbeddingResult,
    SentenceEmbedder,
    SentenceEmbedderOptions,
)
from glasses_sdk.inference.faces import (
    Face,
    FaceDetectionResult,
    FaceDetector,
    FaceDetectorOptions,
    RunningMode,
    blur_faces,
)
from glasses_sdk.inference.ocr import (
    TextLine,
    TextReader,
    TextReaderOptions,
    TextReadResult,
)
from glasses_sdk.inference.vad import (
    SpeechSegment,
    VadOptions,
    VadResult,
    VoiceActivityDetector,
)
from glasses_sdk.inference.wakeword import (
    Command,
    EndpointOptions,
    WakeWordDetection,
    WakeWordDetector,
    WakeWordListener,
    WakeWordModel,
    WakeWordOptions,
    WakeWordResult,
)

__all__ = [
    "BuildRecord",
    "Command",
    "EmbeddingResult",
    "EndpointOptions",
    "Face",
    "FaceDetectionResult",
    "FaceDetector",
    "FaceDetectorOptions",
    "LoadedModel",
    "ModelRegistry",
    "ModelSpec",
    "RunningMode",
    "SentenceEmbedder",
    "SentenceEmbedderOptions",
    "SessionConfig",
    "SessionManager",
    "SpeechSegment",
    "TextLine",
    "TextReadResult",
    "TextReader",
    "TextReaderOptions",
    "VadOptions",
    "VadResult",
    "VariantSpec",
    "VoiceActivityDetector",
    "WakeWordDetection",
    "WakeWordDetector",
    "WakeWordListener",
    "WakeWordModel",
    "WakeWordOptions",
    "WakeWordResult",
    "blur_faces",
    "build_models",
    "built_dir",
    "default_registry",
    "default_session_manager",
]
