"""The real models behind a real server, called with the official ``openai`` client:
speech synthesized by espeak-ng through pocketsphinx, BlazeFace on a real photo, and chat
forwarded to a fake OpenAI-compatible upstream server that this test starts."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from glasses_sdk import data
from glasses_sdk.cloud import Backends, CloudSettings, create_app, load_backends
from tests.cloud.conftest import auth, fake_backends, make_key, serve, server_settings
from tests.conftest import missing, need_binary, need_data

SPOKEN = "hello world. turn on the kitchen lights. what time is it"


def fake_upstream_app() -> FastAPI:
    """A fake OpenAI-compatible model server: it echoes the conversation's user text."""
    app = FastAPI()
    app.state.requests = []

    @app.post("/v1/chat/completions")
    async def completions(request: Request) -> Any:
        body = await request.json()
        app.state.requests.append({"body": body, "auth": request.headers.get("authorization")})
        texts = []
        for message in body["messages"]:
            content = message["content"]
            if isinstance(content, str):
                texts.append(content)
            else:
                texts += [p["text"] for p in content if p["type"] == "text"]
        reply = "fake upstream heard: " + " | ".join(texts)
        if not body.get("stream"):
            return JSONResponse(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": reply},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
            )

        async def events() -> Any:
            import json

            for word in reply.split(" "):
                chunk = {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": body["model"],
                    "choices": [{"index": 0, "delta": {"content": word + " "}}],
                }
                yield f"data: {json.dumps(chunk)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, FastAPI]]:
    app = fake_upstream_app()
    with serve(app) as url:
        yield f"{url}/v1", app


@pytest.fixture(scope="module")
def backends(module_dir: Path) -> Backends:
    loaded = load_backends(server_settings(module_dir))
    if loaded.transcription is None:
        missing(f"pocketsphinx: {loaded.reasons['transcription']}")
    return loaded


@pytest.fixture(scope="module")
def settings(module_dir: Path, upstream: tuple[str, FastAPI]) -> CloudSettings:
    return server_settings(
        module_dir,
        upstream_base_url=upstream[0],
        upstream_api_key="upstream-secret",
        upstream_model="fake-model",
    )


@pytest.fixture(scope="module")
def base_url(settings: CloudSettings, backends: Backends) -> Iterator[str]:
    with serve(create_app(settings, backends=backends)) as url:
        yield url


@pytest.fixture(scope="module")
def key(settings: CloudSettings) -> str:
    return make_key(settings)


@pytest.fixture(scope="module")
def client(base_url: str, key: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(api_key=key, base_url=f"{base_url}/v1", max_retries=0, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    espeak = need_binary("espeak-ng")
    out = tmp_path_factory.mktemp("speech") / "spoken.wav"
    # The m3 variant is the one pocketsphinx's en-us model recognizes best here.
    subprocess.run(
        [espeak, "-v", "en-us+m3", "-s", "140", "-w", str(out), SPOKEN], check=True, timeout=60
    )
    return out


def _photo_data_url() -> str:
    path = need_data(lambda: data.photo_path("astronaut"))
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def test_transcription_json_with_the_openai_client(client: openai.OpenAI, speech_wav: Path) -> None:
    with speech_wav.open("rb") as f:
        result = client.audio.transcriptions.create(model="pocketsphinx", file=f)
    words = result.text.lower().split()
    assert "hello" in words and "world" in words, result.text


def test_transcription_text_and_verbose_json(client: openai.OpenAI, speech_wav: Path) -> None:
    with speech_wav.open("rb") as f:
        text = client.audio.transcriptions.create(
            model="pocketsphinx", file=f, response_format="text"
        )
    assert "hello" in str(text).lower()
    with speech_wav.open("rb") as f:
        verbose = client.audio.transcriptions.create(
            model="pocketsphinx",
            file=f,
            response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
        )
    assert 3.0 < verbose.duration < 4.5
    assert verbose.segments, verbose
    starts = [s.start for s in verbose.segments]
    assert starts == sorted(starts)
    assert all(0 <= s.start < s.end <= verbose.duration + 0.05 for s in verbose.segments)
    assert " ".join(s.text for s in verbose.segments) == verbose.text
    assert verbose.words and verbose.words[0].word == "hello"


def test_models_lists_the_loaded_backends(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert "transcription:pocketsphinx" in ids
    assert "upstream:fake-model" in ids


def test_bad_response_format_is_an_openai_error(client: openai.OpenAI, speech_wav: Path) -> None:
    with speech_wav.open("rb") as f, pytest.raises(openai.BadRequestError) as info:
        client.audio.transcriptions.create(
            model="pocketsphinx",
            file=f,
            response_format="diff",  # type: ignore[arg-type]
        )
    assert "response_format" in str(info.value)


def test_chat_is_forwarded_with_image_context(
    client: openai.OpenAI, upstream: tuple[str, FastAPI]
) -> None:
    result = client.chat.completions.create(
        model="whatever-the-client-says",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "who is in this photo?"},
                    {"type": "image_url", "image_url": {"url": _photo_data_url()}},
                ],
            }
        ],
    )
    answer = result.choices[0].message.content or ""
    assert answer.startswith("fake upstream heard: who is in this photo?")
    assert "[image 1: 1 face detected" in answer
    last = upstream[1].state.requests[-1]
    assert last["auth"] == "Bearer upstream-secret"
    assert last["body"]["model"] == "fake-model"


def test_chat_streaming_is_passed_through(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "say something"}], stream=True
    )
    pieces = [chunk.choices[0].delta.content or "" for chunk in stream]
    assert len(pieces) > 3
    assert "".join(pieces).strip() == "fake upstream heard: say something"


def test_remote_image_urls_are_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="m",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "http://127.0.0.1:9/x.png"}}
                    ],
                }
            ],
        )
    assert "data: URLs" in str(info.value)


def test_faces_on_a_real_photo(base_url: str, key: str, backends: Backends) -> None:
    if backends.faces is None:
        missing(f"faces backend: {backends.reasons.get('faces')}")
    path = need_data(lambda: data.photo_path("astronaut"))
    response = httpx.post(
        f"{base_url}/v1/vision/faces",
        headers=auth(key),
        files={"image": ("astronaut.png", path.read_bytes())},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    document = response.json()
    assert (document["width"], document["height"]) == (512, 512)
    assert len(document["faces"]) == 1
    x0, y0, x1, y1 = document["faces"][0]["box"]
    # The astronaut's face is at about [160, 40, 300, 200].
    assert 130 < x0 < 200 and 20 < y0 < 110 and 250 < x1 < 330 and 150 < y1 < 240


def test_assist_answers_through_the_upstream(base_url: str, key: str, speech_wav: Path) -> None:
    path = need_data(lambda: data.photo_path("astronaut"))
    response = httpx.post(
        f"{base_url}/v1/assist",
        headers=auth(key),
        files={
            "image": ("astronaut.png", path.read_bytes()),
            "audio": ("spoken.wav", speech_wav.read_bytes()),
        },
        timeout=60,
    )
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["answer_source"] == "upstream"
    assert document["answer"].startswith("fake upstream heard:")
    assert "hello" in document["transcript"]
    assert document["faces"] == 1
    assert {"transcription", "decode", "faces", "answer", "total"} <= set(document["latency_ms"])


def test_without_upstream_chat_is_503_naming_the_setting(module_dir: Path) -> None:
    settings = server_settings(module_dir / "no-upstream")
    token = make_key(settings)
    with (
        serve(create_app(settings, backends=fake_backends())) as url,
        openai.OpenAI(api_key=token, base_url=f"{url}/v1", max_retries=0) as c,
    ):
        with pytest.raises(openai.APIStatusError) as info:
            c.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        assert info.value.status_code == 503
        assert "upstream_base_url" in info.value.message
        with pytest.raises(openai.APIStatusError) as embed:
            c.embeddings.create(model="minilm", input="hello")
        assert embed.value.status_code == 503
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(api_key="gsk_wrong", base_url=f"{url}/v1", max_retries=0).models.list()


def test_transcription_deadline_that_cannot_be_met_is_504(
    base_url: str, key: str, speech_wav: Path
) -> None:
    response = httpx.post(
        f"{base_url}/v1/audio/transcriptions",
        headers={**auth(key), "X-Deadline-Ms": "200"},
        files={"file": ("spoken.wav", speech_wav.read_bytes())},
        data={"model": "pocketsphinx"},
        timeout=30,
    )
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "deadline_exceeded"


def test_ocr_reads_a_real_page(base_url: str, key: str, backends: Backends) -> None:
    if backends.ocr is None:
        missing(f"ocr backend: {backends.reasons.get('ocr')}")
    path = need_data(lambda: data.photo_path("page"))
    response = httpx.post(
        f"{base_url}/v1/vision/ocr",
        headers=auth(key),
        files={"image": ("page.png", path.read_bytes())},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    document = response.json()
    assert "markers" in document["text"]
    assert len(document["lines"]) >= 5
    for line in document["lines"]:
        x0, y0, x1, y1 = line["box"]
        assert 0 <= x0 < x1 <= document["width"] + 1 and 0 <= y0 < y1 <= document["height"] + 1


def test_transcription_subtitles(client: openai.OpenAI, speech_wav: Path) -> None:
    with speech_wav.open("rb") as f:
        srt = str(client.audio.transcriptions.create(model="p", file=f, response_format="srt"))
    assert srt.startswith("1\n00:00:0")
    assert " --> " in srt and "hello" in srt
    with speech_wav.open("rb") as f:
        vtt = str(client.audio.transcriptions.create(model="p", file=f, response_format="vtt"))
    assert vtt.startswith("WEBVTT\n\n00:00:0")
