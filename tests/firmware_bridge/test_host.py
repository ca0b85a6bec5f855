"""The host session: handshake and MTU over memory links; commands, events, pairing,
stalls and reconnection against the real emulator on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import tty
from pathlib import Path

import pytest

from firmware_bridge import (
    CaptureLedState,
    CommandKind,
    Gesture,
    Hello,
    MemoryLink,
    ThrottleLevel,
    TouchEvent,
)
from firmware_bridge._errors import (
    DeviceBusyError,
    HandshakeError,
    LedBlockedError,
    ThermalLimitError,
    UnsupportedCommandError,
)
from firmware_bridge._secure import PairingRequiredError, PairingStore, connect_tcp, pair_tcp
from firmware_bridge._session import Connection, ConnectionOptions
from firmware_bridge.host import (
    DeviceInput,
    FirmwareError,
    HostOptions,
    HostSession,
    LinkLost,
    Reconnected,
    StateChanged,
    StreamResumed,
    StreamStalled,
)
from firmware_bridge.pairing import PairingRefusedError
from glasses_sdk.preprocess import decode_jpeg
from tests.firmware_bridge.emulator_helpers import (
    paired_session,
    running_emulator,
    wait_for_event,
)

pytestmark = pytest.mark.timeout(60)


def _device_hello(mtu_bytes: int) -> Hello:
    return Hello("1.0.0-test", "memory device", mtu_bytes, has_capture_led=True)


def test_handshake_negotiates_the_smaller_mtu_and_fragments_to_it() -> None:
    async def run() -> None:
        host_end, device_end = MemoryLink.pair()
        received: list[object] = []
        device = Connection(
            device_end, role="device", hello=_device_hello(512), on_message=received.append
        )
        device_task = asyncio.create_task(device.start())
        session = HostSession(lambda: _ready(host_end))
        await asyncio.wait_for(session.start(), timeout=5)
        await asyncio.wait_for(device_task, timeout=5)
        connection = session.connection
        assert connection is not None
        assert connection.negotiated_mtu_bytes == device.negotiated_mtu_bytes == 512
        assert session.status.hello is not None
        assert session.status.hello.device_name == "memory device"
        # A 3 KB control message crosses in fragments no larger than 512 bytes.
        await session.display_text("x" * 3000)
        assert received[-1] == received[-1]  # delivered once, whole
        assert [m.text for m in received if hasattr(m, "text")] == ["x" * 3000]
        assert device.stats.frames_received >= 7
        device.send_nowait(TouchEvent(Gesture.TAP, 42))
        event = await wait_for_event(session, lambda e: isinstance(e, DeviceInput), timeout_s=5)
        assert isinstance(event, DeviceInput)
        assert event.message == TouchEvent(Gesture.TAP, 42)
        await session.close()
        await device.close()

    asyncio.run(run())


async def _ready(link: MemoryLink) -> MemoryLink:
    return link


def test_a_silent_device_fails_the_handshake_within_its_timeout() -> None:
    async def run() -> None:
        host_end, _device_end = MemoryLink.pair()
        options = HostOptions(connection=ConnectionOptions(handshake_timeout_ms=300))
        session = HostSession(lambda: _ready(host_end), options)
        with pytest.raises(HandshakeError, match="no HELLO exchange"):
            await asyncio.wait_for(session.start(), timeout=5)

    asyncio.run(run())


def test_commands_succeed_or_say_why_they_failed(tmp_path: Path) -> None:
    async def run() -> None:
        async with running_emulator() as emulator:
            session = await paired_session(emulator, tmp_path)
            async with session:
                await session.configure_camera(width_px=320, height_px=240, fps=10)
                frame = await session.next_frame()
                assert (frame.width_px, frame.height_px) == (320, 240)
                assert decode_jpeg(frame.jpeg).shape == (240, 320, 3)
                photo = await session.take_photo(jpeg_quality=85)
                assert (photo.width_px, photo.height_px) == (1280, 720)
                assert decode_jpeg(photo.jpeg).shape == (720, 1280, 3)
                assert await session.set_volume(30) == 30
                assert emulator.model.volume_percent == 30
                # The LED stays on while the camera streams.
                with pytest.raises(DeviceBusyError, match="stays on while the camera streams"):
                    await session.set_led(False)
                with pytest.raises(UnsupportedCommandError, match="REBOOT failed: UNSUPPORTED"):
                    await session.command(CommandKind.REBOOT)
                with pytest.raises(UnsupportedCommandError, match="not 1920x1080"):
                    await session.configure_camera(width_px=1920, height_px=1080)
                await session.play_audio(b"\x00\x01" * 8000)
                await asyncio.sleep(0.2)
                assert emulator.speaker_samples == 8000
                # A covered LED: the stream stops and capture is refused.
                emulator.set_led_blocked(True)
                error = await wait_for_event(
                    session, lambda e: isinstance(e, FirmwareError), timeout_s=5
                )
                assert isinstance(error, FirmwareError) and "LED is blocked" in error.message
                await wait_for_event(
                    session,
                    lambda e: (
                        isinstance(e, StateChanged) and e.status.led == CaptureLedState.BLOCKED
                    ),
                    timeout_s=5,
                )
                with pytest.raises(LedBlockedError):
                    await session.take_photo()
                with pytest.raises(LedBlockedError):
                    await session.configure_camera(width_px=320, height_px=240)
                emulator.set_led_blocked(False)
                # Too hot: the camera pauses and photos are refused.
                emulator.heat(20.0)
                emulator._report_now()
                await wait_for_event(
                    session,
                    lambda e: (
                        isinstance(e, StateChanged)
                        and e.status.throttle_level >= ThrottleLevel.HEAVY
                    ),
                    timeout_s=5,
                )
                with pytest.raises(ThermalLimitError):
                    await session.take_photo()

    asyncio.run(run())


def test_throttling_lowers_resolution_then_frame_rate(tmp_path: Path) -> None:
    async def run() -> None:
        async with running_emulator() as emulator:
            session = await paired_session(emulator, tmp_path)
            async with session:
                await session.configure_camera(width_px=640, height_px=480, fps=30)
                frame = await session.next_frame()
                assert (frame.width_px, frame.height_px) == (640, 480)
                emulator.heat(41.0 - emulator.model.temperature_c)
                await asyncio.sleep(0.2)
                while (frame := await session.next_frame()).width_px == 640:
                    pass
                assert (frame.width_px, frame.height_px) == (320, 240)
                assert emulator.model.plan(640, 480, 30) is not None
                plan = emulator.model.plan(640, 480, 30)
                assert plan is not None and plan.fps == 30
                emulator.heat(44.0 - emulator.model.temperature_c)
                plan = emulator.model.plan(640, 480, 30)
                assert plan is not None and (plan.width_px, plan.fps) == (320, 15)

    asyncio.run(run())


def test_pairing_is_required_and_refusals_say_why(tmp_path: Path) -> None:
    async def run() -> None:
        async with running_emulator() as emulator:
            host, port = "127.0.0.1", emulator.port
            # No pairing stored: the SDK says which command to run.
            with pytest.raises(PairingRequiredError, match="glasses pair tcp://"):
                await HostSession.open(emulator.address, store=PairingStore(tmp_path / "none"))
            # A plaintext client gets a clear refusal and no data.
            with pytest.raises(PairingRequiredError, match="requires pairing"):
                await connect_tcp(host, port, identity=None, device_cert_pem=None)
            # A wrong code is refused, and nothing is pinned.
            store = PairingStore(tmp_path / "wrong")
            wrong = "000000" if emulator.pairing_code != "000000" else "111111"
            with pytest.raises(PairingRefusedError):
                await pair_tcp(host, port, wrong, store.identity())
            # A host that paired with another device cannot pass as paired here.
            async with running_emulator() as other:
                cert = await pair_tcp(host, other.port, other.pairing_code, store.identity())
            with pytest.raises(PairingRequiredError):
                await connect_tcp(host, port, identity=store.identity(), device_cert_pem=cert)
            # The right code pins both sides; TLS then works.
            session = await paired_session(emulator, tmp_path / "right")
            await session.close()
            assert emulator.state()["paired_hosts"] == 1
            # A paired emulator still refuses a host it does not know.
            stranger = PairingStore(tmp_path / "stranger")
            device_cert = PairingStore(tmp_path / "right").device_cert(f"{host}:{port}")
            with pytest.raises(PairingRequiredError, match="refused this host"):
                await connect_tcp(
                    host, port, identity=stranger.identity(), device_cert_pem=device_cert
                )

    asyncio.run(run())


def test_a_stall_is_reported_and_the_stream_resumes(tmp_path: Path) -> None:
    async def run() -> None:
        async with running_emulator() as emulator:
            options = HostOptions(stall_after_s=0.4)
            session = await paired_session(emulator, tmp_path, options)
            async with session:
                await session.configure_camera(width_px=320, height_px=240, fps=15)
                await session.next_frame()
                emulator.stall(1.0)
                stalled = await wait_for_event(
                    session, lambda e: isinstance(e, StreamStalled), timeout_s=5
                )
                assert isinstance(stalled, StreamStalled) and stalled.stream == "video"
                resumed = await wait_for_event(
                    session, lambda e: isinstance(e, StreamResumed), timeout_s=5
                )
                assert isinstance(resumed, StreamResumed) and resumed.stalled_s >= 0.4

    asyncio.run(run())


def test_after_a_disconnect_the_session_reconnects_and_resumes(tmp_path: Path) -> None:
    async def run() -> None:
        async with running_emulator() as emulator:
            session = await paired_session(emulator, tmp_path)
            async with session:
                await session.configure_camera(width_px=320, height_px=240, fps=15)
                await session.configure_audio()
                await session.next_frame()
                emulator.disconnect(1.0)
                lost = await wait_for_event(session, lambda e: isinstance(e, LinkLost), timeout_s=5)
                assert isinstance(lost, LinkLost)
                back = await wait_for_event(
                    session, lambda e: isinstance(e, Reconnected), timeout_s=10
                )
                assert isinstance(back, Reconnected) and back.downtime_s >= 0.9
                # Streams resume by themselves on the new connection.
                frames_before = session.quality().video_frames_received
                audio_before = session.quality().audio_chunks_received
                await asyncio.sleep(0.5)
                assert session.quality().video_frames_received > frames_before
                assert session.quality().audio_chunks_received > audio_before
                assert session.quality().reconnects == 1
                assert session.status.connected

    asyncio.run(run())


def test_the_web_view_drives_the_emulator_from_another_thread(tmp_path: Path) -> None:
    async def run() -> None:
        async with running_emulator() as emulator:
            session = await paired_session(emulator, tmp_path)
            async with session:
                view = emulator.view()
                await asyncio.to_thread(view.apply_action, "tap", {"gesture": "double_tap"})
                event = await wait_for_event(
                    session, lambda e: isinstance(e, DeviceInput), timeout_s=5
                )
                assert isinstance(event, DeviceInput)
                assert event.message.gesture == Gesture.DOUBLE_TAP  # type: ignore[union-attr]
                with pytest.raises(ValueError, match="gesture must be one of"):
                    view.apply_action("tap", {"gesture": "poke"})
                with pytest.raises(ValueError, match="unknown action"):
                    view.apply_action("dance", {})
                with pytest.raises(ValueError, match="clip must be one of"):
                    view.apply_action("speech", {"clip": "nobody"})
                await asyncio.to_thread(view.apply_action, "speech", {"clip": "endgame"})
                await asyncio.to_thread(view.apply_action, "fault", {"fault": "overheat"})
                await wait_for_event(
                    session,
                    lambda e: (
                        isinstance(e, StateChanged)
                        and e.status.throttle_level >= ThrottleLevel.HEAVY
                    ),
                    timeout_s=5,
                )
                # Read at once: the emulated device cools down again within seconds.
                state = view.state()
                assert state["connections"] == 1 and state["throttle_level"] == "HEAVY"
                # Loading the clip reads and converts a WAV in a thread: seconds on a
                # loaded 2-core machine, so the wait is bounded at 10 s, not 2.5 s.
                for _ in range(200):
                    _, entries = view.log_since(0)
                    if any(entry["kind"] == "speech" for entry in entries):
                        break
                    await asyncio.sleep(0.05)
                else:
                    pytest.fail(f"the speech clip was never loaded: {entries}")
                assert 0 < view.frame_interval_s() <= 1.0

    asyncio.run(run())


class _PtyMasterLink(MemoryLink):
    """The board's end of a pseudo-terminal, as a stream link (test only)."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        self._ready = asyncio.Event()
        asyncio.get_running_loop().add_reader(fd, self._ready.set)

    async def send(self, packet: bytes) -> None:
        view = memoryview(packet)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    async def receive(self) -> bytes:
        while True:
            try:
                return os.read(self._fd, 65536)
            except BlockingIOError:
                self._ready.clear()
                await self._ready.wait()

    async def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self._fd)


def test_a_host_session_over_a_serial_line(tmp_path: Path) -> None:
    master, slave = os.openpty()
    tty.setraw(master)
    os.set_blocking(master, False)
    path = os.ttyname(slave)

    async def run() -> None:
        board = _PtyMasterLink(master)
        device = Connection(
            board,
            role="device",
            hello=_device_hello(65_535),
            on_message=lambda message: None,
            options=ConnectionOptions(stream=True),
        )
        device_task = asyncio.create_task(device.start())
        session = await asyncio.wait_for(
            HostSession.open(f"serial://{path}?baud=115200"), timeout=10
        )
        await asyncio.wait_for(device_task, timeout=5)
        async with session:
            # The serial link carries at most 512-byte writes: that is the MTU.
            assert device.negotiated_mtu_bytes == 512
            device.send_nowait(TouchEvent(Gesture.LONG_PRESS, 7))
            event = await wait_for_event(session, lambda e: isinstance(e, DeviceInput), timeout_s=5)
            assert isinstance(event, DeviceInput)
            await session.display_text("hello over a wire " * 60)  # about 1 KB: fragments
        await device.close()

    try:
        asyncio.run(run())
    finally:
        os.close(master)
