"""The gateway and the routes on a real server with fake models: keys, limits, body
limit, deadlines, idempotency, shedding, tenant isolation, errors, health and metrics."""

from __future__ import annotations

import concurrent.futures
import io
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
import soundfile as sf

from glasses_sdk.cloud import CloudSettings, KeyStore, create_app
from tests.cloud.conftest import FakeFaces, auth, fake_backends, make_key, serve, server_settings

BODY_LIMIT = 150_000
FACE_DELAY_S = 0.3


@pytest.fixture(scope="module")
def faces() -> FakeFaces:
    return FakeFaces(delay_s=FACE_DELAY_S)


@pytest.fixture(scope="module")
def settings(module_dir: Path) -> CloudSettings:
    return server_settings(
        module_dir,
        max_body_bytes=BODY_LIMIT,
        max_image_side_px=1024,
        max_audio_s=2.0,
        rate_per_s=1000.0,
        burst=1000,
        model_threads=1,
        max_queue=1,
        batching=False,
    )


@pytest.fixture(scope="module")
def base_url(settings: CloudSettings, faces: FakeFaces) -> Iterator[str]:
    with serve(create_app(settings, backends=fake_backends(faces))) as url:
        yield url


@pytest.fixture(scope="module")
def key(settings: CloudSettings) -> str:
    return make_key(settings, "inference")


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=10) as c:
        yield c


def _png(width: int = 64, height: int = 48) -> bytes:
    ok, data = cv2.imencode(".png", np.full((height, width, 3), 128, dtype=np.uint8))
    assert ok
    return data.tobytes()


def _wav(seconds: float, rate: int = 16000) -> bytes:
    out = io.BytesIO()
    sf.write(out, np.zeros(int(seconds * rate), np.float32), rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


def _error(response: httpx.Response) -> dict[str, Any]:
    document = response.json()
    assert set(document) == {"error"}, document
    error: dict[str, Any] = document["error"]
    assert isinstance(error["type"], str) and error["type"]
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in response.text
    return error


def _chat_body(size: int) -> bytes:
    """A chat request of exactly ``size`` bytes."""
    empty = json.dumps({"model": "m", "messages": [{"role": "user", "content": ""}]})
    pad = size - len(empty.encode())
    assert pad >= 0
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * pad}]})
    assert len(body.encode()) == size
    return body.encode()


# --- health and auth -------------------------------------------------------------------


def test_healthz_needs_no_key(client: httpx.Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize("path", ["/readyz", "/metrics", "/openapi.json", "/v1/admin/keys"])
def test_every_other_route_needs_a_key(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert _error(response)["code"] == "invalid_api_key"


def test_unknown_malformed_and_revoked_keys_are_refused(
    client: httpx.Client, settings: CloudSettings
) -> None:
    for header in ("Bearer gsk_not-a-key", "Basic abc", "Bearer", "gsk_x"):
        response = client.get("/readyz", headers={"Authorization": header})
        assert response.status_code == 401, header
    with KeyStore(settings.keys_db) as store:
        token, record = store.create("to revoke")
        assert client.get("/readyz", headers=auth(token)).status_code == 200
        assert store.revoke(record.key_id)
    assert client.get("/readyz", headers=auth(token)).status_code == 401


def test_scopes_guard_admin_and_metrics(
    client: httpx.Client, settings: CloudSettings, key: str
) -> None:
    for path in ("/v1/admin/keys", "/metrics"):
        response = client.get(path, headers=auth(key))
        assert response.status_code == 403, path
        assert _error(response)["type"] == "permission_error"
    metrics_key = make_key(settings, "metrics")
    assert client.get("/metrics", headers=auth(metrics_key)).status_code == 200
    assert client.post("/v1/vision/faces", headers=auth(metrics_key)).status_code == 403
    admin = make_key(settings, "admin")
    created = client.post(
        "/v1/admin/keys", headers=auth(admin), json={"name": "made by admin", "burst": 5}
    )
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    assert token.startswith("gsk_") and len(token) >= 40
    listed = client.get("/v1/admin/keys", headers=auth(admin)).json()["keys"]
    assert created.json()["id"] in [k["id"] for k in listed]
    assert all("token" not in k for k in listed)
    assert client.delete(f"/v1/admin/keys/{created.json()['id']}", headers=auth(admin)).json()[
        "revoked"
    ]
    assert client.get("/readyz", headers=auth(token)).status_code == 401
    assert client.delete("/v1/admin/keys/key_nope", headers=auth(admin)).status_code == 404


def test_store_keeps_only_digests(settings: CloudSettings) -> None:
    token = make_key(settings)
    raw = settings.keys_db.read_bytes()
    wal = settings.keys_db.with_name(settings.keys_db.name + "-wal")
    if wal.exists():
        raw += wal.read_bytes()
    assert token.encode() not in raw


# --- rate limits and quotas ------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after(
    client: httpx.Client, settings: CloudSettings
) -> None:
    token = make_key(settings, rate_per_s=0.5, burst=3)
    statuses = [client.get("/readyz", headers=auth(token)).status_code for _ in range(5)]
    assert statuses[:3] == [200, 200, 200]
    assert statuses[3:] == [429, 429]
    response = client.get("/readyz", headers=auth(token))
    assert response.status_code == 429
    assert 1 <= int(response.headers["retry-after"]) <= 2
    assert _error(response)["code"] == "rate_limit_exceeded"
    # Another key is not slowed by this one's bucket.
    assert client.get("/readyz", headers=auth(make_key(settings))).status_code == 200


def test_daily_quota(client: httpx.Client, settings: CloudSettings) -> None:
    token = make_key(settings, quota_per_day=2)
    assert client.get("/readyz", headers=auth(token)).status_code == 200
    assert client.get("/readyz", headers=auth(token)).status_code == 200
    response = client.get("/readyz", headers=auth(token))
    assert response.status_code == 429
    assert _error(response)["code"] == "insufficient_quota"
    assert 0 < int(response.headers["retry-after"]) <= 86400


# --- body limit ------------------------------------------------------------------------


@pytest.mark.parametrize("size", [BODY_LIMIT - 1, BODY_LIMIT])
def test_body_at_or_under_the_limit_is_read(client: httpx.Client, key: str, size: int) -> None:
    response = client.post(
        "/v1/chat/completions",
        headers={**auth(key), "Content-Type": "application/json"},
        content=_chat_body(size),
    )
    # Read and parsed: the answer is the route's (no upstream configured), not 413.
    assert response.status_code == 503, response.text
    error = _error(response)
    assert error["code"] == "upstream_not_configured"
    assert "upstream_base_url" in error["message"]


def test_body_over_the_limit_is_413(client: httpx.Client, key: str) -> None:
    response = client.post(
        "/v1/chat/completions",
        headers={**auth(key), "Content-Type": "application/json"},
        content=_chat_body(BODY_LIMIT + 1),
    )
    assert response.status_code == 413
    assert _error(response)["code"] == "request_too_large"


def test_chunked_body_is_counted_while_read(client: httpx.Client, key: str) -> None:
    def chunks(body: bytes) -> Iterator[bytes]:
        for i in range(0, len(body), 1000):
            yield body[i : i + 1000]

    headers = {**auth(key), "Content-Type": "application/json"}
    small = client.post(
        "/v1/chat/completions", headers=headers, content=chunks(_chat_body(BODY_LIMIT - 10))
    )
    assert small.status_code == 503
    big = client.post(
        "/v1/chat/completions", headers=headers, content=chunks(_chat_body(BODY_LIMIT + 1))
    )
    assert big.status_code == 413
    assert _error(big)["code"] == "request_too_large"


# --- media limits ----------------------------------------------------------------------


def test_image_dimensions_are_checked_before_decoding(client: httpx.Client, key: str) -> None:
    # A PNG header that claims 100000×100000 pixels: refused without decoding anything.
    header = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR"
    header += struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0) + b"\0" * 4
    response = client.post(
        "/v1/vision/faces", headers=auth(key), files={"image": ("bomb.png", header)}
    )
    assert response.status_code == 400
    assert "100000×100000" in _error(response)["message"]
    response = client.post(
        "/v1/vision/faces", headers=auth(key), files={"image": ("x.gif", b"GIF89a....")}
    )
    assert response.status_code == 400
    assert "JPEG or PNG" in _error(response)["message"]


def test_audio_duration_limit(client: httpx.Client, key: str) -> None:
    ok = client.post(
        "/v1/audio/transcriptions",
        headers=auth(key),
        files={"file": ("a.wav", _wav(1.0))},
        data={"model": "any"},
    )
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"text": "fake words"}
    long = client.post(
        "/v1/audio/transcriptions",
        headers=auth(key),
        files={"file": ("a.wav", _wav(3.0))},
        data={"model": "any"},
    )
    assert long.status_code == 400
    assert "limit of 2 s" in _error(long)["message"]
    junk = client.post(
        "/v1/audio/transcriptions",
        headers=auth(key),
        files={"file": ("a.wav", b"not audio at all")},
        data={"model": "any"},
    )
    assert junk.status_code == 400


# --- deadlines, shedding ---------------------------------------------------------------


def test_deadline_propagates_to_the_model_call(client: httpx.Client, key: str) -> None:
    files = {"image": ("a.png", _png())}
    slow = client.post(
        "/v1/vision/faces", headers={**auth(key), "X-Deadline-Ms": "80"}, files=files
    )
    assert slow.status_code == 504
    assert _error(slow)["code"] == "deadline_exceeded"
    spent = client.post(
        "/v1/vision/faces", headers={**auth(key), "X-Deadline-Ms": "0"}, files=files
    )
    assert spent.status_code == 504
    bad = client.post(
        "/v1/vision/faces", headers={**auth(key), "X-Deadline-Ms": "soon"}, files=files
    )
    assert bad.status_code == 400
    fine = client.post(
        "/v1/vision/faces", headers={**auth(key), "X-Deadline-Ms": "5000"}, files=files
    )
    assert fine.status_code == 200
    assert fine.json()["faces"] == [{"box": [1.0, 2.0, 3.0, 4.0], "score": 0.9}]


def test_full_queue_sheds_with_503_and_retry_after(
    base_url: str, key: str, faces: FakeFaces
) -> None:
    # One model thread and one waiting place. The model is held: the first call runs,
    # one of the next five waits, and the other four are refused at once.
    def call(_: int) -> httpx.Response:
        with httpx.Client(base_url=base_url, timeout=20) as c:
            return c.post("/v1/vision/faces", headers=auth(key), files={"image": ("a.png", _png())})

    before = len(faces.calls)
    faces.gate.clear()
    try:
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            first = pool.submit(call, 0)
            faces.wait_for_calls(before + 1)
            rest = [pool.submit(call, i) for i in range(1, 6)]
            done = []
            for future in concurrent.futures.as_completed(rest, timeout=10):
                done.append(future.result())
                if len(done) == 4:
                    break
            shed = list(done)
            faces.gate.set()
            responses = [first.result(), *(f.result() for f in rest)]
    finally:
        faces.gate.set()
    assert [r.status_code for r in shed] == [503] * 4
    assert sorted(r.status_code for r in responses) == [200, 200, 503, 503, 503, 503]
    assert shed[0].headers["retry-after"] == "1"
    assert _error(shed[0])["code"] == "overloaded"


# --- idempotency -----------------------------------------------------------------------


def _faces(client: httpx.Client, token: str, idem: str, image: bytes) -> httpx.Response:
    return client.post(
        "/v1/vision/faces",
        headers={**auth(token), "Idempotency-Key": idem},
        files={"image": ("a.png", image)},
    )


def test_idempotent_request_runs_once_and_replays(
    client: httpx.Client, key: str, faces: FakeFaces
) -> None:
    image = _png(32, 32)
    before = len(faces.calls)
    first = _faces(client, key, "idem-replay", image)
    second = _faces(client, key, "idem-replay", image)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert len(faces.calls) == before + 1


def test_same_key_different_body_is_422(client: httpx.Client, key: str) -> None:
    assert _faces(client, key, "idem-reuse", _png(32, 32)).status_code == 200
    response = _faces(client, key, "idem-reuse", _png(40, 40))
    assert response.status_code == 422
    assert _error(response)["code"] == "idempotency_key_reused"


def test_concurrent_duplicate_is_409(base_url: str, key: str, faces: FakeFaces) -> None:
    image = _png(24, 24)

    def first() -> httpx.Response:
        with httpx.Client(base_url=base_url, timeout=20) as c:
            return _faces(c, key, "idem-concurrent", image)

    before = len(faces.calls)
    faces.gate.clear()
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            running = pool.submit(first)
            faces.wait_for_calls(before + 1)
            with httpx.Client(base_url=base_url, timeout=10) as c:
                duplicate = _faces(c, key, "idem-concurrent", image)
            faces.gate.set()
            assert running.result().status_code == 200
    finally:
        faces.gate.set()
    assert duplicate.status_code == 409
    assert duplicate.headers["retry-after"] == "1"
    assert _error(duplicate)["code"] == "request_in_progress"


def test_idempotency_is_isolated_between_tenants(
    client: httpx.Client, settings: CloudSettings, faces: FakeFaces
) -> None:
    alice, bob = make_key(settings), make_key(settings)
    before = len(faces.calls)
    assert _faces(client, alice, "shared-name", _png(20, 20)).status_code == 200
    # Bob's request with the same key and another body runs as his own (no 422, no
    # replay of Alice's answer)...
    bob_first = _faces(client, bob, "shared-name", _png(30, 30))
    assert bob_first.status_code == 200
    assert "idempotent-replayed" not in bob_first.headers
    # ...and with Alice's exact body, it still runs for him instead of replaying hers.
    bob_same = _faces(client, bob, "shared-name-2", _png(20, 20))
    assert "idempotent-replayed" not in bob_same.headers
    assert len(faces.calls) == before + 3


def test_failed_request_releases_its_key(client: httpx.Client, key: str) -> None:
    headers = {**auth(key), "Idempotency-Key": "idem-after-504", "X-Deadline-Ms": "50"}
    files = {"image": ("a.png", _png(16, 16))}
    assert client.post("/v1/vision/faces", headers=headers, files=files).status_code == 504
    headers["X-Deadline-Ms"] = "5000"
    retry = client.post("/v1/vision/faces", headers=headers, files=files)
    assert retry.status_code == 200
    assert "idempotent-replayed" not in retry.headers


# --- errors, readiness, metrics, openapi -----------------------------------------------


def test_errors_are_json_without_traces(client: httpx.Client, key: str) -> None:
    for response in (
        client.get("/nope", headers=auth(key)),
        client.post("/v1/chat/completions", headers=auth(key), content=b"{not json"),
        client.post("/v1/chat/completions", headers=auth(key), json={"model": "m"}),
        client.post("/v1/vision/faces", headers=auth(key)),
        client.post("/v1/vision/ocr", headers=auth(key), files={"image": ("a.png", _png())}),
        client.post("/v1/embeddings", headers=auth(key), json={"model": "m", "input": "hi"}),
    ):
        assert 400 <= response.status_code < 600
        assert response.status_code != 500
        _error(response)
    ocr = client.post("/v1/vision/ocr", headers=auth(key), files={"image": ("a.png", _png())})
    assert ocr.status_code == 503
    assert _error(ocr)["code"] == "ocr_unavailable"
    embeddings = client.post(
        "/v1/embeddings", headers=auth(key), json={"model": "m", "input": "hi"}
    )
    assert embeddings.status_code == 503, embeddings.text
    assert _error(embeddings)["code"] == "embeddings_unavailable"


def test_readyz_reports_each_backend(client: httpx.Client, key: str) -> None:
    response = client.get("/readyz", headers=auth(key))
    assert response.status_code == 200
    document = response.json()
    assert document["ready"] is True
    assert document["backends"]["faces"] == {"ready": True, "backend": "fake-faces"}
    assert document["backends"]["ocr"] == {"ready": False, "reason": "not in this test"}


def test_readyz_is_503_when_a_required_backend_is_missing(tmp_path: Path) -> None:
    from glasses_sdk.cloud import Backends

    settings = server_settings(tmp_path)
    token = make_key(settings)
    missing = Backends(reasons={"transcription": "pocketsphinx is not installed"})
    with serve(create_app(settings, backends=missing)) as url:
        response = httpx.get(f"{url}/readyz", headers=auth(token), timeout=10)
        assert response.status_code == 503
        assert response.json()["missing"] == ["transcription"]
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
        speech = httpx.post(
            f"{url}/v1/audio/transcriptions",
            headers=auth(token),
            files={"file": ("a.wav", _wav(0.5))},
            data={"model": "any"},
            timeout=10,
        )
        assert speech.status_code == 503
        assert "pocketsphinx is not installed" in _error(speech)["message"]


def test_metrics_count_requests_and_rejections(
    client: httpx.Client, settings: CloudSettings
) -> None:
    token = make_key(settings, "metrics", "inference")
    client.get("/readyz", headers=auth("gsk_wrong"))
    client.post("/v1/vision/faces", headers=auth(token), files={"image": ("a.png", _png())})
    text = client.get("/metrics", headers=auth(token)).text
    assert 'requests_total{method="POST",route="/v1/vision/faces",status="200"}' in text
    assert 'glasses_cloud_rejections_total{reason="unauthenticated"}' in text
    assert "glasses_cloud_queue_depth" in text
    assert 'glasses_cloud_batch_size_count{task="faces"}' in text
    assert 'glasses_cloud_request_seconds_count{route="/v1/vision/faces"}' in text
    assert "key_" not in text  # no tenant in any label


def test_openapi_lists_the_routes(client: httpx.Client, key: str) -> None:
    document = client.get("/openapi.json", headers=auth(key)).json()
    for path in (
        "/v1/audio/transcriptions",
        "/v1/chat/completions",
        "/v1/embeddings",
        "/v1/vision/faces",
        "/v1/vision/ocr",
        "/v1/assist",
        "/healthz",
        "/readyz",
    ):
        assert path in document["paths"], path
    assert "HTTPBearer" in document["components"]["securitySchemes"]


def test_assist_without_upstream_answers_from_perception(client: httpx.Client, key: str) -> None:
    response = client.post(
        "/v1/assist",
        headers=auth(key),
        data={"question": "who is there?"},
        files={"image": ("a.png", _png()), "audio": ("a.wav", _wav(0.5))},
    )
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["answer_source"] == "perception"
    assert document["faces"] == 1
    assert document["transcript"] == "fake words"
    assert document["text_read"] is None
    assert document["unavailable"]["ocr"] == "not in this test"
    assert "Faces seen: 1." in document["answer"]
    for stage in ("transcription", "decode", "faces", "answer", "total"):
        assert document["latency_ms"][stage] >= 0
    empty = client.post("/v1/assist", headers=auth(key), data={})
    assert empty.status_code == 400


def test_concurrent_faces_requests_are_batched(tmp_path: Path) -> None:
    settings = server_settings(tmp_path, batching=True, batch_max_size=16, batch_max_wait_ms=300)
    token = make_key(settings, "inference", "metrics")
    faces = FakeFaces()
    with serve(create_app(settings, backends=fake_backends(faces))) as url:

        def call(i: int) -> httpx.Response:
            headers = auth(token)
            if i == 0:
                headers["X-Deadline-Ms"] = "100"  # passes while the batch waits
            with httpx.Client(base_url=url, timeout=20) as c:
                return c.post(
                    "/v1/vision/faces", headers=headers, files={"image": ("a.png", _png())}
                )

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(call, range(8)))
        metrics = httpx.get(f"{url}/metrics", headers=auth(token), timeout=10).text
    # The hurried request alone gets its 504; the others share model calls.
    assert responses[0].status_code == 504
    assert [r.status_code for r in responses[1:]] == [200] * 7
    assert max(faces.calls) > 1
    # 8 when the hurried request joined a batch before its deadline passed, 7 when it
    # passed earlier (while its upload was decoded, on a loaded machine).
    assert sum(faces.calls) in (7, 8)
    assert f'glasses_cloud_batch_size_count{{task="faces"}} {float(len(faces.calls))}' in metrics


class BrokenFaces:
    """A fake face backend that fails the way a bug would."""

    name = "broken-faces"

    def detect(self, images: object, deadline: object) -> list[list[object]]:
        raise RuntimeError("secret internal detail /srv/models/x.onnx")


def test_unexpected_errors_are_500_json_without_details(tmp_path: Path) -> None:
    from glasses_sdk.cloud import Backends

    settings = server_settings(tmp_path, batching=False)
    token = make_key(settings)
    backends = Backends(faces=BrokenFaces())  # type: ignore[arg-type]
    with serve(create_app(settings, backends=backends)) as url:
        response = httpx.post(
            f"{url}/v1/vision/faces",
            headers={**auth(token), "Idempotency-Key": "after-a-bug"},
            files={"image": ("a.png", _png())},
            timeout=10,
        )
        assert response.status_code == 500
        assert response.json() == {
            "error": {
                "message": "internal server error",
                "type": "server_error",
                "param": None,
                "code": None,
            }
        }
        assert "secret" not in response.text
        # The failed request released its idempotency key: a retry runs again.
        again = httpx.post(
            f"{url}/v1/vision/faces",
            headers={**auth(token), "Idempotency-Key": "after-a-bug"},
            files={"image": ("a.png", _png())},
            timeout=10,
        )
        assert again.status_code == 500
        assert "idempotent-replayed" not in again.headers
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200


def test_a_shared_rate_limiter_plugs_in(tmp_path: Path) -> None:
    class AlwaysLimited:
        """A fake shared limiter (as a Redis one would be) that refuses everything."""

        def __init__(self) -> None:
            self.keys: list[str] = []

        def take(self, key: str, rate_per_s: float, burst: int) -> float:
            self.keys.append(key)
            return 2.5

    settings = server_settings(tmp_path)
    token = make_key(settings)
    limiter = AlwaysLimited()
    app = create_app(settings, backends=fake_backends(), rate_limiter=limiter)
    with serve(app) as url:
        response = httpx.get(f"{url}/readyz", headers=auth(token), timeout=10)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert limiter.keys and limiter.keys[0].startswith("key_")
