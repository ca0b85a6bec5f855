"""The emulator's HTTP side: its camera as MJPEG, and a web page for hardware testers.

``cv2.VideoCapture("http://127.0.0.1:PORT/TOKEN/stream.mjpg")`` opens the camera like a
network camera; ``/TOKEN/`` is the testers' page (live view, LED, battery, thermal and
link state, buttons to tap, inject a fault or play a speech clip, and a log of
messages). Everything listens on 127.0.0.1 behind a random URL token unless the
emulator runs ``--insecure``, so that another local user cannot watch the camera.

The server runs in its own threads (``http.server``), so a slow browser never stalls
the emulator's event loop; it reads the emulator through :class:`EmulatorView`, whose
methods must be thread-safe (return snapshots).

Routes (all under ``/TOKEN``): ``GET /`` page, ``GET /stream.mjpg`` multipart MJPEG,
``GET /snapshot.jpg``, ``GET /state`` JSON, ``GET /log?since=N`` JSON,
``POST /action`` JSON ``{"action": NAME, ...}`` (see :data:`ACTIONS`).
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

__all__ = ["ACTIONS", "EmulatorView", "EmulatorWebServer"]

ACTIONS: Mapping[str, str] = {
    "tap": "a touchpad gesture: gesture = tap | double_tap | long_press | swipe_forward | "
    "swipe_backward",
    "fault": "inject a fault: fault = link_loss | low_battery | overheat | stall | recover",
    "speech": "play a speech clip into the microphone: clip = a recording name",
}
"""What ``POST /action`` accepts, and what each does."""

_MAX_BODY_BYTES = 4096
_BOUNDARY = "glassesframe"


class EmulatorView(Protocol):
    """What the web server needs from the emulator; every method must be thread-safe."""

    def latest_jpeg(self) -> bytes | None:
        """The newest camera frame as JPEG, or None while the camera is off."""

    def frame_interval_s(self) -> float:
        """Time between camera frames, to pace the MJPEG stream."""

    def state(self) -> dict[str, Any]:
        """A JSON-ready snapshot: LED, battery, thermal, link, streaming flags."""

    def log_since(self, index: int) -> tuple[int, list[dict[str, Any]]]:
        """Log entries after ``index`` and the index to ask from next time."""

    def apply_action(self, action: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Run a tester's action; raise ``ValueError`` with a message for bad input."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the emulator's own log records what matters."""

    def _route(self) -> str | None:
        path = urlsplit(self.path).path
        prefix = self.server.prefix
        if not path.startswith(prefix):
            return None
        rest = path[len(prefix) :]
        return rest or "/"

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: HTTPStatus, document: object) -> None:
        self._send(status, json.dumps(document).encode(), "application/json")

    def do_GET(self) -> None:
        route = self._route()
        view = self.server.view
        if route is None:
            self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})
        elif route == "/":
            self._send(HTTPStatus.OK, self.server.page, "text/html; charset=utf-8")
        elif route == "/state":
            self._json(HTTPStatus.OK, view.state())
        elif route == "/log":
            query = parse_qs(urlsplit(self.path).query)
            try:
                since = int(query.get("since", ["0"])[-1])
            except ValueError:
                self._json(HTTPStatus.BAD_REQUEST, {"error": "since must be an integer"})
                return
            next_index, entries = view.log_since(max(0, since))
            self._json(HTTPStatus.OK, {"next": next_index, "entries": entries})
        elif route == "/snapshot.jpg":
            jpeg = view.latest_jpeg()
            if jpeg is None:
                self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "the camera is off"})
            else:
                self._send(HTTPStatus.OK, jpeg, "image/jpeg")
        elif route == "/stream.mjpg":
            self._stream()
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})

    def _stream(self) -> None:
        view = self.server.view
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={_BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        last: bytes | None = None
        try:
            # Each part ends with the next boundary, so that a browser (which only knows
            # a part is complete when the next boundary arrives) shows it at once.
            self.wfile.write(f"--{_BOUNDARY}\r\n".encode())
            while not self.server.stopping.is_set():
                jpeg = view.latest_jpeg()
                if jpeg is not None and jpeg is not last:
                    head = f"Content-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                    self.wfile.write(head.encode() + jpeg + f"\r\n--{_BOUNDARY}\r\n".encode())
                    self.wfile.flush()
                    last = jpeg
                # Pace at the camera's rate; a new frame is never older than one interval.
                self.server.stopping.wait(max(0.005, view.frame_interval_s() / 2))
        except (BrokenPipeError, ConnectionResetError):
            return  # the viewer went away

    def do_POST(self) -> None:
        if self._route() != "/action":
            self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._json(HTTPStatus.LENGTH_REQUIRED, {"error": "Content-Length is required"})
            return
        if not 0 < length <= _MAX_BODY_BYTES:
            self._json(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                {"error": f"the body must be 1..{_MAX_BODY_BYTES} bytes of JSON"},
            )
            return
        try:
            document = json.loads(self.rfile.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError):
            self._json(HTTPStatus.BAD_REQUEST, {"error": "the body is not JSON"})
            return
        if not isinstance(document, dict) or document.get("action") not in ACTIONS:
            self._json(
                HTTPStatus.UNPROCESSABLE_ENTITY,
                {"error": f"expected {{'action': one of {sorted(ACTIONS)}, ...}}"},
            )
            return
        action = str(document.pop("action"))
        try:
            result = self.server.view.apply_action(action, document)
        except ValueError as exc:
            self._json(HTTPStatus.UNPROCESSABLE_ENTITY, {"error": str(exc)})
            return
        self._json(HTTPStatus.OK, {"ok": True, **result})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], view: EmulatorView, prefix: str) -> None:
        super().__init__(address, _Handler)
        self.view = view
        self.prefix = prefix
        self.stopping = threading.Event()
        self.page = files("firmware_bridge.emulator").joinpath("page.html").read_bytes()


class EmulatorWebServer:
    """Serves the MJPEG stream and the testers' page for one emulator.

    ``insecure=False`` (the default) puts every route behind a random URL token.
    """

    def __init__(
        self, view: EmulatorView, *, host: str = "127.0.0.1", port: int = 0, insecure: bool = False
    ) -> None:
        self.token = "" if insecure else secrets.token_urlsafe(16)
        prefix = f"/{self.token}" if self.token else ""
        self._server = _Server((host, port), view, prefix)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )

    @property
    def port(self) -> int:
        """The port bound (useful with port 0)."""
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://host:port/TOKEN`` (no trailing slash)."""
        host = self._server.server_address[0]
        host_text = host.decode() if isinstance(host, bytes) else str(host)
        return f"http://{host_text}:{self.port}{self._server.prefix}"

    @property
    def page_url(self) -> str:
        """The testers' page."""
        return f"{self.base_url}/"

    @property
    def stream_url(self) -> str:
        """The MJPEG stream, for ``cv2.VideoCapture``."""
        return f"{self.base_url}/stream.mjpg"

    def start(self) -> None:
        """Serve in background threads."""
        self._thread.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop serving and end open streams."""
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout_s)

    def __enter__(self) -> EmulatorWebServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
