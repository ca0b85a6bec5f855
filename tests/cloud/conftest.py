"""A real uvicorn server on 127.0.0.1, port 0, per test module; keys; fake backends;
a real ``redis-server`` (Debian's) on a Unix socket in a temporary folder.

The fakes are named as fakes: ``FakeFaces`` and ``FakeTranscriber`` stand in for the
models where a test is about the server (limits, queueing, idempotency), not the model.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uvicorn
from numpy.typing import NDArray

from glasses_sdk.cloud import (
    Backends,
    CloudSettings,
    Deadline,
    FaceBox,
    KeyStore,
    Transcript,
    create_app,
    load_settings,
)
from tests.conftest import missing, need_binary

SERVER_START_TIMEOUT_S = 30.0


def pytest_configure(config: pytest.Config) -> None:
    """Register ``ray`` here as well, so that the Ray module runs under --strict-markers
    before pyproject.toml lists the marker."""
    config.addinivalue_line("markers", "ray: needs a local Ray instance; run in its own process")


REDIS_START_TIMEOUT_S = 15.0


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run ``app`` under uvicorn on 127.0.0.1 and a free port; yield its base URL."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def server_settings(data_dir: Path, **overrides: Any) -> CloudSettings:
    """Settings for a test server: no file, no environment, data under ``data_dir``."""
    return load_settings(env={}, data_dir=data_dir, **overrides)


def make_key(settings: CloudSettings, *scopes: str, **limits: Any) -> str:
    """Create a key in the server's store and return its token."""
    with KeyStore(settings.keys_db) as store:
        token, _ = store.create("test", scopes or ("inference",), **limits)
    return token


def auth(token: str) -> dict[str, str]:
    """The Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


class FakeFaces:
    """A fake face backend: one fixed box per image, after ``delay_s`` per call."""

    name = "fake-faces"

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.calls: list[int] = []
        self.gate = threading.Event()
        """Cleared by a test to hold every call (bounded wait) until it is set again."""
        self.gate.set()
        self._lock = threading.Lock()

    def wait_for_calls(self, count: int, timeout_s: float = 10.0) -> None:
        """Wait (bounded) until ``count`` calls have started."""
        end = time.monotonic() + timeout_s
        while len(self.calls) < count:
            assert time.monotonic() < end, f"{count} calls expected, {len(self.calls)} seen"
            time.sleep(0.005)

    def detect(
        self, images: Sequence[NDArray[np.uint8]], deadline: Deadline
    ) -> list[list[FaceBox]]:
        with self._lock:
            self.calls.append(len(images))
        self.gate.wait(10)
        end = time.monotonic() + self.delay_s
        while time.monotonic() < end:
            deadline.check("fake face detection")
            time.sleep(0.005)
        return [[FaceBox((1.0, 2.0, 3.0, 4.0), 0.9)] for _ in images]


class FakeTranscriber:
    """A fake transcriber that answers a fixed text after ``delay_s``."""

    name = "fake-transcriber"

    def __init__(self, text: str = "fake words", delay_s: float = 0.0) -> None:
        self.text = text
        self.delay_s = delay_s
        self.calls = 0

    def transcribe(self, samples: NDArray[np.float32], deadline: Deadline) -> Transcript:
        self.calls += 1
        end = time.monotonic() + self.delay_s
        while time.monotonic() < end:
            deadline.check("fake speech recognition")
            time.sleep(0.005)
        return Transcript(self.text, len(samples) / 16000)


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder for this module's server."""
    return tmp_path_factory.mktemp("cloud")


@contextmanager
def redis_server() -> Iterator[str]:
    """Run Debian's ``redis-server`` on a Unix socket (no TCP port, no persistence) in a
    fresh temporary folder; yield its ``unix://`` URL; stop it and remove the folder."""
    binary = need_binary("redis-server")
    try:
        import redis
    except ImportError:
        missing("the redis package is not installed: pip install 'glasses-sdk[cloud]'")
    # A short folder under /tmp: a Unix socket path must stay under 108 bytes.
    folder = Path(tempfile.mkdtemp(prefix="glasses-redis-"))
    socket_path = folder / "redis.sock"
    command = [
        binary, "--port", "0", "--unixsocket", str(socket_path), "--unixsocketperm", "700",
        "--save", "", "--appendonly", "no", "--dir", str(folder), "--loglevel", "warning",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"unix://{socket_path}"
    try:
        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        deadline = time.monotonic() + REDIS_START_TIMEOUT_S
        while True:
            try:
                if client.ping():
                    break
            except redis.RedisError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                error = process.stderr.read().decode() if process.stderr else ""
                raise RuntimeError(f"redis-server did not start: {error[-500:]}")
            time.sleep(0.02)
        client.close()
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A real redis-server for this module (see :func:`redis_server`)."""
    with redis_server() as url:
        yield url


def fake_backends(faces: FakeFaces | None = None) -> Backends:
    """Fakes for faces and speech; OCR and embeddings missing with a reason."""
    return Backends(
        transcription=FakeTranscriber(),
        faces=faces or FakeFaces(),
        reasons={"ocr": "not in this test", "embeddings": "not in this test"},
    )


__all__ = [
    "FakeFaces",
    "FakeTranscriber",
    "auth",
    "create_app",
    "fake_backends",
    "make_key",
    "redis_server",
    "serve",
    "server_settings",
]
