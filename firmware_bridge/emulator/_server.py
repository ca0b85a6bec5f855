"""The emulated glasses on a TCP port: pairing, pinned TLS, and the device side of sessions.

:class:`Emulator` owns one device (:class:`DeviceModel`), plays a :class:`Scenario`
(camera footage, microphone audio, a timeline of events) and serves hosts over TCP
(``firmware_bridge._secure`` describes the preamble that picks pairing, TLS or, with
``insecure``, plaintext). Every connection runs the protocol through the same
``Connection`` engine as the host, with a :class:`LinkImpairment` between its frames
and the link.

A small Python API lets tests, the web page and ``glasses conformance`` drive it:
:meth:`Emulator.tap`, :meth:`Emulator.set_led_blocked`, :meth:`Emulator.heat`,
:meth:`Emulator.set_impairment`, :meth:`Emulator.stall`, :meth:`Emulator.disconnect`;
:meth:`Emulator.latest_jpeg`, :meth:`Emulator.state` and :attr:`Emulator.log` read it,
and :meth:`Emulator.view` adapts it to the web server's thread-safe ``EmulatorView``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import ssl
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from firmware_bridge._errors import BridgeError, ProtocolError
from firmware_bridge._link_errors import LinkClosedError, LinkError
from firmware_bridge._secure import (
    ANSWER_OK,
    ANSWER_REFUSED,
    PREAMBLE_BYTES,
    PREAMBLE_INSECURE,
    PREAMBLE_PAIR,
    PREAMBLE_TLS,
)
from firmware_bridge._session import Connection, ConnectionOptions, device_clock_us
from firmware_bridge.emulator._impair import ImpairmentSpec, LinkImpairment, parse_impairment
from firmware_bridge.emulator._model import DeviceModel
from firmware_bridge.emulator._scenario import (
    JpegFrames,
    Scenario,
    TimelineEvent,
    load_wav_pcm16,
)
from firmware_bridge.pairing import (
    Identity,
    PairingError,
    PairingRefusedError,
    fingerprint,
    new_pairing_code,
    pair_as_device,
    tls_context,
)
from firmware_bridge.protocol import (
    AudioChunk,
    AudioConfig,
    AudioFormat,
    BatteryStatus,
    ButtonEvent,
    CameraConfig,
    CameraFrame,
    Command,
    CommandKind,
    CommandResult,
    CommandResultCode,
    DisplayText,
    ErrorCode,
    ErrorReport,
    Gesture,
    Hello,
    LedStatus,
    Message,
    Resolution,
    SpeakerAudio,
    ThermalStatus,
    TouchEvent,
)
from firmware_bridge.transports.tcp import TcpLink

__all__ = ["Emulator", "EmulatorThreadView"]

_log = logging.getLogger("firmware_bridge.emulator")
_MAX_PAIRING_ATTEMPTS = 5
_PREAMBLE_TIMEOUT_S = 10.0
_MODEL_TICK_S = 0.5
_PHOTO_BUSY_S = 0.05
_RESULTS_KEPT = 1024  # results remembered per connection, by command_id


class Emulator:
    """Emulated glasses serving hosts on ``host:port`` (port 0: a free one).

    Pairing is required unless ``insecure``; the pairing code is :attr:`pairing_code`
    (logged at start). ``state_dir`` keeps the device identity and the pinned hosts
    across runs; without it both live in memory.
    """

    def __init__(
        self,
        scenario: Scenario | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        impairment: ImpairmentSpec | str | None = None,
        insecure: bool = False,
        state_dir: Path | None = None,
        pairing_code: str | None = None,
        options: ConnectionOptions | None = None,
        play_timeline: bool = True,
    ) -> None:
        self.scenario = scenario if scenario is not None else Scenario()
        self._host = host
        self._port = port
        if isinstance(impairment, str):
            impairment = parse_impairment(impairment)
        if impairment is None:
            impairment = parse_impairment(self.scenario.impair)
        self._impairment = impairment
        self.insecure = insecure
        self._state_dir = state_dir
        self.pairing_code = pairing_code if pairing_code is not None else new_pairing_code()
        self._options = options if options is not None else ConnectionOptions()
        self._play_timeline = play_timeline
        self.model = DeviceModel(
            battery_percent=self.scenario.battery_percent,
            charging=self.scenario.charging,
            temperature_c=self.scenario.temperature_c,
        )
        self.log: deque[dict[str, Any]] = deque(maxlen=2000)
        """Recent events (dicts with ``t_s``, ``kind`` and details), oldest first."""
        self._log_count = 0
        self._log_lock = threading.Lock()
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        self._identity: Identity | None = None
        self._pinned_hosts: list[bytes] = []
        self._failed_pairings = 0
        self._server: asyncio.Server | None = None
        self._sessions: set[_DeviceSession] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._refuse_until = 0.0
        self._started_s = 0.0
        self._frames: JpegFrames | None = None
        self._pcm: npt.NDArray[np.int16] | None = None
        self._pcm_generation = 0
        self._latest_jpeg: bytes | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.display_text = ""
        self.speaker_samples = 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Load media, make or load the identity, and start listening."""
        self._loop = asyncio.get_running_loop()
        scenario = self.scenario
        if scenario.video is not None or scenario.images:
            self._frames = await asyncio.to_thread(JpegFrames, scenario)
        if scenario.wav is not None:
            self._pcm = await asyncio.to_thread(load_wav_pcm16, scenario.wav)
        if not self.insecure:
            self._identity = await asyncio.to_thread(self._load_identity)
        self._server = await asyncio.start_server(self._accept, self._host, self._port)
        self._started_s = time.monotonic()
        self._spawn(self._tick_model())
        if self._play_timeline and scenario.timeline:
            self._spawn(self._run_timeline(scenario.timeline))
        address = f"tcp://{self._host}:{self.port}"
        if self.insecure:
            _log.warning(
                "INSECURE: the emulator at %s accepts anyone without pairing or encryption; "
                "use --insecure for local debugging only",
                address,
            )
            self._record("insecure", address=address)
        else:
            _log.warning(
                "emulator at %s; pair with: glasses pair %s --code %s",
                address,
                address,
                self.pairing_code,
            )
        self._record("started", address=address, scenario=scenario.name)

    def _load_identity(self) -> Identity:
        if self._state_dir is None:
            return Identity.generate("glasses-sdk emulator")
        identity = Identity.load_or_create(self._state_dir / "device", "glasses-sdk emulator")
        hosts = self._state_dir / "hosts"
        if hosts.is_dir():
            self._pinned_hosts = [p.read_bytes() for p in sorted(hosts.glob("*.pem"))]
        return identity

    @property
    def port(self) -> int:
        """The port bound."""
        if self._server is None:
            raise LinkClosedError("the emulator is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def address(self) -> str:
        """``tcp://host:port``."""
        return f"tcp://{self._host}:{self.port}"

    @property
    def identity(self) -> Identity | None:
        """The device's certificate and key (None when insecure)."""
        return self._identity

    async def close(self) -> None:
        """Stop listening, end every session and task."""
        if self._server is not None:
            self._server.close()
        for session in list(self._sessions):
            await session.close("the emulator stopped")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), timeout=2.0)
            self._server = None

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _spawn(self, coroutine: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ log

    def _record(self, kind: str, **details: Any) -> None:
        entry = {"t_s": round(time.monotonic() - self._started_s, 3), "kind": kind, **details}
        with self._log_lock:
            self.log.append(entry)
            self._log_count += 1
        for listener in list(self._listeners):
            listener(entry)

    def subscribe(self, listener: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Call ``listener`` with every future log entry; returns the unsubscriber."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def log_since(self, index: int) -> tuple[int, list[dict[str, Any]]]:
        """Log entries after the ``index``-th (thread-safe) and the next index."""
        with self._log_lock:
            total = self._log_count
            entries = list(self.log)
        first = total - len(entries)
        start = max(index - first, 0)
        return total, entries[start:]

    # ------------------------------------------------------------------ accepting

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (LinkError, ConnectionError, OSError, ssl.SSLError, TimeoutError) as exc:
            _log.info("connection ended: %s", exc)
        except asyncio.IncompleteReadError:
            _log.info("a client left before its preamble")
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError, ssl.SSLError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), timeout=1.0)
            if task is not None:
                self._tasks.discard(task)

    async def _refuse(self, writer: asyncio.StreamWriter, reason: str) -> None:
        data = reason.encode("utf-8")[:1024]
        writer.write(ANSWER_REFUSED + len(data).to_bytes(2, "big") + data)
        with contextlib.suppress(ConnectionError, OSError):
            await writer.drain()
        self._record("refused", reason=reason)
        _log.warning("refused a client: %s", reason)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if time.monotonic() < self._refuse_until:
            return  # an emulated disconnect: the device is unreachable
        preamble = await asyncio.wait_for(
            reader.readexactly(PREAMBLE_BYTES), timeout=_PREAMBLE_TIMEOUT_S
        )
        address = f"tcp://{self._host}:{self.port}"
        if preamble == PREAMBLE_PAIR:
            if self.insecure:
                await self._refuse(writer, "this emulator runs --insecure: no pairing needed")
                return
            writer.write(ANSWER_OK)
            await self._pair(TcpLink(reader, writer))
            return
        if preamble == PREAMBLE_INSECURE:
            if not self.insecure:
                await self._refuse(
                    writer,
                    f"this device requires pairing: run `glasses pair {address} --code CODE` "
                    "with the code it shows",
                )
                return
            writer.write(ANSWER_OK)
            await self._run_session(TcpLink(reader, writer))
            return
        if preamble != PREAMBLE_TLS:
            await self._refuse(writer, f"unknown preamble {preamble!r}")
            return
        if self.insecure or self._identity is None:
            await self._refuse(writer, "this emulator runs --insecure: connect without TLS")
            return
        if not self._pinned_hosts:
            await self._refuse(
                writer,
                f"this device is not paired with any host: run "
                f"`glasses pair {address} --code CODE`",
            )
            return
        context = tls_context(self._identity, b"".join(self._pinned_hosts), server=True)
        writer.write(ANSWER_OK)
        await writer.drain()
        try:
            await asyncio.wait_for(writer.start_tls(context), timeout=_PREAMBLE_TIMEOUT_S)
        except (ssl.SSLError, ConnectionError, OSError, TimeoutError) as exc:
            self._record("refused", reason=f"TLS failed (unpaired host?): {exc}")
            _log.warning("refused a host whose certificate is not pinned: %s", exc)
            return
        link = TcpLink(reader, writer)
        der = link.peer_certificate_der
        pins = {fingerprint(pem) for pem in self._pinned_hosts}
        if der is None or hashlib.sha256(der).hexdigest() not in pins:
            self._record("refused", reason="host certificate not pinned")
            return
        writer.write(ANSWER_OK)  # inside TLS: this host is accepted (see _secure)
        await self._run_session(link)

    async def _pair(self, link: TcpLink) -> None:
        assert self._identity is not None
        if self._failed_pairings >= _MAX_PAIRING_ATTEMPTS:
            self.pairing_code = new_pairing_code()
            self._failed_pairings = 0
            _log.warning("too many wrong pairing codes; the new code is %s", self.pairing_code)
        try:
            host_pem = await asyncio.wait_for(
                pair_as_device(link, self.pairing_code, self._identity),
                timeout=_PREAMBLE_TIMEOUT_S,
            )
        except PairingRefusedError:
            self._failed_pairings += 1
            self._record("pairing_refused", attempts=self._failed_pairings)
            _log.warning("a host tried a wrong pairing code")
            return
        except PairingError as exc:
            self._record("pairing_failed", reason=str(exc))
            return
        if host_pem not in self._pinned_hosts:
            self._pinned_hosts.append(host_pem)
            if self._state_dir is not None:
                folder = self._state_dir / "hosts"
                folder.mkdir(parents=True, exist_ok=True, mode=0o700)
                (folder / f"{fingerprint(host_pem)[:16]}.pem").write_bytes(host_pem)
        self._record("paired", host=fingerprint(host_pem)[:16])
        _log.warning("paired with host %s", fingerprint(host_pem)[:16])

    async def _run_session(self, link: TcpLink) -> None:
        session = _DeviceSession(self, link)
        self._sessions.add(session)
        try:
            await session.run()
        finally:
            self._sessions.discard(session)
            self._update_streaming()

    def hello(self) -> Hello:
        """The HELLO this device sends (capabilities from the scenario)."""
        scenario = self.scenario
        mtu = self._impairment.mtu if self._impairment.mtu is not None else 65_535
        return Hello(
            firmware_version=scenario.firmware_version,
            device_name=scenario.device_name,
            mtu_bytes=mtu,
            has_capture_led=True,
            has_speaker=True,
            has_touchpad=True,
            camera_resolutions=tuple(Resolution(w, h) for w, h in scenario.resolutions)
            if self._frames is not None
            else (),
            camera_fps=scenario.fps if self._frames is not None else (),
            audio_formats=(AudioFormat(16_000, 1),) if self._pcm is not None else (),
        )

    def _connection_options(self) -> ConnectionOptions:
        return self._options

    # ------------------------------------------------------------------ behaviour

    def _update_streaming(self) -> None:
        model = self.model
        before = model.led
        model.camera_streaming = any(s.camera_streaming for s in self._sessions)
        model.audio_streaming = any(s.audio_streaming for s in self._sessions)
        if model.led != before:
            self._record("led", state=model.led.name)
            self._broadcast_reliable(LedStatus(model.led))

    def _broadcast(self, message: Message) -> None:
        for session in list(self._sessions):
            session.send(message)

    def _broadcast_reliable(self, message: Message) -> None:
        for session in list(self._sessions):
            session.send_reliable(message)

    async def _tick_model(self) -> None:
        model = self.model
        last_s = time.monotonic()
        reported = (model.battery_report, model.charging, int(model.throttle_level))
        while True:
            await asyncio.sleep(_MODEL_TICK_S)
            now_s = time.monotonic()
            model.tick(now_s - last_s)
            last_s = now_s
            reported = self._report_changes(reported)

    def _report_changes(self, reported: tuple[int, bool, int]) -> tuple[int, bool, int]:
        model = self.model
        battery, charging, level = reported
        if model.battery_report != battery or model.charging != charging:
            self._broadcast(BatteryStatus(model.battery_report, model.charging))
            self._record("battery", percent=model.battery_report, charging=model.charging)
        if model.throttle_level != level:
            self._broadcast(ThermalStatus(model.temperature_c, model.throttle_level))
            self._record(
                "thermal",
                temperature_c=round(model.temperature_c, 1),
                level=model.throttle_level.name,
            )
        return model.battery_report, model.charging, int(model.throttle_level)

    async def _run_timeline(self, timeline: tuple[TimelineEvent, ...]) -> None:
        for event in timeline:
            delay = self._started_s + event.at_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self._record("timeline", action=event.action, value=event.value)
            self._apply(event.action, event.value)

    def _apply(self, action: str, value: Any) -> None:
        model = self.model
        if action == "tap":
            self.tap(Gesture[str(value)])
        elif action == "button":
            self.press_button()
        elif action == "battery_percent":
            model.battery_percent = float(value)
        elif action == "battery_drain":
            model.battery_percent = max(0.0, model.battery_percent - float(value))
        elif action == "charging":
            model.charging = bool(value)
        elif action == "heat_c":
            self.heat(float(value))
        elif action == "led_blocked":
            self.set_led_blocked(bool(value))
        elif action == "impair":
            self.set_impairment(str(value))
        elif action == "stall_s":
            self.stall(float(value))
        elif action == "disconnect_s":
            self.disconnect(float(value))
        self._report_now()

    def _report_now(self) -> None:
        # Report at once rather than at the next model tick.
        model = self.model
        self._broadcast(BatteryStatus(model.battery_report, model.charging))
        self._broadcast(ThermalStatus(model.temperature_c, model.throttle_level))

    def tap(self, gesture: Gesture = Gesture.TAP) -> None:
        """A gesture on the touchpad, sent to every connected host."""
        self._record("tap", gesture=gesture.name)
        self._broadcast(TouchEvent(gesture, device_clock_us()))

    def press_button(self, button_id: int = 0) -> None:
        """Press and release a button."""
        self._record("button", button_id=button_id)
        self._broadcast(ButtonEvent(button_id, True, device_clock_us()))
        self._broadcast(ButtonEvent(button_id, False, device_clock_us()))

    def set_led_blocked(self, blocked: bool) -> None:
        """Cover (or uncover) the capture LED: a blocked LED stops the camera."""
        before = self.model.led
        self.model.led_blocked = blocked
        if blocked:
            for session in self._sessions:
                session.stop_camera("the capture LED is blocked")
        if self.model.led != before:
            self._record("led", state=self.model.led.name)
            self._broadcast_reliable(LedStatus(self.model.led))

    def heat(self, delta_c: float) -> None:
        """Heat the device by ``delta_c`` degrees now."""
        self.model.heat(delta_c)
        self._record("heat", temperature_c=round(self.model.temperature_c, 1))

    def set_impairment(self, spec: ImpairmentSpec | str) -> None:
        """Change the link impairments of every connection, now and for later ones."""
        if isinstance(spec, str):
            spec = parse_impairment(spec)
        self._impairment = spec
        for session in self._sessions:
            session.impairment.set_spec(spec)
        self._record("impair", spec=spec.to_spec())

    @property
    def impairment(self) -> ImpairmentSpec:
        """The impairments applied to connections."""
        return self._impairment

    def stall(self, duration_s: float) -> None:
        """Nothing leaves the device for ``duration_s`` (the link stays up)."""
        now_ms = time.monotonic() * 1000
        for session in self._sessions:
            session.impairment.stall(now_ms, duration_s * 1000)
        self._record("stall", duration_s=duration_s)

    def disconnect(self, duration_s: float) -> None:
        """Drop every connection and refuse new ones for ``duration_s``."""
        self._refuse_until = time.monotonic() + duration_s
        for session in list(self._sessions):
            self._spawn(session.close(f"emulated disconnect for {duration_s:g} s"))
        self._record("disconnect", duration_s=duration_s)

    def play_speech(self, clip: str) -> None:
        """Feed a speech recording (``glasses_sdk.data.SPEECH``) into the microphone from
        its start; it loops like the scenario's own recording."""
        self._spawn(self._load_speech(clip))

    async def _load_speech(self, clip: str) -> None:
        from glasses_sdk import data

        path = await asyncio.to_thread(data.speech_path, clip)
        self._pcm = await asyncio.to_thread(load_wav_pcm16, path)
        self._pcm_generation += 1
        self._record("speech", clip=clip)

    def latest_jpeg(self) -> bytes | None:
        """The newest camera frame sent (JPEG), or None before the first."""
        return self._latest_jpeg

    def state(self) -> dict[str, Any]:
        """A JSON-ready snapshot of the device and its links."""
        model = self.model
        return {
            "led": model.led.name,
            "battery_percent": model.battery_report,
            "charging": model.charging,
            "temperature_c": round(model.temperature_c, 2),
            "throttle_level": model.throttle_level.name,
            "camera_streaming": model.camera_streaming,
            "audio_streaming": model.audio_streaming,
            "volume_percent": model.volume_percent,
            "display_text": self.display_text,
            "speaker_samples": self.speaker_samples,
            "connections": len(self._sessions),
            "impairment": self._impairment.to_spec(),
            "paired_hosts": len(self._pinned_hosts),
            "insecure": self.insecure,
        }

    def view(self) -> EmulatorThreadView:
        """This emulator as the web server's ``EmulatorView`` (safe from other threads)."""
        return EmulatorThreadView(self)


class EmulatorThreadView:
    """Reads the emulator from another thread; actions run on the emulator's loop."""

    _FAULTS = ("link_loss", "low_battery", "overheat", "stall", "recover")

    def __init__(self, emulator: Emulator) -> None:
        self._emulator = emulator

    def latest_jpeg(self) -> bytes | None:
        return self._emulator.latest_jpeg()

    def frame_interval_s(self) -> float:
        fps = max((s.camera_fps for s in list(self._emulator._sessions)), default=10)
        return 1.0 / max(fps, 1)

    def state(self) -> dict[str, Any]:
        return dict(self._emulator.state())

    def log_since(self, index: int) -> tuple[int, list[dict[str, Any]]]:
        return self._emulator.log_since(index)

    def apply_action(self, action: str, params: Mapping[str, Any]) -> dict[str, Any]:
        emulator = self._emulator
        if action == "tap":
            name = str(params.get("gesture", "tap")).upper()
            if name not in Gesture.__members__:
                raise ValueError(f"gesture must be one of {', '.join(Gesture.__members__).lower()}")
            self._call(emulator.tap, Gesture[name])
        elif action == "fault":
            fault = str(params.get("fault", ""))
            if fault not in self._FAULTS:
                raise ValueError(f"fault must be one of {', '.join(self._FAULTS)}")
            self._call(self._fault, fault)
        elif action == "speech":
            clip = str(params.get("clip", "beckett"))
            from glasses_sdk import data

            if clip not in data.SPEECH:
                raise ValueError(f"clip must be one of {', '.join(sorted(data.SPEECH))}")
            self._call(emulator.play_speech, clip)
        else:
            raise ValueError(f"unknown action {action!r}; expected tap, fault or speech")
        return {"ok": True, "action": action}

    def _fault(self, fault: str) -> None:
        emulator = self._emulator
        if fault == "link_loss":
            emulator.disconnect(3.0)
        elif fault == "low_battery":
            emulator._apply("battery_percent", 5.0)
        elif fault == "overheat":
            emulator.heat(16.0)
        elif fault == "stall":
            emulator.stall(3.0)
        else:
            emulator.model.extra_heat_c = 0.0
            emulator.model.temperature_c = emulator.model.ambient_c + 1
            emulator.set_impairment(ImpairmentSpec())

    def _call(self, function: Callable[..., None], *args: Any) -> None:
        loop = self._emulator._loop
        if loop is None:
            raise ValueError("the emulator is not running")
        loop.call_soon_threadsafe(function, *args)


# ---------------------------------------------------------------------- one session


class _DeviceSession:
    """The device side of one connection: handshake, commands, camera and microphone."""

    def __init__(self, emulator: Emulator, link: TcpLink) -> None:
        self.emulator = emulator
        self.impairment = LinkImpairment(emulator.impairment)
        self.connection = Connection(
            link,
            role="device",
            hello=emulator.hello(),
            on_message=self._on_message,
            on_error=self._on_error,
            options=emulator._connection_options(),
            frame_filter=self.impairment,
        )
        self.camera_config: CameraConfig | None = None
        self.audio_config: AudioConfig | None = None
        self._camera_task: asyncio.Task[None] | None = None
        self._audio_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._frame_number = 0
        self._audio_sequence = 0
        self._photo_until = 0.0
        self._results: OrderedDict[int, CommandResult] = OrderedDict()

    @property
    def camera_streaming(self) -> bool:
        return self._camera_task is not None and not self._camera_task.done()

    @property
    def audio_streaming(self) -> bool:
        return self._audio_task is not None and not self._audio_task.done()

    @property
    def camera_fps(self) -> int:
        return self.camera_config.fps if self.camera_config is not None else 10

    def _spawn(self, coroutine: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def run(self) -> None:
        emulator = self.emulator
        try:
            await self.connection.start()
        except (BridgeError, LinkError) as exc:
            emulator._record("handshake_failed", reason=str(exc))
            await self.connection.close(str(exc))
            return
        emulator._record("connected", mtu_bytes=self.connection.negotiated_mtu_bytes)
        model = emulator.model
        self.send_reliable(LedStatus(model.led))
        self.send(BatteryStatus(model.battery_report, model.charging))
        self.send(ThermalStatus(model.temperature_c, model.throttle_level))
        reason = await self.connection.wait_closed()
        emulator._record("disconnected", reason=reason)
        await self.close(reason)

    async def close(self, reason: str) -> None:
        for task in (self._camera_task, self._audio_task, *self._tasks):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        await self.connection.close(reason)

    def send(self, message: Message) -> None:
        with contextlib.suppress(LinkClosedError):
            self.connection.send_nowait(message)

    def send_reliable(self, message: Message) -> None:
        async def deliver() -> None:
            with contextlib.suppress(BridgeError):
                await self.connection.send_reliable(message)

        if not self.connection.closed:
            self._spawn(deliver())

    def _on_error(self, error: ProtocolError) -> None:
        pass  # counted by the connection; the host side reports its own

    def _on_message(self, message: Message) -> None:
        emulator = self.emulator
        if isinstance(message, CameraConfig):
            self._on_camera_config(message)
        elif isinstance(message, AudioConfig):
            self._on_audio_config(message)
        elif isinstance(message, Command):
            # Exactly once (§11.18): a COMMAND seen again (a retransmission that outlived
            # the duplicate window) gets its first result again, without running twice.
            done = self._results.get(message.command_id)
            if done is None:
                emulator._record("command", command=message.kind.name, id=message.command_id)
                done = self._on_command(message)
                self._results[message.command_id] = done
                while len(self._results) > _RESULTS_KEPT:
                    self._results.popitem(last=False)
            self.send_reliable(done)
        elif isinstance(message, SpeakerAudio):
            samples = len(message.pcm) // 2
            emulator.speaker_samples += samples
            emulator.model.speaker_busy_s += samples / max(message.sample_rate_hz, 1)
        elif isinstance(message, DisplayText):
            emulator.display_text = message.text
            emulator._record("display_text", text=message.text)
        elif isinstance(message, ErrorReport):
            emulator._record("host_error", code=message.code.name, message=message.message)

    def stop_camera(self, why: str) -> None:
        if self._camera_task is not None:
            self._camera_task.cancel()
            self._camera_task = None
            self.send(ErrorReport(ErrorCode.BUSY, f"camera stream stopped: {why}"))
        self.emulator._update_streaming()

    def _on_camera_config(self, config: CameraConfig) -> None:
        emulator = self.emulator
        emulator._record(
            "camera_config",
            size=f"{config.width_px}x{config.height_px}",
            fps=config.fps,
            streaming=config.streaming,
        )
        self.camera_config = config
        if not config.streaming:
            if self._camera_task is not None:
                self._camera_task.cancel()
                self._camera_task = None
            emulator._update_streaming()
            return
        if emulator._frames is None or (
            (config.width_px, config.height_px) not in emulator.scenario.resolutions
        ):
            self.send(
                ErrorReport(
                    ErrorCode.PROTOCOL_VIOLATION,
                    f"no camera mode {config.width_px}x{config.height_px}",
                )
            )
            return
        if emulator.model.led_blocked:
            self.send(ErrorReport(ErrorCode.BUSY, "the capture LED is blocked: no capture"))
            return
        if self._camera_task is None or self._camera_task.done():
            self._camera_task = asyncio.create_task(self._stream_camera())
        emulator._update_streaming()

    def _on_audio_config(self, config: AudioConfig) -> None:
        emulator = self.emulator
        emulator._record("audio_config", streaming=config.streaming)
        self.audio_config = config
        if self._audio_task is not None:
            self._audio_task.cancel()
            self._audio_task = None
        if config.streaming:
            if emulator._pcm is None or (config.sample_rate_hz, config.channels) != (16_000, 1):
                self.send(ErrorReport(ErrorCode.PROTOCOL_VIOLATION, "audio is 16 kHz mono only"))
            else:
                self._audio_task = asyncio.create_task(self._stream_audio(config))
        emulator._update_streaming()

    def _on_command(self, command: Command) -> CommandResult:
        emulator, model = self.emulator, self.emulator.model
        ident, kind, argument = command.command_id, command.kind, command.argument
        if kind == CommandKind.TAKE_PHOTO:
            if emulator._frames is None:
                return CommandResult(ident, CommandResultCode.UNSUPPORTED, 0, "no camera")
            if model.led_blocked:
                return CommandResult(ident, CommandResultCode.LED_BLOCKED, 0, "LED blocked")
            if not model.can_capture():
                return CommandResult(ident, CommandResultCode.THERMAL_LIMIT, 0, "too hot")
            if not 0 <= argument <= 100:
                return CommandResult(ident, CommandResultCode.INVALID_ARGUMENT, 0, "quality")
            if time.monotonic() < self._photo_until:
                return CommandResult(ident, CommandResultCode.BUSY, 0, "taking a photo")
            self._photo_until = time.monotonic() + _PHOTO_BUSY_S
            width, height = emulator.scenario.resolutions[0]
            quality = argument or (self.camera_config.jpeg_quality if self.camera_config else 90)
            number = self._send_frame(width, height, quality)
            return CommandResult(ident, CommandResultCode.OK, number)
        if kind == CommandKind.SET_LED:
            if argument not in (0, 1):
                return CommandResult(ident, CommandResultCode.INVALID_ARGUMENT, 0, "0 or 1")
            if model.led_blocked:
                return CommandResult(ident, CommandResultCode.LED_BLOCKED, 0, "LED blocked")
            if argument == 0 and model.camera_streaming:
                return CommandResult(
                    ident, CommandResultCode.BUSY, 0, "the LED stays on while the camera streams"
                )
            before = model.led
            model.led_manual_on = argument == 1
            if model.led != before:
                emulator._record("led", state=model.led.name)
                emulator._broadcast_reliable(LedStatus(model.led))
            return CommandResult(ident, CommandResultCode.OK, 0)
        if kind == CommandKind.SET_VOLUME:
            if not 0 <= argument <= 100:
                return CommandResult(ident, CommandResultCode.INVALID_ARGUMENT, 0, "0..100")
            model.volume_percent = argument
            return CommandResult(ident, CommandResultCode.OK, argument)
        return CommandResult(
            ident, CommandResultCode.UNSUPPORTED, 0, "the emulator does not reboot"
        )

    def _send_frame(self, width: int, height: int, quality: int) -> int:
        emulator = self.emulator
        frames = emulator._frames
        assert frames is not None
        index = int((time.monotonic() - emulator._started_s) * frames.source_fps)
        jpeg = frames.render(index, width, height, quality)
        self._frame_number = (self._frame_number + 1) & 0xFFFFFFFF
        self.send(CameraFrame(self._frame_number, device_clock_us(), width, height, jpeg))
        emulator._latest_jpeg = jpeg
        return self._frame_number

    async def _stream_camera(self) -> None:
        emulator = self.emulator
        frames = emulator._frames
        assert frames is not None
        due = time.monotonic()
        while True:
            config = self.camera_config
            assert config is not None
            plan = emulator.model.plan(config.width_px, config.height_px, config.fps)
            if plan is None:
                await asyncio.sleep(0.1)
                due = time.monotonic()
                continue
            index = int((time.monotonic() - emulator._started_s) * frames.source_fps)
            key = (index, plan.width_px, plan.height_px, config.jpeg_quality)
            if frames.cached(*key) is None:
                await asyncio.to_thread(frames.render, *key)
            self._send_frame(plan.width_px, plan.height_px, config.jpeg_quality)
            due += 1.0 / plan.fps
            delay = due - time.monotonic()
            if delay < -1.0 / plan.fps:
                due = time.monotonic()  # fell behind: skip frames rather than burst
                delay = 0.0
            await asyncio.sleep(max(delay, 0.0))

    async def _stream_audio(self, config: AudioConfig) -> None:
        emulator = self.emulator
        pcm = emulator._pcm
        generation = emulator._pcm_generation
        assert pcm is not None
        chunk = max(1, config.sample_rate_hz * config.chunk_ms // 1000)
        start_us = device_clock_us()
        start_s = time.monotonic()
        position = 0
        sent = 0
        while True:
            if emulator._pcm_generation != generation and emulator._pcm is not None:
                pcm, generation, position = emulator._pcm, emulator._pcm_generation, 0
            indices = np.arange(position, position + chunk) % len(pcm)
            samples = pcm[indices]
            timestamp = start_us + sent * 1_000_000 // config.sample_rate_hz
            self._audio_sequence = (self._audio_sequence + 1) & 0xFFFFFFFF
            self.send(AudioChunk(self._audio_sequence, timestamp, samples.astype("<i2").tobytes()))
            position = (position + chunk) % len(pcm)
            sent += chunk
            delay = start_s + sent / config.sample_rate_hz - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
