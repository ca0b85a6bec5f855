"""The emulator's HTTP side: MJPEG for cv2.VideoCapture, the testers' page in Chromium."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any

import cv2
import numpy as np
import pytest

from firmware_bridge.emulator.web import EmulatorWebServer
from glasses_sdk import data
from glasses_sdk.preprocess import encode_jpeg
from tests.conftest import missing, need_binary, need_data


class FakeEmulatorView:
    """A fake of the emulator's view: real JPEG frames, a state, a log, recorded actions."""

    def __init__(self, frames: list[bytes]) -> None:
        self._frames = frames
        self._index = 0
        self._lock = threading.Lock()
        self.actions: list[tuple[str, dict[str, Any]]] = []
        self._log: list[dict[str, Any]] = [{"text": "hello from the device"}]

    def advance(self) -> None:
        with self._lock:
            self._index = (self._index + 1) % len(self._frames)

    def latest_jpeg(self) -> bytes | None:
        with self._lock:
            return self._frames[self._index]

    def frame_interval_s(self) -> float:
        return 1 / 30

    def state(self) -> dict[str, Any]:
        # The shape of Emulator.state().
        return {
            "led": "ON",
            "battery_percent": 81.5,
            "charging": False,
            "temperature_c": 36.2,
            "throttle_level": "NONE",
            "camera_streaming": True,
            "audio_streaming": True,
            "connections": 1,
            "impairment": "",
            "paired_hosts": 1,
            "insecure": False,
        }

    def log_since(self, index: int) -> tuple[int, list[dict[str, Any]]]:
        with self._lock:
            return len(self._log), self._log[index:]

    def apply_action(self, action: str, params: Mapping[str, Any]) -> dict[str, Any]:
        if action == "tap" and params.get("gesture") not in {
            "tap", "double_tap", "long_press", "swipe_forward", "swipe_backward",
        }:  # fmt: skip
            raise ValueError(f"unknown gesture {params.get('gesture')!r}")
        with self._lock:
            self.actions.append((action, dict(params)))
            self._log.append({"text": f"{action} {dict(params)}"})
        return {"applied": action}


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    video = need_data(data.pedestrian_video_path)
    capture = cv2.VideoCapture(str(video))
    images = []
    for _ in range(3):
        ok, frame = capture.read()
        assert ok
        images.append(cv2.resize(frame, (1280, 720)))
    capture.release()
    return images


@pytest.fixture
def served(frames: list[np.ndarray]) -> Iterator[tuple[EmulatorWebServer, FakeEmulatorView]]:
    view = FakeEmulatorView([encode_jpeg(f, quality=85) for f in frames])
    with EmulatorWebServer(view) as server:
        yield server, view


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _post(url: str, body: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_videocapture_opens_the_mjpeg_stream_like_a_network_camera(
    served: tuple[EmulatorWebServer, FakeEmulatorView], frames: list[np.ndarray]
) -> None:
    server, _view = served
    capture = cv2.VideoCapture(server.stream_url)
    try:
        assert capture.isOpened(), server.stream_url
        ok, frame = capture.read()
    finally:
        capture.release()
    assert ok and frame.shape == (720, 1280, 3)
    psnr = cv2.PSNR(frame, frames[0])
    assert psnr > 30, psnr


def test_routes_hide_behind_the_token(served: tuple[EmulatorWebServer, FakeEmulatorView]) -> None:
    server, _view = served
    assert len(server.token) >= 20
    status, _ = _get(f"http://127.0.0.1:{server.port}/state")
    assert status == 404
    status, body = _get(f"{server.base_url}/state")
    assert status == 200 and json.loads(body)["led"] == "ON"
    status, body = _get(f"{server.base_url}/snapshot.jpg")
    assert status == 200 and body[:2] == b"\xff\xd8"
    status, body = _get(f"{server.base_url}/log?since=0")
    assert status == 200 and json.loads(body)["entries"][0]["text"] == "hello from the device"
    status, _ = _get(f"{server.base_url}/log?since=x")
    assert status == 400


def test_actions_are_validated(served: tuple[EmulatorWebServer, FakeEmulatorView]) -> None:
    server, view = served
    url = f"{server.base_url}/action"
    assert _post(url, b'{"action": "tap", "gesture": "tap"}') == (
        200,
        {"ok": True, "applied": "tap"},
    )
    status, answer = _post(url, b"not json")
    assert status == 400 and "JSON" in answer["error"]
    status, answer = _post(url, b'{"action": "explode"}')
    assert status == 422 and "one of" in answer["error"]
    status, answer = _post(url, b'{"action": "tap", "gesture": "wink"}')
    assert status == 422 and "wink" in answer["error"]
    status, answer = _post(url, b"{" + b" " * 5000 + b"}")
    assert status == 413
    assert view.actions == [("tap", {"gesture": "tap"})]


def test_the_testers_page_in_chromium_shows_state_and_sends_a_tap(
    served: tuple[EmulatorWebServer, FakeEmulatorView],
) -> None:
    chromium = need_binary("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed (the dev extra)")
    server, view = served
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"],
        )
        try:
            page = browser.new_page()
            page.goto(server.page_url, timeout=15_000)
            page.wait_for_function(
                "document.getElementById('battery').textContent.includes('81.5')", timeout=10_000
            )
            assert page.locator("#led-text").inner_text() == "on"
            page.click("#tap")
            page.wait_for_function(
                "document.getElementById('status').textContent === 'tap: done'", timeout=10_000
            )
            page.wait_for_selector("#log .entry", timeout=10_000)
            # The live view shows the camera's frames at their size.
            page.wait_for_function(
                "document.getElementById('camera').naturalWidth === 1280", timeout=10_000
            )
        finally:
            browser.close()
    assert ("tap", {"gesture": "tap"}) in view.actions


def test_a_tap_clicked_on_the_page_reaches_the_connected_host(tmp_path: Any) -> None:
    """The issue's end-to-end check: Chromium clicks Tap, the paired host gets the tap."""
    import asyncio
    import concurrent.futures

    from firmware_bridge.emulator.web import EmulatorWebServer as WebServer
    from firmware_bridge.host import DeviceInput
    from firmware_bridge.protocol import Gesture, TouchEvent
    from tests.firmware_bridge.emulator_helpers import (
        paired_session,
        running_emulator,
        wait_for_event,
    )

    chromium = need_binary("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed (the dev extra)")

    page_url: concurrent.futures.Future[str] = concurrent.futures.Future()
    clicked = threading.Event()

    async def device_and_host() -> Gesture:
        async with running_emulator(state_dir=tmp_path / "device") as emulator:
            web = WebServer(emulator.view())
            web.start()
            try:
                session = await paired_session(emulator, tmp_path / "host")
                try:
                    page_url.set_result(web.page_url)
                    event = await wait_for_event(
                        session,
                        lambda e: isinstance(e, DeviceInput) and isinstance(e.message, TouchEvent),
                        timeout_s=30,
                    )
                    assert isinstance(event, DeviceInput)
                    assert isinstance(event.message, TouchEvent)
                    assert clicked.is_set()
                    return event.message.gesture
                finally:
                    await session.close()
            finally:
                web.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        result = pool.submit(asyncio.run, device_and_host())
        url = page_url.result(timeout=30)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium,
                headless=True,
                args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"],
            )
            try:
                page = browser.new_page()
                page.goto(url, timeout=15_000)
                # The page shows the paired host before the tester taps.
                page.wait_for_function(
                    "document.getElementById('host').textContent.startsWith('1 connected')",
                    timeout=15_000,
                )
                clicked.set()
                page.click("#tap")
                page.wait_for_function(
                    "document.getElementById('status').textContent === 'tap: done'",
                    timeout=10_000,
                )
            finally:
                browser.close()
        assert result.result(timeout=40) == Gesture.TAP


def test_a_camera_source_reads_the_real_emulators_mjpeg_stream(tmp_path: Any) -> None:
    """The SDK's CameraSource opens the emulator's stream like any network camera."""
    import asyncio

    from firmware_bridge.emulator.web import EmulatorWebServer as WebServer
    from glasses_sdk import CameraSource, connect
    from tests.firmware_bridge.emulator_helpers import running_emulator

    async def run() -> tuple[int, int, int]:
        # The emulator streams its camera only to a host that asked for it.
        async with (
            running_emulator(insecure=True, state_dir=tmp_path) as emulator,
            connect(f"{emulator.address}?insecure=1&width=640&height=480&fps=15") as device,
        ):
            await asyncio.wait_for(device.video.read(), timeout=10)
            web = WebServer(emulator.view())
            web.start()
            try:
                async with CameraSource(web.stream_url) as camera:
                    frames = [await asyncio.wait_for(camera.read(), 10) for _ in range(5)]
            finally:
                web.close()
        stamps = [f.timestamp_s for f in frames]
        assert stamps == sorted(stamps)
        return frames[-1].width, frames[-1].height, len(frames)

    assert asyncio.run(run()) == (640, 480, 5)
