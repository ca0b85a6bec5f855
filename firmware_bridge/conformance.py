"""The protocol conformance suite: checks a device (or the emulator) against PROTOCOL.md.

``glasses conformance URI [--json] [--junit FILE]`` runs it; a firmware team points it at
a board. Each check opens its own session, so one failure does not hide the others:

- ``pairing``: a wrong code is refused and the right one pins the device (TCP, unless
  the device runs insecure);
- ``handshake``: HELLO exchanged, MTU negotiated within the protocol's range, the
  capabilities make sense;
- ``keepalive``: an idle link stays up across several ping intervals and measures RTT;
- ``messages``: camera frames (JPEG of the configured size), audio chunks (PCM16),
  battery/thermal/LED reports, photo, speaker audio, volume, display text (or a clean
  ``unsupported``), ping/pong;
- ``led_rule``: the LED is on while the camera streams, and turning it off stops the
  camera or is refused;
- ``fragmentation``: a full-resolution photo arrives intact at several MTUs;
- ``retransmission``: control messages whose first copy is lost still arrive, once;
- ``limits``: garbage, a corrupted frame and an oversized length do not bring the
  session down.

The host side is the SDK's own :class:`~firmware_bridge.host.HostSession`; the suite
adds a link wrapper that drops or injects frames (:class:`_TamperingLink`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np

from firmware_bridge._errors import BridgeError, CommandError, UnsupportedCommandError
from firmware_bridge._secure import PairingStore, connect_tcp, pair_tcp
from firmware_bridge._session import ConnectionOptions
from firmware_bridge.host import HostOptions, HostSession
from firmware_bridge.pairing import PairingRefusedError
from firmware_bridge.protocol import (
    FRAME_HEADER,
    MAX_BLE_MTU_BYTES,
    MIN_MTU_BYTES,
    CaptureLedState,
    FrameDecoder,
    FrameFlag,
    Lane,
)
from firmware_bridge.transports import Link, open_link, parse_link_uri

__all__ = ["CheckResult", "ConformanceReport", "run_conformance"]

CHECKS = (
    "pairing",
    "handshake",
    "keepalive",
    "messages",
    "led_rule",
    "fragmentation",
    "retransmission",
    "limits",
)
"""The checks, in the order they run."""


@dataclass
class CheckResult:
    """One check: ``passed`` is None when it was skipped (``detail`` says why)."""

    name: str
    passed: bool | None
    detail: str
    duration_s: float


@dataclass
class ConformanceReport:
    """Every check's result against one device."""

    uri: str
    results: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when no check failed (skipped checks do not fail the suite)."""
        return all(r.passed is not False for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document."""
        return {
            "uri": self.uri,
            "passed": self.passed,
            "checks": [asdict(r) for r in self.results],
        }

    def to_junit_xml(self) -> str:
        """The report as JUnit XML, for CI systems that read it."""
        failures = sum(r.passed is False for r in self.results)
        skipped = sum(r.passed is None for r in self.results)
        suite = ElementTree.Element(
            "testsuite",
            name="glasses-conformance",
            tests=str(len(self.results)),
            failures=str(failures),
            skipped=str(skipped),
            time=f"{sum(r.duration_s for r in self.results):.3f}",
        )
        for result in self.results:
            case = ElementTree.SubElement(
                suite,
                "testcase",
                classname="conformance",
                name=result.name,
                time=f"{result.duration_s:.3f}",
            )
            if result.passed is False:
                ElementTree.SubElement(
                    case, "failure", message=result.detail[:200]
                ).text = result.detail
            elif result.passed is None:
                ElementTree.SubElement(case, "skipped", message=result.detail)
            else:
                ElementTree.SubElement(case, "system-out").text = result.detail
        return ElementTree.tostring(suite, encoding="unicode", xml_declaration=True)


class _CheckFailedError(Exception):
    """A check's expectation was not met; the message says which."""


class _SkipError(Exception):
    """The check does not apply to this device; the message says why."""


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise _CheckFailedError(message)


class _TamperingLink(Link):
    """Wraps the session's link: drops chosen outgoing frames, injects raw bytes.

    Outgoing writes carry whole frames (the engine never splits a frame across writes),
    so each write is decoded, filtered and re-joined.
    """

    def __init__(self, inner: Link) -> None:
        self.inner = inner
        self.drop_control = 0
        """First copies of this many ack-requested control frames are dropped."""
        self.dropped: list[int] = []
        self._seen: set[int] = set()
        self._decoder = FrameDecoder(max_frame_bytes=65_535)

    @property
    def mtu_bytes(self) -> int:
        return self.inner.mtu_bytes

    @property
    def closed(self) -> bool:
        return self.inner.closed

    async def send(self, packet: bytes) -> None:
        if self.drop_control <= 0:
            await self.inner.send(packet)
            return
        kept = bytearray()
        events = self._decoder.feed(packet) + self._decoder.flush()
        for event in events:
            if isinstance(event, BridgeError):
                continue
            raw = event.pack()
            if (
                event.lane == Lane.CONTROL
                and event.ack_requested
                and self.drop_control > 0
                and event.sequence not in self._seen
            ):
                self._seen.add(event.sequence)
                self.dropped.append(event.sequence)
                self.drop_control -= 1
                continue
            kept += raw
        if kept:
            await self.inner.send(bytes(kept))

    async def inject(self, raw: bytes) -> None:
        """Put bytes on the link as they are (within the MTU per write)."""
        step = self.inner.mtu_bytes
        for start in range(0, len(raw), step):
            await self.inner.send(raw[start : start + step])

    async def receive(self) -> bytes:
        return await self.inner.receive()

    async def close(self) -> None:
        await self.inner.close()


@dataclass
class _Target:
    uri: str
    insecure: bool
    store: PairingStore | None
    code: str | None
    links: list[_TamperingLink] = field(default_factory=list)

    def connector(self) -> Callable[[], Awaitable[Link]]:
        address = parse_link_uri(self.uri)

        async def connect() -> Link:
            if address.scheme == "tcp":
                identity = cert = None
                if not self.insecure:
                    assert self.store is not None
                    cert = self.store.device_cert(f"{address.host}:{address.port}")
                    if cert is None:
                        raise _CheckFailedError("not paired: give --code (or pair first)")
                    identity = self.store.identity()
                link: Link = await connect_tcp(
                    address.host, address.port, identity=identity, device_cert_pem=cert
                )
            else:
                link = await open_link(self.uri)
            wrapped = _TamperingLink(link)
            self.links.append(wrapped)
            return wrapped

        return connect

    @contextlib.asynccontextmanager
    async def session(self, **connection: Any) -> Any:
        # The wrapper hides the link's class, from which the engine guesses whether the
        # link is a byte stream: say it.
        connection.setdefault("stream", parse_link_uri(self.uri).scheme in ("tcp", "serial"))
        options = HostOptions(
            connection=ConnectionOptions(**connection),
            reconnect=False,
            command_timeout_s=5.0,
        )
        session = HostSession(self.connector(), options)
        await asyncio.wait_for(session.start(), timeout=15)
        try:
            yield session
        finally:
            await session.close()


async def _check_pairing(target: _Target) -> str:
    address = parse_link_uri(target.uri)
    if address.scheme != "tcp":
        raise _SkipError(f"{address.scheme} links rely on the OS's bonding, not on pairing")
    if target.insecure:
        raise _SkipError("the device runs insecure (no pairing, no TLS)")
    assert target.store is not None
    if target.code is None:
        if target.store.device_cert(f"{address.host}:{address.port}") is None:
            raise _CheckFailedError("no --code given and this host has not paired with the device")
        raise _SkipError("already paired; give --code to check pairing itself")
    wrong = f"{(int(target.code) + 1) % 1_000_000:06d}"
    try:
        await pair_tcp(address.host, address.port, wrong, target.store.identity())
    except PairingRefusedError:
        pass
    else:
        raise _CheckFailedError(f"the device accepted a wrong code ({wrong})")
    cert = await pair_tcp(address.host, address.port, target.code, target.store.identity())
    target.store.save_device(f"{address.host}:{address.port}", cert)
    return "a wrong code was refused; the right code paired and pinned the device"


async def _check_handshake(target: _Target) -> str:
    async with target.session() as session:
        hello = session.status.hello
        _expect(hello is not None, "no HELLO from the device")
        assert hello is not None
        _expect(bool(hello.firmware_version), "HELLO has an empty firmware version")
        _expect(
            MIN_MTU_BYTES <= hello.mtu_bytes <= 65_535,
            f"HELLO's MTU {hello.mtu_bytes} is outside {MIN_MTU_BYTES}..65535",
        )
        connection = session.connection
        _expect(connection is not None, "no connection after the handshake")
        assert connection is not None
        mtu = connection.negotiated_mtu_bytes
        return (
            f"firmware {hello.firmware_version}, device MTU {hello.mtu_bytes}, negotiated "
            f"{mtu}, {len(hello.camera_resolutions)} camera resolutions"
        )


async def _check_keepalive(target: _Target) -> str:
    async with target.session(ping_interval_ms=300.0, dead_after_ms=1_500.0) as session:
        await asyncio.sleep(1.6)  # longer than dead_after: only pongs keep it alive
        connection = session.connection
        _expect(
            connection is not None and not connection.closed,
            "the link was declared dead while idle: pings were not answered",
        )
        assert connection is not None
        rtt = connection.stats.rtt_ms
        _expect(rtt is not None, "no PONG came back: no round-trip time")
        return f"idle 1.6 s with 300 ms pings; RTT {rtt:.2f} ms"


def _smallest_resolution(session: HostSession) -> tuple[int, int, int]:
    hello = session.status.hello
    if hello is None or not hello.camera_resolutions:
        raise _SkipError("the device reports no camera")
    best = min(hello.camera_resolutions, key=lambda r: r.width_px * r.height_px)
    fps = min(hello.camera_fps) if hello.camera_fps else 10
    return best.width_px, best.height_px, fps


async def _check_messages(target: _Target) -> str:
    import cv2

    async with target.session() as session:
        width, height, fps = _smallest_resolution(session)
        await session.configure_camera(width_px=width, height_px=height, fps=fps)
        await session.configure_audio()
        frame = await session.next_frame(timeout_s=5)
        image = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise _CheckFailedError("a camera frame is not a decodable JPEG")
        _expect(
            image.shape[:2] == (height, width),
            f"asked for {width}x{height}, got a {image.shape[1]}x{image.shape[0]} frame",
        )
        chunk = await session.next_audio(timeout_s=5)
        _expect(len(chunk.pcm) % 2 == 0 and len(chunk.pcm) > 0, "audio is not PCM16")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (
            session.status.battery_percent is None or session.status.temperature_c is None
        ):
            await asyncio.sleep(0.1)
        status = session.status
        _expect(status.battery_percent is not None, "no battery report within 5 s")
        _expect(status.temperature_c is not None, "no thermal report within 5 s")
        photo = await session.take_photo()
        _expect(photo.jpeg[:2] == b"\xff\xd8", "the photo is not a JPEG")
        hello = session.status.hello
        assert hello is not None
        volume = await session.set_volume(40)
        speaker = "no speaker"
        if hello.has_speaker:
            speaker = f"speaker took {await session.play_audio(bytes(3200))}"
        display = "display text shown"
        try:
            await session.display_text("conformance")
        except UnsupportedCommandError:
            _expect(not hello.has_display, "display text refused by a device with a display")
            display = "display text: unsupported (no display)"
        return (
            f"frame {width}x{height}, audio {len(chunk.pcm) // 2} samples, battery "
            f"{status.battery_percent}%, {status.temperature_c} °C, photo "
            f"{len(photo.jpeg)} bytes, volume {volume}%, {speaker}, {display}"
        )


async def _check_led_rule(target: _Target) -> str:
    async with target.session() as session:
        hello = session.status.hello
        if hello is None or not hello.has_capture_led:
            raise _SkipError("the device has no capture LED")
        width, height, fps = _smallest_resolution(session)
        await session.configure_camera(width_px=width, height_px=height, fps=fps)
        await session.next_frame(timeout_s=5)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and session.status.led != CaptureLedState.ON:
            await asyncio.sleep(0.05)
        _expect(session.status.led == CaptureLedState.ON, "streaming with the LED not on")
        try:
            await session.set_led(False)
        except CommandError as exc:
            return f"LED on while streaming; turning it off was refused ({exc})"
        led_off_s = time.monotonic()
        # Frames captured before the LED went off may still be in flight: only a frame
        # whose capture time (on our clock) is later counts against the device.
        deadline = led_off_s + 2.0
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                frame = await session.next_frame(timeout_s=remaining)
            except TimeoutError:
                break
            if session.to_host_time_s(frame.timestamp_us) > led_off_s + 0.1:
                raise _CheckFailedError("the camera kept streaming after the LED was turned off")
        return "LED on while streaming; with the LED off the camera stopped"


async def _check_fragmentation(target: _Target, mtus: tuple[int, ...]) -> str:
    import cv2

    seen = []
    for mtu in mtus:
        async with target.session(mtu_bytes=mtu) as session:
            connection = session.connection
            assert connection is not None
            negotiated = connection.negotiated_mtu_bytes
            _expect(negotiated <= mtu, f"asked for MTU {mtu}, the link uses {negotiated}")
            photo = await session.take_photo()
            image = cv2.imdecode(np.frombuffer(photo.jpeg, np.uint8), cv2.IMREAD_COLOR)
            _expect(image is not None, f"the photo at MTU {mtu} does not decode")
            fragments = -(-len(photo.jpeg) // max(1, negotiated - 18))
            seen.append(f"MTU {negotiated}: {len(photo.jpeg)} bytes in ~{fragments} frames")
    return "; ".join(seen)


async def _check_retransmission(target: _Target) -> str:
    async with target.session(ack_timeout_ms=200.0) as session:
        link = target.links[-1]
        link.drop_control = 3
        for percent in (10, 20, 30):
            _expect(
                await session.set_volume(percent) == percent,
                f"volume {percent}% was not applied once",
            )
        connection = session.connection
        assert connection is not None
        _expect(len(link.dropped) == 3, f"only {len(link.dropped)} frames were dropped")
        _expect(
            connection.stats.retransmissions >= 3,
            f"{connection.stats.retransmissions} retransmissions for 3 lost frames",
        )
        return (
            f"3 first copies dropped (sequences {link.dropped}); all 3 commands applied "
            f"after {connection.stats.retransmissions} retransmissions"
        )


def _bad_frames() -> list[tuple[str, bytes]]:
    """Garbage, a frame with a wrong CRC, and a header that claims a huge payload."""
    header = FRAME_HEADER.pack(b"GB", 1, 0x01, 0, int(Lane.CONTROL), 7, 4, 0)
    body = b"\x00\x01\x02\x03"
    crc = zlib.crc32(header[:10] + body)
    corrupt = FRAME_HEADER.pack(b"GB", 1, 0x01, 0, int(Lane.CONTROL), 7, 4, crc ^ 1) + body
    oversized = FRAME_HEADER.pack(b"GB", 1, 0x01, int(FrameFlag(0)), 0, 8, 65_000, 0)
    return [
        ("garbage", os.urandom(2_000)),
        ("bad CRC", corrupt),
        ("oversized length", oversized + b"\x00" * 64),
    ]


async def _check_limits(target: _Target) -> str:
    async with target.session() as session:
        link = target.links[-1]
        for _name, raw in _bad_frames():
            await link.inject(raw)
        await asyncio.sleep(0.3)
        # The device must still be there: a command round-trips after the bad bytes.
        _expect(await session.set_volume(55) == 55, "the device stopped answering")
        connection = session.connection
        _expect(connection is not None and not connection.closed, "the session closed")
        return "garbage, a bad CRC and an oversized length were dropped; the device answers"


async def run_conformance(
    uri: str,
    *,
    insecure: bool = False,
    code: str | None = None,
    pairing_dir: Path | None = None,
    mtus: tuple[int, ...] = (MAX_BLE_MTU_BYTES, 2_048, 16_384),
    only: tuple[str, ...] = CHECKS,
) -> ConformanceReport:
    """Run the checks against the device at ``uri`` and return the report.

    ``code`` is the pairing code the device shows (TCP); without one the host's
    existing pairing is used. ``pairing_dir`` defaults to a temporary folder when a
    code is given (so the suite never changes the user's own pairings).
    """
    parse_link_uri(uri)  # a bad URI fails here, before any check
    with tempfile.TemporaryDirectory() as scratch:
        folder = pairing_dir or (Path(scratch) if code is not None else None)
        store = PairingStore(folder) if folder is not None else PairingStore.default()
        target = _Target(uri, insecure, store, code)
        report = ConformanceReport(uri)
        steps: dict[str, Callable[[], Awaitable[str]]] = {
            "pairing": lambda: _check_pairing(target),
            "handshake": lambda: _check_handshake(target),
            "keepalive": lambda: _check_keepalive(target),
            "messages": lambda: _check_messages(target),
            "led_rule": lambda: _check_led_rule(target),
            "fragmentation": lambda: _check_fragmentation(target, mtus),
            "retransmission": lambda: _check_retransmission(target),
            "limits": lambda: _check_limits(target),
        }
        for name in only:
            start = time.monotonic()
            try:
                detail = await asyncio.wait_for(steps[name](), timeout=60)
                passed: bool | None = True
            except _SkipError as exc:
                passed, detail = None, str(exc)
            except _CheckFailedError as exc:
                passed, detail = False, str(exc)
            except TimeoutError:
                passed, detail = False, "timed out"
            except (BridgeError, OSError) as exc:
                passed, detail = False, f"{type(exc).__name__}: {exc}"
            report.results.append(CheckResult(name, passed, detail, time.monotonic() - start))
        return report
