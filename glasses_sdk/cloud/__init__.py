"""The cloud fallback server: the FastAPI app that backend teams host (extra ``cloud``).

:func:`create_app` builds it from :class:`CloudSettings` (:func:`load_settings` reads a
TOML file and ``GLASSES_CLOUD_*`` variables). Routes: OpenAI-compatible
``/v1/audio/transcriptions``, ``/v1/chat/completions`` (forwarded to an upstream model
server) and ``/v1/embeddings``; ``/v1/vision/faces``, ``/v1/vision/ocr`` and
``/v1/assist``; ``/healthz``, ``/readyz``, ``/metrics`` and ``/openapi.json``.

API keys (:class:`KeyStore`) are random 256-bit tokens kept as SHA-256 digests, with
scopes, per-key rate limits and daily quotas. Model backends are small protocols
(:class:`Transcriber`, :class:`FaceBackend`, :class:`OcrBackend`,
:class:`EmbeddingBackend`) gathered in :class:`Backends`; one that cannot load leaves
the server running and ``/readyz`` saying why. Rate limits (:class:`RateLimiter`) and
idempotency records (:class:`IdempotencyBackend`) are in-process and SQLite by default;
``create_app(rate_limiter=..., idempotency=...)`` is the seam for a shared store.
"""

from __future__ import annotations

try:
    import fastapi as _fastapi  # noqa: F401
    import prometheus_client as _prometheus_client  # noqa: F401
except ImportError as _exc:  # pragma: no cover - exercised by a test with the import hidden
    from glasses_sdk._exceptions import MissingDependencyError

    raise MissingDependencyError(_exc.name or "fastapi", "cloud") from None

from glasses_sdk.cloud._app import app_from_env, create_app
from glasses_sdk.cloud._backends import (
    BACKEND_LOADERS,
    Backends,
    EmbeddingBackend,
    FaceBackend,
    FaceBox,
    InferenceEmbeddingBackend,
    InferenceFaceBackend,
    InferenceOcrBackend,
    OcrBackend,
    PocketsphinxTranscriber,
    TextLine,
    Transcriber,
    Transcript,
    TranscriptSegment,
    TranscriptWord,
    load_backends,
)
from glasses_sdk.cloud._idempotency import IdempotencyBackend, IdempotencyStore
from glasses_sdk.cloud._keys import SCOPES, ApiKey, KeyStore
from glasses_sdk.cloud._limits import Deadline, RateLimiter, TokenBuckets, WorkQueue
from glasses_sdk.cloud._settings import CloudSettings, load_settings

__all__ = [
    "ApiKey",
    "BACKEND_LOADERS",
    "Backends",
    "CloudSettings",
    "Deadline",
    "EmbeddingBackend",
    "FaceBackend",
    "FaceBox",
    "IdempotencyBackend",
    "IdempotencyStore",
    "InferenceEmbeddingBackend",
    "InferenceFaceBackend",
    "InferenceOcrBackend",
    "KeyStore",
    "OcrBackend",
    "PocketsphinxTranscriber",
    "RateLimiter",
    "SCOPES",
    "TextLine",
    "TokenBuckets",
    "Transcriber",
    "Transcript",
    "TranscriptSegment",
    "TranscriptWord",
    "WorkQueue",
    "app_from_env",
    "create_app",
    "load_backends",
    "load_settings",
]
