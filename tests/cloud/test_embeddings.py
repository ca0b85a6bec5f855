"""``POST /v1/embeddings`` with the real MiniLM backend behind a real uvicorn server,
called with the official ``openai`` client; batching on and off give the same vectors."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from numpy.typing import NDArray

from glasses_sdk._exceptions import MissingDependencyError
from glasses_sdk.cloud import Backends, Deadline, InferenceEmbeddingBackend, create_app
from glasses_sdk.inference import build_models
from tests.cloud.conftest import auth, make_key, serve, server_settings
from tests.conftest import missing

TEXTS = [
    "Where is the nearest train station?",
    "How do I get to the railway station from here?",
    "The soup needs more salt.",
    "hi",
    "Read the sign above the door, please.",
]


class RecordingEmbeddings:
    """The real backend, recording how many texts each model call got."""

    name = "recording-minilm"

    def __init__(self, real: InferenceEmbeddingBackend) -> None:
        self.real = real
        self.dimensions = real.dimensions
        self.calls: list[int] = []
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str], deadline: Deadline) -> NDArray[np.float32]:
        with self._lock:
            self.calls.append(len(texts))
        return self.real.embed(texts, deadline)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.real.count_tokens(texts)


@pytest.fixture(scope="module")
def minilm() -> InferenceEmbeddingBackend:
    """The server's default embedding backend (MiniLM FP32), built if needed."""
    try:
        build_models(["minilm-l6"])
    except MissingDependencyError as exc:
        missing(f"MiniLM build: {exc}")
    return InferenceEmbeddingBackend()


def _server(
    module_dir: Path, name: str, backend: RecordingEmbeddings, batching: bool
) -> Iterator[tuple[str, str]]:
    settings = server_settings(
        module_dir / name,
        embedding_batching=batching,
        batch_max_size=8,
        batch_max_wait_ms=5.0,
        backends=("embeddings",),
        required_backends=("embeddings",),
        rate_per_s=1e6,
        burst=1_000_000,
    )
    token = make_key(settings)
    with serve(create_app(settings, backends=Backends(embeddings=backend))) as url:
        yield url, token


@pytest.fixture(scope="module")
def batched(
    module_dir: Path, minilm: InferenceEmbeddingBackend
) -> Iterator[tuple[str, str, RecordingEmbeddings]]:
    """A server with embedding batching on (the default)."""
    backend = RecordingEmbeddings(minilm)
    for url, token in _server(module_dir, "on", backend, batching=True):
        yield url, token, backend


@pytest.fixture(scope="module")
def unbatched(
    module_dir: Path, minilm: InferenceEmbeddingBackend
) -> Iterator[tuple[str, str, RecordingEmbeddings]]:
    """The same server with embedding batching off."""
    backend = RecordingEmbeddings(minilm)
    for url, token in _server(module_dir, "off", backend, batching=False):
        yield url, token, backend


def _client(url: str, token: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=token, max_retries=0, timeout=30)


def _local(minilm: InferenceEmbeddingBackend, texts: Sequence[str]) -> NDArray[np.float32]:
    return np.stack([minilm.embed([t], Deadline.none())[0] for t in texts])


def test_openai_client_string_and_list(
    batched: tuple[str, str, RecordingEmbeddings], minilm: InferenceEmbeddingBackend
) -> None:
    url, token, _ = batched
    with _client(url, token) as client:
        one = client.embeddings.create(model="minilm-l6", input=TEXTS[0])
        many = client.embeddings.create(model="minilm-l6", input=TEXTS)
    assert len(one.data) == 1 and len(one.data[0].embedding) == 384
    assert [d.index for d in many.data] == list(range(len(TEXTS)))
    vectors = np.array([d.embedding for d in many.data], dtype=np.float32)
    np.testing.assert_allclose(vectors, _local(minilm, TEXTS), atol=1e-5)
    np.testing.assert_allclose(one.data[0].embedding, vectors[0], atol=1e-5)
    tokens = sum(minilm.count_tokens(TEXTS))
    assert many.usage.prompt_tokens == many.usage.total_tokens == tokens
    assert one.usage.prompt_tokens == minilm.count_tokens(TEXTS[:1])[0]
    # Similar questions are closer than an unrelated sentence.
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3


def test_float_and_base64_encodings_agree(batched: tuple[str, str, RecordingEmbeddings]) -> None:
    url, token, _ = batched
    with _client(url, token) as client:
        floats = client.embeddings.create(model="m", input=TEXTS, encoding_format="float")
        b64 = client.embeddings.create(model="m", input=TEXTS, encoding_format="base64")
    # Asked for explicitly, base64 comes back as the string the server sent (typed as a
    # list of floats by the client).
    for a, b in zip(floats.data, b64.data, strict=True):
        encoded: object = b.embedding
        assert isinstance(encoded, str)
        decoded = np.frombuffer(base64.b64decode(encoded), dtype="<f4")
        np.testing.assert_array_equal(np.asarray(a.embedding, dtype=np.float32), decoded)
    raw = httpx.post(
        f"{url}/v1/embeddings",
        headers=auth(token),
        json={"model": "m", "input": "hi", "encoding_format": "base64"},
    ).json()
    assert isinstance(raw["data"][0]["embedding"], str)


def test_bad_input_is_a_400_in_openai_shape(batched: tuple[str, str, RecordingEmbeddings]) -> None:
    url, token, _ = batched
    with _client(url, token) as client, pytest.raises(openai.BadRequestError) as error:
        client.embeddings.create(model="m", input=[])
    assert "input" in str(error.value)


def _concurrent(url: str, token: str, texts: Sequence[str]) -> NDArray[np.float32]:
    with _client(url, token) as client, ThreadPoolExecutor(16) as pool:
        answers = list(
            pool.map(
                lambda t: client.embeddings.create(model="m", input=t).data[0].embedding, texts
            )
        )
    return np.array(answers, dtype=np.float32)


def test_concurrent_requests_share_model_calls_and_match_single(
    batched: tuple[str, str, RecordingEmbeddings],
    unbatched: tuple[str, str, RecordingEmbeddings],
    minilm: InferenceEmbeddingBackend,
) -> None:
    texts = [f"{TEXTS[i % len(TEXTS)]} ({i})" for i in range(48)]
    reference = _local(minilm, texts)
    url, token, backend = batched
    backend.calls.clear()
    np.testing.assert_allclose(_concurrent(url, token, texts), reference, atol=1e-5)
    assert sum(backend.calls) == len(texts)
    assert max(backend.calls) > 1, backend.calls  # some requests were batched together
    url, token, backend = unbatched
    backend.calls.clear()
    np.testing.assert_allclose(_concurrent(url, token, texts), reference, atol=1e-5)
    assert backend.calls == [1] * len(texts)
