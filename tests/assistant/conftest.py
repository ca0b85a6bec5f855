"""Fixtures of the assistant tests: a real cloud server on 127.0.0.1 (port 0) with real
models, whose face backend keeps the images it was sent; a client of a port nothing
listens on; espeak-ng commands; and the emulator showing a chosen photo and playing a
chosen WAV into its microphone.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import wave
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from firmware_bridge.emulator import Emulator, Scenario
from glasses_sdk import data
from glasses_sdk.cloud import Backends, Deadline, FaceBox
from glasses_sdk.routing import CloudClient, CloudClientOptions
from tests.cloud.conftest import make_key, serve, server_settings
from tests.conftest import missing, need_binary, need_data

SAMPLE_RATE_HZ = 16_000


class RecordingFaces:
    """The server's real face backend (BlazeFace), keeping a copy of every image it is
    given: what actually reached the cloud."""

    name = "blazeface-recording"

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.images: list[NDArray[np.uint8]] = []
        self._lock = threading.Lock()

    def detect(
        self, images: Sequence[NDArray[np.uint8]], deadline: Deadline
    ) -> list[list[FaceBox]]:
        with self._lock:
            self.images.extend(np.array(image, copy=True) for image in images)
        result: list[list[FaceBox]] = self.inner.detect(images, deadline)
        return result


class CloudServer:
    """A running test server: its URL, an API key, and the recording face backend."""

    def __init__(self, url: str, key: str, faces: RecordingFaces) -> None:
        self.url = url
        self.key = key
        self.faces = faces

    def client(self) -> CloudClient:
        """A fresh client of this server."""
        return CloudClient(self.url, api_key=self.key)


@pytest.fixture(scope="module")
def cloud_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudServer]:
    """The FastAPI fallback server with real pocketsphinx, BlazeFace and PP-OCR."""
    from glasses_sdk._exceptions import BackendUnavailableError
    from glasses_sdk.cloud import create_app
    from glasses_sdk.cloud._backends import (
        InferenceFaceBackend,
        InferenceOcrBackend,
        PocketsphinxTranscriber,
    )

    try:
        faces = RecordingFaces(InferenceFaceBackend("full"))
        backends = Backends(
            transcription=PocketsphinxTranscriber(max_decoders=1),
            faces=faces,
            ocr=InferenceOcrBackend(),
            reasons={"embeddings": "not in the assistant tests"},
        )
    except BackendUnavailableError as exc:
        missing(str(exc))
    settings = server_settings(tmp_path_factory.mktemp("assistant-cloud"))
    key = make_key(settings)
    with serve(create_app(settings, backends=backends)) as url:
        yield CloudServer(url, key, faces)


def unreachable_client() -> CloudClient:
    """A client of a 127.0.0.1 port that was just free (nothing listens there), with
    short timeouts and one retry so that the test stays fast."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return CloudClient(
        f"http://127.0.0.1:{port}",
        api_key="gsk_unreachable",
        options=CloudClientOptions(
            timeout_s=1.0,
            connect_timeout_s=0.5,
            max_retries=1,
            backoff_base_s=0.02,
            backoff_max_s=0.05,
        ),
    )


def speak(text: str, voice: str = "en-us", speed_wpm: int = 150) -> NDArray[np.float32]:
    """``text`` spoken by espeak-ng, 16 kHz float32 (silence trimmed)."""
    need_binary("espeak-ng")
    from glasses_sdk.wakeword_train._synth import Voice, synthesize

    return synthesize(text, Voice("espeak", voice, speed_wpm))


def silence(seconds: float) -> NDArray[np.float32]:
    """Digital silence."""
    return np.zeros(int(seconds * SAMPLE_RATE_HZ), np.float32)


def spoken_command(command: str) -> NDArray[np.float32]:
    """ "hey glasses", a short pause, then ``command``, with silence around."""
    return np.concatenate(
        [silence(1.0), speak("hey glasses"), silence(0.3), speak(command), silence(3.0)]
    )


def write_wav(path: Path, samples: NDArray[np.float32]) -> Path:
    """16-bit mono 16 kHz WAV."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE_HZ)
        out.writeframes(pcm.tobytes())
    return path


def photo(name: str) -> Path:
    """A scikit-image photo's path (or missing())."""
    return need_data(lambda: data.photo_path(name))


@contextlib.asynccontextmanager
async def emulator_showing(
    image: Path, wav: Path, state_dir: Path, **options: Any
) -> AsyncIterator[Emulator]:
    """An insecure emulator on 127.0.0.1 whose camera shows ``image`` and whose
    microphone plays ``wav`` (looped)."""
    scenario = Scenario(
        name="assistant-test",
        images=(image,),
        wav=wav,
        resolutions=((640, 480), (320, 240)),
        fps=(15, 10),
    )
    emulator = Emulator(scenario, insecure=True, state_dir=state_dir, **options)
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.close()


async def connect(emulator: Emulator, *, timeout_s: float = 10.0) -> Any:
    """A BridgeDevice on ``emulator``, once its capture LED is reported on."""
    import asyncio

    from glasses_sdk._bridge_device import connect_bridge
    from glasses_sdk._device import LedState

    device = await connect_bridge(emulator.address, insecure=True)
    try:
        async with asyncio.timeout(timeout_s):
            while device.state.led is not LedState.ON:
                await asyncio.sleep(0.05)
    except BaseException:
        await device.close()
        raise
    return device


def fine_detail(image: NDArray[np.uint8], box: Sequence[float], tile_px: int = 4) -> float:
    """Fine detail inside ``box`` ``[x0, y0, x1, y1]``: the median standard deviation of
    grey over 4x4 tiles. A face has texture (about 10 on the astronaut); a pixelated
    one is flat inside each cell (under 1 after JPEG), whatever its cell edges do."""
    import cv2

    x0, y0, x1, y1 = (round(v) for v in box)
    grey = cv2.cvtColor(np.ascontiguousarray(image[y0:y1, x0:x1]), cv2.COLOR_BGR2GRAY)
    h = grey.shape[0] // tile_px * tile_px
    w = grey.shape[1] // tile_px * tile_px
    tiles = grey[:h, :w].astype(np.float64).reshape(h // tile_px, tile_px, w // tile_px, tile_px)
    return float(np.median(tiles.std(axis=(1, 3))))
