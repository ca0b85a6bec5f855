"""The app factory: :func:`create_app` builds the FastAPI app from settings.

The routes are thin: they decode the upload (limits checked on headers first), hand the
model work to the bounded work queue with the request's deadline, and shape the answer.
Everything that is not a route — keys, limits, the body limit, idempotency, metrics —
is in the gateway (:mod:`glasses_sdk.cloud._gateway`) in front of them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal, ParamSpec, TypeVar, cast

import numpy as np
from fastapi import APIRouter, FastAPI, File, Form, Request, Security, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from glasses_sdk._exceptions import (
    BackendUnavailableError,
    DeadlineExceededError,
    GlassesError,
    InvalidInputError,
    OverloadedError,
)
from glasses_sdk.cloud._backends import (
    Backends,
    EmbeddingBackend,
    FaceBox,
    TextLine,
    Transcript,
    load_backends,
)
from glasses_sdk.cloud._batching import Batcher
from glasses_sdk.cloud._errors import ApiError
from glasses_sdk.cloud._gateway import Gateway
from glasses_sdk.cloud._idempotency import IdempotencyBackend, IdempotencyStore
from glasses_sdk.cloud._keys import ApiKey, KeyStore
from glasses_sdk.cloud._limits import Deadline, RateLimiter, TokenBuckets, WorkQueue
from glasses_sdk.cloud._media import decode_audio, decode_image, image_size
from glasses_sdk.cloud._metrics import CONTENT_TYPE, Metrics
from glasses_sdk.cloud._settings import CloudSettings, load_settings
from glasses_sdk.cloud._state import EmbeddingBatchOut, ServerState
from glasses_sdk.cloud._tracing import install_tracing

__all__ = ["app_from_env", "create_app"]

log = logging.getLogger("glasses_sdk.cloud")
T = TypeVar("T")
P = ParamSpec("P")

_bearer = HTTPBearer(auto_error=False, description="An API key: glasses cloud keys create")
Bearer = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]


# --- request and response models (they make /openapi.json) ----------------------------


class ImageUrl(BaseModel):
    """An image part's URL: only ``data:`` URLs (the server fetches nothing)."""

    model_config = ConfigDict(extra="allow")
    url: str = Field(max_length=50_000_000)


class ContentPart(BaseModel):
    """A message part: ``{"type": "text", "text"}`` or ``{"type": "image_url", ...}``."""

    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None
    image_url: ImageUrl | None = None


class ChatMessage(BaseModel):
    """One message of a conversation."""

    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[ContentPart] | None = None


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat completion request; unknown fields are passed upstream as they are."""

    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False


class EmbeddingRequest(BaseModel):
    """OpenAI's embeddings request (text input; token-id input is not supported)."""

    model_config = ConfigDict(extra="allow")
    model: str
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"
    """``base64``: each vector as little-endian float32 bytes (the openai client's default)."""


Scope = Literal["inference", "metrics", "admin"]


class KeyCreate(BaseModel):
    """A new API key's name, scopes and limits."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    scopes: list[Scope] = Field(default_factory=lambda: list[Scope](["inference"]), min_length=1)
    rate_per_s: float | None = Field(None, gt=0, le=1e6)
    burst: int | None = Field(None, ge=1, le=1_000_000)
    quota_per_day: int | None = Field(None, ge=0, le=10**12)


class FaceOut(BaseModel):
    """One face: box ``[x0, y0, x1, y1]`` in input pixels, score 0..1."""

    box: list[float]
    score: float


class FacesResponse(BaseModel):
    """The faces of one image."""

    faces: list[FaceOut]
    width: int
    height: int
    latency_ms: float
    source: str = "cloud"


class LineOut(BaseModel):
    """One line of text read."""

    text: str
    score: float
    box: list[float]


class OcrResponse(BaseModel):
    """The text of one image."""

    text: str
    lines: list[LineOut]
    width: int
    height: int
    latency_ms: float
    source: str = "cloud"


class AssistResponse(BaseModel):
    """The answer to a question about what the glasses saw and heard."""

    answer: str
    answer_source: Literal["upstream", "perception"]
    question: str | None
    transcript: str | None
    text_read: str | None
    faces: int | None
    unavailable: dict[str, str]
    latency_ms: dict[str, float]
    source: str = "cloud"


# --- helpers ---------------------------------------------------------------------------


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.glasses
    return state


def _deadline(request: Request) -> Deadline:
    deadline: Deadline = getattr(request.state, "deadline", Deadline.none())
    return deadline


async def _run(
    request: Request, task: str, fn: Callable[[Deadline], T], deadline: Deadline | None = None
) -> T:
    state = _state(request)
    deadline = deadline or _deadline(request)

    def timed(d: Deadline) -> T:
        start = time.perf_counter()
        try:
            return fn(d)
        finally:
            state.metrics.model_latency.labels(task).observe(time.perf_counter() - start)

    return await state.queue.run(timed, deadline, task)


async def _read_upload(upload: UploadFile) -> bytes:
    data = await upload.read()
    if not data:
        raise ApiError(400, "invalid_request_error", f"{upload.filename or 'file'} is empty")
    return data


def _admitted(endpoint: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Run a model route's endpoint admitted to model work (503 at once when full), so
    that a shed request costs no decoding. A decorator, not a ``yield`` dependency:
    FastAPI runs those through an exit stack, which cost 0.1 to 0.3 ms a request (measured
    in process with a no-op model: 1.14 against 0.93 ms). FastAPI reads the endpoint's
    signature through ``functools.wraps`` and passes ``request`` by name."""

    @functools.wraps(endpoint)
    async def admitted(*args: P.args, **kwargs: P.kwargs) -> T:
        request = cast(Request, kwargs["request"])
        with _state(request).queue.admit():
            return await endpoint(*args, **kwargs)

    return admitted


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1e3, 3)


async def _detect_faces(
    request: Request, image: NDArray[np.uint8], deadline: Deadline
) -> list[FaceBox]:
    state = _state(request)
    backend = state.backends.need_faces()
    if state.face_batcher is not None:
        return await state.face_batcher.submit(image, deadline)
    faces = await _run(request, "faces", lambda d: backend.detect([image], d)[0], deadline)
    state.metrics.batch_size.labels("faces").observe(1)
    return faces


async def _read_text(
    request: Request, image: NDArray[np.uint8], deadline: Deadline
) -> list[TextLine]:
    backend = _state(request).backends.need_ocr()
    return await _run(request, "ocr", lambda d: backend.read(image, d), deadline)


async def _transcribe(request: Request, data: bytes, deadline: Deadline) -> Transcript:
    state = _state(request)
    backend = state.backends.need_transcription()

    def work(d: Deadline) -> Transcript:
        samples = decode_audio(data, state.settings)
        return backend.transcribe(samples, d)

    return await _run(request, "transcription", work, deadline)


# Images up to this many pixels are decoded on the event loop: a 128×128 JPEG decodes in
# about 0.1 ms (13 ns a pixel on a loaded 2-core machine), less than the hop to a worker
# thread and back costs there (0.5 to 1 ms of wake-ups).
_INLINE_DECODE_PIXELS = 128 * 128


async def _decode_image(request: Request, data: bytes, deadline: Deadline) -> NDArray[np.uint8]:
    settings = _state(request).settings
    width, height = image_size(data)
    if width * height <= _INLINE_DECODE_PIXELS:
        image = decode_image(data, settings)
    else:
        # Decoding a large photo takes tens of ms: off the event loop, but not in the
        # model queue, whose slots are for model calls.
        image = await asyncio.to_thread(decode_image, data, settings)
    deadline.check("image decoding")
    return image


def _upstream(state: ServerState) -> Any:
    if state.settings.upstream_base_url is None or state.http is None:
        raise ApiError(
            503,
            "upstream_not_configured",
            "no upstream model server is configured: set upstream_base_url in the settings "
            "file or GLASSES_CLOUD_UPSTREAM_BASE_URL (an OpenAI-compatible server such as "
            "vLLM, Ollama or llama.cpp)",
            code="upstream_not_configured",
            param="upstream_base_url",
        )
    return state.http


def _upstream_headers(state: ServerState) -> dict[str, str]:
    key = state.settings.upstream_api_key
    return {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {}


def _upstream_timeout(state: ServerState, deadline: Deadline) -> float:
    timeout = state.settings.upstream_timeout_s
    remaining = deadline.remaining_s()
    if remaining is not None:
        if remaining <= 0:
            raise DeadlineExceededError("the request's deadline passed before the upstream call")
        timeout = min(timeout, remaining)
    return timeout


def _upstream_error(status: int, content: bytes) -> ApiError:
    import json

    message = f"the upstream model server answered {status}"
    try:
        detail = json.loads(content)["error"]["message"]
        message += f": {str(detail)[:500]}"
    except (ValueError, KeyError, TypeError):
        pass
    return ApiError(502, "upstream_error", message, code="upstream_error")


def _decode_data_url(url: str) -> bytes:
    if not url.startswith("data:"):
        raise ApiError(
            400,
            "invalid_request_error",
            "image_url: only data: URLs are accepted (this server fetches no remote URL)",
            param="messages",
        )
    header, _, payload = url.partition(",")
    if ";base64" not in header:
        raise ApiError(
            400, "invalid_request_error", "image_url: expected a base64 data: URL", param="messages"
        )
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(
            400, "invalid_request_error", "image_url: the base64 data is corrupt", param="messages"
        ) from None


async def _perceive(
    request: Request, image: NDArray[np.uint8], deadline: Deadline, timings: dict[str, float]
) -> tuple[int | None, str | None, dict[str, str]]:
    """Faces counted and text read in one image, each when its backend exists."""
    state = _state(request)
    unavailable: dict[str, str] = {}
    faces: int | None = None
    text: str | None = None
    if state.backends.faces is not None:
        start = time.perf_counter()
        faces = len(await _detect_faces(request, image, deadline))
        timings["faces"] = timings.get("faces", 0.0) + _ms(start)
    else:
        unavailable["faces"] = state.backends.status()["faces"]["reason"]
    if state.backends.ocr is not None:
        start = time.perf_counter()
        text = " ".join(line.text for line in await _read_text(request, image, deadline))
        timings["ocr"] = timings.get("ocr", 0.0) + _ms(start)
    else:
        unavailable["ocr"] = state.backends.status()["ocr"]["reason"]
    return faces, text, unavailable


def _describe_image(index: int, faces: int | None, text: str | None) -> str:
    parts = []
    if faces is not None:
        parts.append(f"{faces} face{'s' if faces != 1 else ''} detected")
    if text:
        parts.append(f"text read: {text!r}")
    found = "; ".join(parts) if parts else "nothing could be extracted"
    return f"[image {index}: {found}]"


def _transcript_json(t: Transcript, fmt: str, words: bool) -> Response:
    if fmt == "text":
        return PlainTextResponse(t.text + "\n")
    if fmt == "json":
        return JSONResponse({"text": t.text})
    if fmt in ("srt", "vtt"):
        return PlainTextResponse(_subtitles(t, fmt))
    document: dict[str, Any] = {
        "task": "transcribe",
        "language": "english" if t.language == "en" else t.language,
        "duration": round(t.duration_s, 3),
        "text": t.text,
        "segments": [
            {
                "id": i,
                "seek": 0,
                "start": round(s.start_s, 3),
                "end": round(s.end_s, 3),
                "text": s.text,
                "tokens": [],
                "temperature": 0.0,
                "avg_logprob": s.avg_logprob,
                "compression_ratio": 1.0,
                "no_speech_prob": 0.0,
            }
            for i, s in enumerate(t.segments)
        ],
    }
    if words:
        document["words"] = [
            {"word": w.word, "start": round(w.start_s, 3), "end": round(w.end_s, 3)}
            for w in t.words
        ]
    return JSONResponse(document)


def _timestamp(seconds: float, sep: str) -> str:
    ms = round(seconds * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _subtitles(t: Transcript, fmt: str) -> str:
    sep = "," if fmt == "srt" else "."
    lines = ["WEBVTT", ""] if fmt == "vtt" else []
    for i, s in enumerate(t.segments, 1):
        if fmt == "srt":
            lines.append(str(i))
        lines.append(f"{_timestamp(s.start_s, sep)} --> {_timestamp(s.end_s, sep)}")
        lines += [s.text, ""]
    return "\n".join(lines)


# --- routes ----------------------------------------------------------------------------

ops = APIRouter(tags=["operations"])
v1 = APIRouter(prefix="/v1", dependencies=[Security(_bearer)])
admin = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Security(_bearer)])

_RESPONSE_FORMATS = ("json", "text", "verbose_json", "srt", "vtt")


@ops.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers. Needs no key."""
    return {"status": "ok"}


async def _store_status(state: ServerState) -> dict[str, dict[str, Any]]:
    """Each shared store's kind and whether it answers (a store without ``ping`` is local
    to this process and always reachable)."""
    settings = state.settings
    out: dict[str, dict[str, Any]] = {}
    for name, kind, store in (
        ("rate_limit", settings.rate_limit_store, state.buckets),
        ("idempotency", settings.idempotency_store, state.idempotency),
    ):
        ping = getattr(store, "ping", None)
        reachable = True
        if ping is not None:
            try:
                await asyncio.to_thread(ping)
            except Exception as exc:  # the client's own errors: any means "not reachable"
                log.warning("%s store does not answer: %s", name, type(exc).__name__)
                reachable = False
        out[name] = {"store": kind, "reachable": reachable}
    return out


@ops.get("/readyz", dependencies=[Security(_bearer)])
async def readyz(request: Request) -> JSONResponse:
    """Readiness: 200 when every required backend is loaded, 503 otherwise, with details."""
    state = _state(request)
    status = state.backends.status()
    missing: list[str] = [n for n in state.settings.required_backends if not status[n]["ready"]]
    stores = await _store_status(state)
    missing += [f"{name}_store" for name, s in stores.items() if not s["reachable"]]
    document = {
        "ready": not missing,
        "missing": missing,
        "backends": status,
        "stores": stores,
        "upstream": {"configured": state.settings.upstream_base_url is not None},
        "queue": {"depth": state.queue.depth, "threads": state.queue.threads},
    }
    return JSONResponse(document, status_code=503 if missing else 200)


@ops.get("/metrics", dependencies=[Security(_bearer)], response_class=PlainTextResponse)
async def metrics(request: Request) -> Response:
    """Prometheus metrics (needs the ``metrics`` scope)."""
    return Response(_state(request).metrics.render(), media_type=CONTENT_TYPE)


@v1.get("/models", tags=["openai"])
async def models(request: Request) -> dict[str, Any]:
    """OpenAI-compatible list of what this server runs (loaded backends, the upstream)."""
    state = _state(request)
    ids = [
        f"{task}:{info['backend']}"
        for task, info in state.backends.status().items()
        if info["ready"]
    ]
    if state.settings.upstream_base_url is not None:
        ids.append(f"upstream:{state.settings.upstream_model or 'passthrough'}")
    return {
        "object": "list",
        "data": [
            {"id": i, "object": "model", "created": 0, "owned_by": "glasses-sdk"} for i in ids
        ],
    }


@v1.post("/audio/transcriptions", tags=["openai"])
@_admitted
async def transcriptions(
    request: Request,
    *,
    file: Annotated[UploadFile, File(description="WAV, FLAC or Ogg audio")],
    model: Annotated[str, Form()],
    language: Annotated[str | None, Form()] = None,
    prompt: Annotated[str | None, Form()] = None,
    response_format: Annotated[str, Form()] = "json",
    temperature: Annotated[float, Form()] = 0.0,
    timestamp_granularities: Annotated[
        list[str] | None, Form(alias="timestamp_granularities[]")
    ] = None,
) -> Response:
    """OpenAI-compatible speech recognition (default backend: pocketsphinx, en-us)."""
    if response_format not in _RESPONSE_FORMATS:
        raise ApiError(
            400,
            "invalid_request_error",
            f"response_format: expected one of {', '.join(_RESPONSE_FORMATS)}, "
            f"got {response_format!r}",
            param="response_format",
        )
    if language not in (None, "", "en"):
        raise ApiError(
            400,
            "invalid_request_error",
            f"language: this server's recognizer knows only 'en', got {language!r}",
            param="language",
        )
    _state(request).backends.need_transcription()
    data = await _read_upload(file)
    transcript = await _transcribe(request, data, _deadline(request))
    words = "word" in (timestamp_granularities or [])
    return _transcript_json(transcript, response_format, words)


@v1.post("/chat/completions", tags=["openai"], response_model=None)
async def chat_completions(
    request: Request, body: ChatCompletionRequest
) -> JSONResponse | StreamingResponse:
    """OpenAI-compatible chat, forwarded upstream; images become text context first."""
    state = _state(request)
    http = _upstream(state)
    deadline = _deadline(request)
    payload = body.model_dump(exclude_none=True)
    index = 0
    for message in payload["messages"]:
        content = message.get("content")
        if not isinstance(content, list):
            continue
        parts = []
        for part in content:
            if part.get("type") != "image_url":
                parts.append(part)
                continue
            index += 1
            url = (part.get("image_url") or {}).get("url", "")
            image = await _decode_image(request, _decode_data_url(url), deadline)
            faces, text, _ = await _perceive(request, image, deadline, {})
            parts.append({"type": "text", "text": _describe_image(index, faces, text)})
        message["content"] = parts
    if state.settings.upstream_model:
        payload["model"] = state.settings.upstream_model
    url = f"{state.settings.upstream_base_url}/chat/completions"
    timeout = _upstream_timeout(state, deadline)
    headers = _upstream_headers(state)
    import httpx

    try:
        if not body.stream:
            upstream = await http.post(url, json=payload, headers=headers, timeout=timeout)
            if upstream.status_code != 200:
                raise _upstream_error(upstream.status_code, upstream.content)
            return JSONResponse(upstream.json())
        upstream_request = http.build_request(
            "POST", url, json=payload, headers=headers, timeout=timeout
        )
        upstream = await http.send(upstream_request, stream=True)
    except httpx.TimeoutException:
        raise DeadlineExceededError("the upstream model server did not answer in time") from None
    except httpx.HTTPError as exc:
        raise ApiError(
            502,
            "upstream_error",
            f"the upstream model server could not be reached ({type(exc).__name__})",
            code="upstream_unreachable",
        ) from None
    except ValueError:
        raise ApiError(
            502, "upstream_error", "the upstream model server sent invalid JSON"
        ) from None
    if upstream.status_code != 200:
        content = await upstream.aread()
        await upstream.aclose()
        raise _upstream_error(upstream.status_code, content)

    async def relay() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        except httpx.HTTPError:
            log.warning("the upstream stream broke off")
        finally:
            await upstream.aclose()

    return StreamingResponse(
        relay(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


@v1.post("/embeddings", tags=["openai"])
@_admitted
async def embeddings(request: Request, body: EmbeddingRequest) -> JSONResponse:
    """OpenAI-compatible embeddings: all-MiniLM-L6-v2, 384 dimensions, unit length."""
    state = _state(request)
    backend = state.backends.need_embeddings()
    texts = (body.input,) if isinstance(body.input, str) else tuple(body.input)
    if not texts or len(texts) > 2048:
        raise ApiError(
            400, "invalid_request_error", "input: expected 1 to 2048 strings", param="input"
        )
    if state.embedding_batcher is not None:
        vectors, tokens = await state.embedding_batcher.submit(texts, _deadline(request))
    else:
        vectors, tokens = await _run(
            request, "embeddings", lambda d: (backend.embed(texts, d), backend.count_tokens(texts))
        )
        state.metrics.batch_size.labels("embeddings").observe(1)
    data: list[dict[str, Any]] = []
    for i, vector in enumerate(vectors):
        encoded: str | list[float] = (
            base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
            if body.encoding_format == "base64"
            else [float(x) for x in vector]
        )
        data.append({"object": "embedding", "index": i, "embedding": encoded})
    total = int(sum(tokens))
    return JSONResponse(
        {
            "object": "list",
            "model": body.model,
            "data": data,
            "usage": {"prompt_tokens": total, "total_tokens": total},
        }
    )


def _embedding_batch(
    backend: EmbeddingBackend,
) -> Callable[[Sequence[tuple[str, ...]], Deadline], list[EmbeddingBatchOut]]:
    """The batcher's call: the texts of all requests in one ``embed``, split back."""

    def run(requests: Sequence[tuple[str, ...]], deadline: Deadline) -> list[EmbeddingBatchOut]:
        texts = [t for r in requests for t in r]
        vectors = backend.embed(texts, deadline)
        tokens = backend.count_tokens(texts)
        out: list[EmbeddingBatchOut] = []
        start = 0
        for r in requests:
            out.append((vectors[start : start + len(r)], tokens[start : start + len(r)]))
            start += len(r)
        return out

    return run


@v1.post("/vision/faces", tags=["vision"])
@_admitted
async def vision_faces(
    request: Request, image: Annotated[UploadFile, File(description="JPEG or PNG")]
) -> FacesResponse:
    """Faces in a photo (BlazeFace), boxes in the photo's pixels."""
    _state(request).backends.need_faces()
    start = time.perf_counter()
    deadline = _deadline(request)
    frame = await _decode_image(request, await _read_upload(image), deadline)
    faces = await _detect_faces(request, frame, deadline)
    return FacesResponse(
        faces=[FaceOut(box=[round(v, 1) for v in f.box], score=round(f.score, 4)) for f in faces],
        width=frame.shape[1],
        height=frame.shape[0],
        latency_ms=_ms(start),
    )


@v1.post("/vision/ocr", tags=["vision"])
@_admitted
async def vision_ocr(
    request: Request, image: Annotated[UploadFile, File(description="JPEG or PNG")]
) -> OcrResponse:
    """Text in a photo, at full resolution."""
    _state(request).backends.need_ocr()
    start = time.perf_counter()
    deadline = _deadline(request)
    frame = await _decode_image(request, await _read_upload(image), deadline)
    lines = await _read_text(request, frame, deadline)
    return OcrResponse(
        text="\n".join(line.text for line in lines),
        lines=[
            LineOut(text=line.text, score=round(line.score, 4), box=[round(v, 1) for v in line.box])
            for line in lines
        ],
        width=frame.shape[1],
        height=frame.shape[0],
        latency_ms=_ms(start),
    )


@v1.post("/assist", tags=["glasses"])
@_admitted
async def assist(
    request: Request,
    question: Annotated[str | None, Form(max_length=4000)] = None,
    image: Annotated[UploadFile | None, File(description="JPEG or PNG")] = None,
    audio: Annotated[UploadFile | None, File(description="WAV, FLAC or Ogg")] = None,
) -> AssistResponse:
    """Answer a question about a photo and/or speech: from the upstream model when one is
    configured, otherwise from what perception found (``answer_source: "perception"``)."""
    state = _state(request)
    total = time.perf_counter()
    deadline = _deadline(request)
    timings: dict[str, float] = {}
    unavailable: dict[str, str] = {}
    has_image = image is not None and bool(image.filename or image.size)
    has_audio = audio is not None and bool(audio.filename or audio.size)
    if not (question or has_image or has_audio):
        raise ApiError(
            400, "invalid_request_error", "expected a question, an image or audio (or several)"
        )
    transcript: str | None = None
    if has_audio and audio is not None:
        if state.backends.transcription is None:
            unavailable["transcription"] = state.backends.status()["transcription"]["reason"]
        else:
            start = time.perf_counter()
            transcript = (await _transcribe(request, await _read_upload(audio), deadline)).text
            timings["transcription"] = _ms(start)
    faces: int | None = None
    text: str | None = None
    if has_image and image is not None:
        start = time.perf_counter()
        frame = await _decode_image(request, await _read_upload(image), deadline)
        timings["decode"] = _ms(start)
        faces, text, missing = await _perceive(request, frame, deadline, timings)
        unavailable.update(missing)
    ask = question or transcript or ""
    start = time.perf_counter()
    if state.settings.upstream_base_url is not None and state.http is not None:
        answer = await _assist_upstream(
            state, ask=ask, faces=faces, text=text, transcript=transcript, deadline=deadline
        )
        source: Literal["upstream", "perception"] = "upstream"
    else:
        answer = _perception_answer(faces, text, transcript, has_image)
        source = "perception"
    timings["answer"] = _ms(start)
    timings["total"] = _ms(total)
    return AssistResponse(
        answer=answer,
        answer_source=source,
        question=question,
        transcript=transcript,
        text_read=text,
        faces=faces,
        unavailable=unavailable,
        latency_ms=timings,
    )


def _perception_answer(
    faces: int | None, text: str | None, transcript: str | None, has_image: bool
) -> str:
    # Says only what was found: this is not a language model and must not sound like one.
    parts = []
    if transcript is not None:
        parts.append(f"Heard: {transcript!r}." if transcript else "Heard no words.")
    if text is not None:
        parts.append(f"Text read: {text!r}." if text else "No text was read.")
    if faces is not None:
        parts.append(f"Faces seen: {faces}.")
    if has_image and faces is None and text is None:
        parts.append("Nothing could be extracted from the image on this server.")
    if not parts:
        parts.append("No perception result is available for this request.")
    return " ".join(parts)


async def _assist_upstream(
    state: ServerState,
    *,
    ask: str,
    faces: int | None,
    text: str | None,
    transcript: str | None,
    deadline: Deadline,
) -> str:
    import httpx

    context = []
    if transcript is not None:
        context.append(f"The wearer said: {transcript!r}.")
    if faces is not None or text is not None:
        context.append(_describe_image(1, faces, text))
    messages = [
        {
            "role": "system",
            "content": "You answer questions for the wearer of camera glasses, briefly, "
            "using only the context given about what the camera saw and the microphone heard.",
        },
        {"role": "user", "content": "\n".join([*context, ask or "What do you see?"])},
    ]
    payload = {"model": state.settings.upstream_model or "default", "messages": messages}
    url = f"{state.settings.upstream_base_url}/chat/completions"
    try:
        upstream = await state.http.post(
            url,
            json=payload,
            headers=_upstream_headers(state),
            timeout=_upstream_timeout(state, deadline),
        )
    except httpx.TimeoutException:
        raise DeadlineExceededError("the upstream model server did not answer in time") from None
    except httpx.HTTPError as exc:
        raise ApiError(
            502,
            "upstream_error",
            f"the upstream model server could not be reached ({type(exc).__name__})",
            code="upstream_unreachable",
        ) from None
    if upstream.status_code != 200:
        raise _upstream_error(upstream.status_code, upstream.content)
    try:
        return str(upstream.json()["choices"][0]["message"]["content"])
    except (ValueError, KeyError, IndexError, TypeError):
        raise ApiError(
            502, "upstream_error", "the upstream model server's answer has no message"
        ) from None


@admin.get("/keys")
async def list_keys(request: Request) -> dict[str, Any]:
    """Every API key (never a token)."""
    return {"keys": [k.to_json() for k in _state(request).keys.list()]}


@admin.post("/keys", status_code=201)
async def create_key(request: Request, body: KeyCreate) -> dict[str, Any]:
    """A new API key; its token is in this answer only."""
    token, key = _state(request).keys.create(
        body.name,
        body.scopes,
        rate_per_s=body.rate_per_s,
        burst=body.burst,
        quota_per_day=body.quota_per_day,
    )
    return {"token": token, **key.to_json()}


@admin.delete("/keys/{key_id}")
async def revoke_key(request: Request, key_id: str) -> dict[str, Any]:
    """Revoke a key; 404 when no live key has this id."""
    caller: ApiKey = request.state.api_key
    if not _state(request).keys.revoke(key_id):
        raise ApiError(404, "not_found_error", f"no live key has the id {key_id!r}")
    return {"id": key_id, "revoked": True, "by": caller.key_id}


# --- errors ----------------------------------------------------------------------------


def _json_error(error: ApiError) -> Response:
    return Response(
        error.body(), status_code=error.status, media_type="application/json", headers=error.headers
    )


def _install_error_handlers(app: FastAPI, state: ServerState) -> None:
    def reject(reason: str) -> None:
        state.metrics.rejections.labels(reason).inc()

    async def api_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return _json_error(exc)

    async def backend_unavailable(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, BackendUnavailableError)
        reject("backend_unavailable")
        return _json_error(
            ApiError(503, "backend_unavailable", str(exc), code=f"{exc.backend}_unavailable")
        )

    async def deadline(_: Request, exc: Exception) -> Response:
        reject("deadline")
        return _json_error(ApiError(504, "deadline_exceeded", str(exc), code="deadline_exceeded"))

    async def overloaded(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, OverloadedError)
        reject("overloaded")
        retry = str(max(1, round(exc.retry_after_s)))
        return _json_error(
            ApiError(
                503,
                "overloaded_error",
                f"{exc}; retry later",
                code="overloaded",
                headers={"Retry-After": retry},
            )
        )

    async def invalid_input(_: Request, exc: Exception) -> Response:
        reject("invalid_input")
        return _json_error(ApiError(400, "invalid_request_error", str(exc)))

    async def other_glasses_error(_: Request, exc: Exception) -> Response:
        log.error("request failed: %s", exc)
        return _json_error(ApiError(500, "server_error", f"{type(exc).__name__}: {exc}"))

    async def validation(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = []
        for error in exc.errors()[:10]:
            where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
            problems.append(f"{where}: {error.get('msg', 'invalid')}")
        reject("invalid_input")
        param = None
        if exc.errors():
            locs = [str(p) for p in exc.errors()[0].get("loc", ()) if p != "body"]
            param = locs[0] if locs else None
        return _json_error(ApiError(400, "invalid_request_error", "; ".join(problems), param=param))

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        kinds = {404: "not_found_error", 405: "invalid_request_error"}
        return _json_error(
            ApiError(
                exc.status_code,
                kinds.get(exc.status_code, "invalid_request_error"),
                str(exc.detail),
                headers=dict(exc.headers or {}),
            )
        )

    async def unexpected(_: Request, exc: Exception) -> Response:
        # The trace goes to the log (Starlette logs it after this answer); the client
        # gets a fixed message.
        return _json_error(ApiError(500, "server_error", "internal server error"))

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(BackendUnavailableError, backend_unavailable)
    app.add_exception_handler(DeadlineExceededError, deadline)
    app.add_exception_handler(OverloadedError, overloaded)
    app.add_exception_handler(InvalidInputError, invalid_input)
    app.add_exception_handler(GlassesError, other_glasses_error)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


# --- the factory -----------------------------------------------------------------------


def _stores(
    settings: CloudSettings,
    rate_limiter: RateLimiter | None,
    idempotency: IdempotencyBackend | None,
) -> tuple[RateLimiter, IdempotencyBackend]:
    """The stores the settings name, where the caller did not pass its own; the Redis
    ones share one connection pool."""
    client: Any = None
    if rate_limiter is None or idempotency is None:
        wants_redis = (rate_limiter is None and settings.rate_limit_store == "redis") or (
            idempotency is None and settings.idempotency_store == "redis"
        )
        if wants_redis:
            from glasses_sdk.cloud._redis import connect_redis

            client = connect_redis(settings)
    if rate_limiter is None:
        if settings.rate_limit_store == "redis":
            from glasses_sdk.cloud._redis import RedisTokenBuckets

            rate_limiter = RedisTokenBuckets(client, settings.redis_key_prefix)
        else:
            rate_limiter = TokenBuckets()
    if idempotency is None:
        if settings.idempotency_store == "redis":
            from glasses_sdk.cloud._redis import RedisIdempotencyStore

            idempotency = RedisIdempotencyStore(
                client, settings.idempotency_ttl_s, settings.redis_key_prefix
            )
        else:
            idempotency = IdempotencyStore(settings.idempotency_db, settings.idempotency_ttl_s)
    return rate_limiter, idempotency


def create_app(
    settings: CloudSettings | None = None,
    *,
    backends: Backends | None = None,
    rate_limiter: RateLimiter | None = None,
    idempotency: IdempotencyBackend | None = None,
) -> FastAPI:
    """The fallback server's FastAPI app.

    ``settings`` default to :func:`load_settings` (file and environment). ``backends``
    default to :func:`load_backends`, run at start-up; pass your own to plug in other
    models or fakes. The key store opens under ``settings.data_dir``; rate limits and
    idempotency records are kept where ``settings.rate_limit_store`` and
    ``settings.idempotency_store`` say (this process and SQLite by default, Redis when
    several processes or Ray Serve replicas serve one deployment), unless
    ``rate_limiter`` or ``idempotency`` is given.
    """
    settings = settings or load_settings()
    metrics = Metrics()
    batches = settings.batching or (
        settings.embedding_batching and "embeddings" in settings.backends
    )
    per_call = settings.batch_max_size if batches else 1
    queue = WorkQueue(
        settings.model_threads,
        settings.max_queue,
        settings.retry_after_s,
        max_admitted=settings.max_queue + settings.model_threads * per_call,
    )
    metrics.track_queue(lambda: queue.depth)
    limiter, idempotency = _stores(settings, rate_limiter, idempotency)
    state = ServerState(
        settings=settings,
        keys=KeyStore(settings.keys_db),
        idempotency=idempotency,
        queue=queue,
        metrics=metrics,
        buckets=limiter,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        import httpx

        state.backends = (
            backends if backends is not None else await asyncio.to_thread(load_backends, settings)
        )
        for name, reason in state.backends.reasons.items():
            log.warning("backend %s unavailable: %s", name, reason)
        faces = state.backends.faces
        if faces is not None and settings.batching:
            state.face_batcher = Batcher(
                faces.detect,
                queue,
                task="faces",
                max_batch_size=settings.batch_max_size,
                max_wait_ms=settings.batch_max_wait_ms,
                metrics=metrics,
            )
        embedder = state.backends.embeddings
        if embedder is not None and settings.embedding_batching:
            state.embedding_batcher = Batcher(
                _embedding_batch(embedder),
                queue,
                task="embeddings",
                max_batch_size=settings.batch_max_size,
                max_wait_ms=settings.batch_max_wait_ms,
                metrics=metrics,
            )
        if settings.upstream_base_url is not None:
            state.http = httpx.AsyncClient(timeout=settings.upstream_timeout_s)
        try:
            yield
        finally:
            if state.http is not None:
                await state.http.aclose()
            queue.close()
            state.keys.close()
            state.idempotency.close()
            close = getattr(state.buckets, "close", None)
            if close is not None:
                close()
            # Flush the batched spans of this server (a no-op when tracing is off).
            tracing_handle = getattr(app.state, "glasses_tracing", None)
            if tracing_handle is not None:
                tracing_handle.close()

    app = FastAPI(
        title="glasses-sdk cloud fallback",
        version="1",
        summary="The requests too heavy for the glasses: speech, text, faces, chat.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.glasses = state
    app.include_router(ops)
    app.include_router(v1)
    app.include_router(admin)
    _install_error_handlers(app, state)
    state.known_routes = frozenset(
        {"/openapi.json"}
        | {getattr(r, "path", "") for r in (*ops.routes, *v1.routes, *admin.routes)}
    ) - {""}
    app.add_middleware(Gateway, state=state)
    # Added last, so outermost: the server span covers authentication and limits too.
    tracing = install_tracing(app)
    app.state.glasses_tracing = tracing
    return app


def app_from_env() -> FastAPI:
    """:func:`create_app` with settings from ``$GLASSES_CLOUD_CONFIG`` and the environment
    (the factory ``glasses cloud serve --workers N`` gives uvicorn)."""
    return create_app(load_settings())
