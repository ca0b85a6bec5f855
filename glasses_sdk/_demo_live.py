"""The live part of ``glasses demo``: emulator, cloud server and assistant, end to end.

:func:`run_live` starts, on this machine only:

1. the device emulator (a real TCP server on 127.0.0.1, paired like real glasses, with
   a pairing store in a temporary folder) playing the assembled demo scenario
   (:mod:`glasses_sdk._demo_scenario`);
2. the cloud fallback server (uvicorn on 127.0.0.1, port 0, in a thread of this
   process) with a fresh API key in a temporary data folder;
3. the :class:`~glasses_sdk.assistant.Assistant` on the emulated glasses, with a
   :class:`~glasses_sdk.routing.CloudClient` of that server,

lets the scenario play once, records every assistant event, and stops everything. It
is bounded: the scenario's length plus a fixed margin, whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glasses_sdk._demo_scenario import DemoAssets
from glasses_sdk._exceptions import GlassesError
from glasses_sdk._tracing import tracing_enabled

__all__ = ["LiveResult", "run_live"]

_log = logging.getLogger("glasses_sdk.demo")

SERVER_START_TIMEOUT_S = 60.0
ANSWER_MARGIN_S = 12.0
"""How long after the last command's scene the demo still waits for its answer."""


@dataclass
class LiveResult:
    """What happened: every assistant event with its time from the start of playback."""

    events: list[tuple[float, Any]] = field(default_factory=list)
    started_s: float = 0.0
    """The SDK clock (``monotonic_s``) when the microphone stream started."""
    setup_s: dict[str, float] = field(default_factory=dict)
    """Seconds spent starting each part (server, emulator, assistant models)."""
    cloud_url: str = ""
    emulator_address: str = ""
    speaker_samples: int = 0
    """Samples of spoken answers the emulated glasses' speaker received."""
    traced: bool = False


@contextmanager
def _cloud_server(data_dir: Path) -> Iterator[tuple[str, str]]:
    """The real fallback server on 127.0.0.1:0 in a thread; yields (base URL, API key)."""
    import uvicorn

    from glasses_sdk.cloud import KeyStore, create_app, load_settings

    # Transcription, faces and text reading: what the built-in skills ask the cloud for.
    # No embeddings: no skill uses them, and MiniLM would add seconds to the start.
    settings = load_settings(
        env={},
        data_dir=data_dir,
        backends=["transcription", "faces", "ocr"],
        required_backends=["transcription"],
        # One user on loopback: a text-reading call may use both cores of this host.
        ocr_threads=2,
    )
    with KeyStore(settings.keys_db) as store:
        token, _ = store.create("glasses demo", ("inference",))
    app: Any = create_app(settings)
    if tracing_enabled():
        from glasses_sdk.cloud._tracing import TracingMiddleware

        # create_app may trace by itself (install_tracing): never two server spans.
        if not any(m.cls is TracingMiddleware for m in getattr(app, "user_middleware", ())):
            app = TracingMiddleware(app)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="demo-cloud", daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise GlassesError("the demo's cloud server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", token
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@asynccontextmanager
async def _emulator(assets: DemoAssets, state_dir: Path) -> AsyncIterator[Any]:
    from firmware_bridge.emulator import Emulator
    from firmware_bridge.emulator._scenario import load_scenario

    emulator = Emulator(load_scenario(assets.scenario_path), state_dir=state_dir)
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.close()


async def _connect(emulator: Any, pairing_dir: Path) -> Any:
    """Pair with the emulator as with real glasses, then open the device."""
    from firmware_bridge._secure import PairingStore, pair_tcp
    from glasses_sdk import connect_bridge

    store = PairingStore(pairing_dir)
    host, port = "127.0.0.1", int(emulator.port)
    cert = await pair_tcp(host, port, emulator.pairing_code, store.identity())
    store.save_device(f"{host}:{port}", cert)
    # The camera's largest mode: the text of a page needs the pixels. 5 fps is plenty
    # for an assistant that only keeps the newest frame; photos are taken on demand.
    return await connect_bridge(
        emulator.address, pairing_dir=store.folder, width_px=1280, height_px=720, fps=5
    )


def _warm_models() -> None:
    """Load the assistant's listening and privacy models before the scenario starts.

    Sessions are cached per model file in this process, so the assistant's own loads
    then take no time: otherwise, on a loaded machine, the first command can be spoken
    while the wake word model is still loading, and be missed.
    """
    from glasses_sdk.assistant import AssistantOptions
    from glasses_sdk.inference import (
        FaceDetector,
        FaceDetectorOptions,
        TextReader,
        TextReaderOptions,
        VoiceActivityDetector,
        WakeWordDetector,
        WakeWordOptions,
    )

    options = AssistantOptions()
    models = tuple(w.replace("_", "-") for w in options.wake_words)
    WakeWordDetector(WakeWordOptions(models=models))
    VoiceActivityDetector()
    FaceDetector(FaceDetectorOptions(model=options.privacy.face_model))  # type: ignore[arg-type]
    TextReader(TextReaderOptions(max_side_px=options.ocr_max_side_px))


async def run_live(
    assets: DemoAssets,
    *,
    advance: Callable[[str], None] = lambda _description: None,
    tick: Callable[[float], None] = lambda _fraction: None,
) -> LiveResult:
    """Play the demo scenario once through the assistant; return what happened.

    ``advance`` is told when each part has started; ``tick`` gets the fraction of the
    scenario played so far, about once a second.
    """
    from glasses_sdk.assistant import AnswerEvent, Assistant, AssistantOptions
    from glasses_sdk.capture import monotonic_s
    from glasses_sdk.routing import CloudClient

    result = LiveResult(traced=tracing_enabled())
    with tempfile.TemporaryDirectory(prefix="glasses-demo-") as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        with _cloud_server(folder / "cloud") as (base_url, token):
            result.cloud_url = base_url
            result.setup_s["cloud_server"] = time.perf_counter() - start
            advance("cloud server on " + base_url)
            start = time.perf_counter()
            await asyncio.to_thread(_warm_models)
            result.setup_s["assistant_models"] = time.perf_counter() - start
            start = time.perf_counter()
            async with _emulator(assets, folder / "emulator") as emulator:
                result.emulator_address = str(emulator.address)
                device = await _connect(emulator, folder / "pairing")
                result.setup_s["emulator"] = time.perf_counter() - start
                advance("emulator at " + result.emulator_address)
                client = CloudClient(base_url, api_key=token)
                assistant = Assistant(device, cloud=client, options=AssistantOptions())
                events = assistant.events()
                runner = asyncio.create_task(assistant.run(), name="demo-assistant")
                # The microphone stream started when the device connected: the
                # scenario's clock. Commands are placed on it by the script.
                result.started_s = monotonic_s()
                collector = asyncio.create_task(_collect(events, result))
                end_s = assets.script.duration_s + ANSWER_MARGIN_S
                answers_expected = len(assets.commands)
                try:
                    while True:
                        played = monotonic_s() - result.started_s
                        tick(min(played / assets.script.duration_s, 1.0))
                        answers = sum(isinstance(e, AnswerEvent) for _, e in result.events)
                        if runner.done() or played >= end_s:
                            break
                        if answers >= answers_expected and played >= assets.script.duration_s:
                            break
                        await asyncio.sleep(0.25)
                finally:
                    await assistant.stop()
                    with contextlib.suppress(asyncio.CancelledError, GlassesError):
                        async with asyncio.timeout(15):
                            await runner
                    runner.cancel()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(5):
                            await collector
                    collector.cancel()
                    await client.aclose()
                    await device.close()
                result.speaker_samples = int(emulator.speaker_samples)
    if runner.done() and not runner.cancelled() and runner.exception() is not None:
        raise GlassesError(f"the assistant stopped: {runner.exception()}")
    return result


async def _collect(events: AsyncIterator[Any], result: LiveResult) -> None:
    from glasses_sdk.capture import monotonic_s

    async for event in events:
        t_s = float(getattr(event, "t_s", monotonic_s()))
        result.events.append((t_s - result.started_s, event))
