"""Sentence embeddings: all-MiniLM-L6-v2 on onnxruntime, 384-dimensional unit vectors.

Texts are tokenized with Hugging Face ``tokenizers`` from the package's own
``tokenizer.json``, with its padding turned off: that file pads every input to 128
tokens, which made short sentences about 6× slower (DESIGN.md). A batch is instead
padded to its longest text; texts are sorted by length first and run in chunks of
``max_batch_size``, so that one long text does not pad all the others. The graph ends
in mean pooling under the attention mask (sentence-transformers' pooling for this
model); the vectors are L2-normalized here.

One :class:`SentenceEmbedder` may be shared by threads: the tokenizer and the session
are both safe to call concurrently, and no buffer is reused between calls.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from glasses_sdk._exceptions import (
    ChecksumMismatchError,
    DataNotFoundError,
    InvalidConfigError,
    InvalidInputError,
    MissingDependencyError,
    ModelNotBuiltError,
)
from glasses_sdk._sources import locate_package
from glasses_sdk.inference._registry import ModelRegistry, default_registry
from glasses_sdk.inference._session import SessionManager, default_session_manager

__all__ = [
    "EmbeddingResult",
    "SentenceEmbedder",
    "SentenceEmbedderOptions",
    "cosine_similarity",
]

MODEL = "minilm-l6"
_MAX_POSITIONS = 512  # the model's position table; max_seq_length is 256


@dataclass(frozen=True)
class SentenceEmbedderOptions:
    """Which variant, how long a text may be, how texts are grouped into model calls.

    ``max_tokens`` (special tokens included) truncates longer texts: 256 is what the
    model was trained with (``sentence_bert_config.json``). ``max_batch_size`` texts at
    most go into one ``session.run``.
    """

    variant: str | None = None
    max_tokens: int = 256
    max_batch_size: int = 32
    normalize: bool = True

    def __post_init__(self) -> None:
        if not 3 <= self.max_tokens <= _MAX_POSITIONS:
            raise InvalidConfigError(
                f"max_tokens: expected 3 to {_MAX_POSITIONS}, got {self.max_tokens!r}"
            )
        if self.max_batch_size < 1:
            raise InvalidConfigError(f"max_batch_size: expected >= 1, got {self.max_batch_size!r}")


@dataclass(frozen=True)
class EmbeddingResult:
    """One vector per input text, in input order, and what it cost."""

    vectors: NDArray[np.float32]
    """``(N, dimensions)`` float32; unit length when the options normalize."""
    token_counts: tuple[int, ...]
    """Tokens each text became, special tokens included, after truncation."""
    latency_ms: float

    @property
    def total_tokens(self) -> int:
        """All tokens of the call (the ``usage`` an OpenAI-style API reports)."""
        return sum(self.token_counts)

    def to_json(self) -> dict[str, Any]:
        """Plain lists for reports."""
        return {
            "embeddings": self.vectors.tolist(),
            "token_counts": list(self.token_counts),
            "latency_ms": round(self.latency_ms, 3),
        }


def cosine_similarity(a: NDArray[np.floating[Any]], b: NDArray[np.floating[Any]]) -> float:
    """The cosine of the angle between two vectors."""
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    denominator = float(np.linalg.norm(x) * np.linalg.norm(y))
    return float(x @ y) / denominator if denominator > 0 else 0.0


def _load_tokenizer(path: Path, max_tokens: int) -> Any:
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise MissingDependencyError("tokenizers", "cloud") from None
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_tokens)
    return tokenizer


class SentenceEmbedder:
    """all-MiniLM-L6-v2: ``embed(texts)`` → :class:`EmbeddingResult`."""

    def __init__(
        self,
        options: SentenceEmbedderOptions | None = None,
        *,
        sessions: SessionManager | None = None,
        registry: ModelRegistry | None = None,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
    ) -> None:
        """Load the model (once per process) and the tokenizer of its source package."""
        self.options = options or SentenceEmbedderOptions()
        registry = registry or default_registry()
        spec = registry.get(MODEL)
        path = model_path or registry.path(MODEL, self.options.variant)
        self.dimensions = int(spec.input.get("dimensions", 384))
        if tokenizer_path is None:
            try:
                folder = locate_package(spec.module)
            except DataNotFoundError as exc:
                raise ModelNotBuiltError(
                    f"the tokenizer of {MODEL!r} comes with package {spec.package!r}: {exc}"
                ) from exc
            tokenizer_path = folder / str(spec.input.get("tokenizer", "model/tokenizer.json"))
            expected = spec.input.get("tokenizer_sha256")
            if expected is not None:
                from glasses_sdk.inference._build import sha256_of

                actual = sha256_of(tokenizer_path)
                if actual != expected:
                    raise ChecksumMismatchError(str(tokenizer_path), str(expected), actual)
        self._tokenizer = _load_tokenizer(tokenizer_path, self.options.max_tokens)
        warmup = {
            "input_ids": np.array([[101, 7592, 102]], dtype=np.int64),
            "attention_mask": np.ones((1, 3), dtype=np.int64),
        }
        self.model = (sessions or default_session_manager()).load(path, warmup)

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """The token ids of each text (special tokens included, truncated)."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise InvalidInputError("texts: expected a sequence of str")
        return [list(e.ids) for e in self._tokenizer.encode_batch(list(texts))]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """How many tokens each text becomes."""
        return [len(ids) for ids in self.tokenize(texts)]

    def _run(self, batch: Sequence[Sequence[int]]) -> NDArray[np.float32]:
        longest = max(len(ids) for ids in batch)
        input_ids = np.zeros((len(batch), longest), dtype=np.int64)
        mask = np.zeros((len(batch), longest), dtype=np.int64)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1
        (pooled,) = self.model.session.run(
            ["embeddings"], {"input_ids": input_ids, "attention_mask": mask}
        )
        return np.asarray(pooled, dtype=np.float32)

    def embed(self, texts: Sequence[str]) -> EmbeddingResult:
        """One vector per text; texts of similar length share a model call."""
        start = time.perf_counter()
        ids = self.tokenize(texts)
        vectors = np.zeros((len(ids), self.dimensions), dtype=np.float32)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        size = self.options.max_batch_size
        for first in range(0, len(order), size):
            chosen = order[first : first + size]
            vectors[chosen] = self._run([ids[i] for i in chosen])
        if self.options.normalize and len(ids):
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors /= np.maximum(norms, 1e-12)
        return EmbeddingResult(
            vectors=vectors,
            token_counts=tuple(len(i) for i in ids),
            latency_ms=(time.perf_counter() - start) * 1e3,
        )

    def embed_one(self, text: str) -> NDArray[np.float32]:
        """The vector of one text, ``(dimensions,)``."""
        vector: NDArray[np.float32] = self.embed([text]).vectors[0]
        return vector
