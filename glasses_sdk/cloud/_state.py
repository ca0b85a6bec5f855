"""What one running server holds: settings, stores, limits, backends, metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from glasses_sdk.cloud._backends import Backends, FaceBox
from glasses_sdk.cloud._batching import Batcher
from glasses_sdk.cloud._idempotency import IdempotencyBackend
from glasses_sdk.cloud._keys import KeyStore
from glasses_sdk.cloud._limits import RateLimiter, TokenBuckets, WorkQueue
from glasses_sdk.cloud._metrics import Metrics
from glasses_sdk.cloud._settings import CloudSettings

__all__ = ["EmbeddingBatchOut", "ServerState"]

EmbeddingBatchOut = tuple[NDArray[np.float32], list[int]]
"""One embeddings request's answer: its vectors and each text's token count."""


@dataclass
class ServerState:
    """The server's shared state, created by the app factory, opened in its lifespan."""

    settings: CloudSettings
    keys: KeyStore
    idempotency: IdempotencyBackend
    queue: WorkQueue
    metrics: Metrics
    buckets: RateLimiter = field(default_factory=TokenBuckets)
    backends: Backends = field(default_factory=Backends)
    face_batcher: Batcher[Any, list[FaceBox]] | None = None
    embedding_batcher: Batcher[tuple[str, ...], EmbeddingBatchOut] | None = None
    http: Any = None
    """The ``httpx.AsyncClient`` for the upstream model server, open while serving."""
    known_routes: frozenset[str] = frozenset()
