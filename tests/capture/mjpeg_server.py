"""A tiny real MJPEG-over-HTTP camera for tests: ``multipart/x-mixed-replace`` JPEG
frames on 127.0.0.1, port 0, the way network cameras (and the emulator) stream.

Each connection gets the frames in a loop at ``fps``, each JPEG's first pixels
carrying nothing special; ``frames_per_connection`` ends a connection early to play a
camera that drops off the network.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

BOUNDARY = "glassesframe"


class MjpegServer:
    """Serve ``jpegs`` at ``http://127.0.0.1:<port>/stream.mjpg`` until closed."""

    def __init__(
        self,
        jpegs: Sequence[bytes],
        *,
        fps: float = 30.0,
        frames_per_connection: int | None = None,
    ) -> None:
        self.jpegs = list(jpegs)
        self.fps = fps
        self.frames_per_connection = frames_per_connection
        self.connections = 0
        self.accepting = threading.Event()
        self.accepting.set()
        self._stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if self.path != "/stream.mjpg" or not server.accepting.is_set():
                    self.send_error(404 if self.path != "/stream.mjpg" else 503)
                    return
                server.connections += 1
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                interval = 1.0 / server.fps
                due = time.monotonic()
                sent = 0
                try:
                    while not server._stop.is_set():
                        if (
                            server.frames_per_connection is not None
                            and sent >= server.frames_per_connection
                        ):
                            return
                        jpeg = server.jpegs[sent % len(server.jpegs)]
                        self.wfile.write(
                            f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                            f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
                        )
                        self.wfile.write(jpeg)
                        self.wfile.write(b"\r\n")
                        self.wfile.flush()
                        sent += 1
                        due += interval
                        delay = due - time.monotonic()
                        if delay > 0 and server._stop.wait(delay):
                            return
                except (BrokenPipeError, ConnectionResetError):
                    return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/stream.mjpg"

    def start(self) -> Self:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
