"""The privacy filter: faces blurred before a frame may leave the device, and kept
media deleted past their retention.

Only :class:`PrivacyFilter` can make a :class:`FilteredFrame` (its constructor checks a
private token), and the assistant's cloud path accepts images only as
``FilteredFrame``: a frame that skipped the filter cannot be uploaded by mistake. The
filtered pixels are read-only, so nothing can paint a face back afterwards.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from glasses_sdk._exceptions import InvalidConfigError, InvalidFrameError
from glasses_sdk.assistant._options import PrivacyOptions

__all__ = ["FilteredFrame", "MediaStore", "PrivacyFilter"]

log = logging.getLogger("glasses_sdk.assistant.privacy")

Box = tuple[float, float, float, float]

_TOKEN = object()


@dataclass(frozen=True, slots=True)
class FilteredFrame:
    """A frame that went through the privacy filter: BGR pixels (read-only), the face
    boxes ``[x0, y0, x1, y1]`` found in it, and whether they were blurred.

    Made only by :meth:`PrivacyFilter.apply`; constructing one directly raises.
    """

    image: NDArray[np.uint8]
    faces: tuple[Box, ...]
    blurred: bool
    _token: object = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._token is not _TOKEN:
            raise InvalidFrameError(
                "FilteredFrame: expected one made by PrivacyFilter.apply(frame); frames "
                "reach the cloud only through the privacy filter"
            )

    @property
    def width(self) -> int:
        """Width in pixels."""
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        """Height in pixels."""
        return int(self.image.shape[0])

    def to_jpeg(self, quality: int = 90) -> bytes:
        """The filtered pixels as JPEG (what an upload sends)."""
        from glasses_sdk.preprocess import encode_jpeg

        return bytes(encode_jpeg(self.image, quality=quality))


class PrivacyFilter:
    """Blurs the faces of a frame (BlazeFace, then pixelation grown by a margin).

    With ``blur_faces`` off (which needs a reason), frames pass unchanged and the reason
    is logged at WARNING when the filter is made. One instance may be called from
    several threads: the detector, which reuses buffers, is used under a lock.
    """

    def __init__(self, options: PrivacyOptions | None = None, *, detector: Any = None) -> None:
        """``detector`` is a :class:`~glasses_sdk.inference.FaceDetector` (built lazily,
        with ``options.face_model``, when not given)."""
        self.options = options or PrivacyOptions()
        self._detector = detector
        self._lock = threading.Lock()
        if not self.options.blur_faces:
            log.warning(
                "face blurring is OFF: frames with faces may leave the device; reason "
                "given by the app: %s",
                self.options.reason,
            )

    def _face_detector(self) -> Any:
        if self._detector is None:
            from glasses_sdk.inference import FaceDetector, FaceDetectorOptions

            self._detector = FaceDetector(
                FaceDetectorOptions(
                    model=self.options.face_model,  # type: ignore[arg-type]
                    score_threshold=self.options.face_score_threshold,
                )
            )
        return self._detector

    def warm_up(self) -> None:
        """Load the face model now rather than on the first frame."""
        if self.options.blur_faces:
            with self._lock:
                self._face_detector()

    def apply(self, frame_bgr: NDArray[np.uint8]) -> FilteredFrame:
        """A blurred copy of ``frame_bgr`` (BGR ``uint8`` ``(H, W, 3)``); the input is
        left as it was."""
        if (
            not isinstance(frame_bgr, np.ndarray)
            or frame_bgr.dtype != np.uint8
            or frame_bgr.ndim != 3
            or frame_bgr.shape[2] != 3
            or frame_bgr.size == 0
        ):
            got = (
                f"dtype {frame_bgr.dtype} and shape {frame_bgr.shape}"
                if isinstance(frame_bgr, np.ndarray)
                else type(frame_bgr).__name__
            )
            raise InvalidFrameError(f"frame_bgr: expected a BGR uint8 (H, W, 3) image, got {got}")
        image = np.array(frame_bgr, dtype=np.uint8, copy=True)
        faces: tuple[Box, ...] = ()
        blurred = False
        if self.options.blur_faces:
            from glasses_sdk.inference import blur_faces

            with self._lock:
                result = self._face_detector().detect(image)
            blur_faces(image, result.faces, margin_fraction=self.options.margin)
            faces = tuple(face.box for face in result.faces)
            blurred = True
        image.flags.writeable = False
        return FilteredFrame(image, faces, blurred, _TOKEN)


class MediaStore:
    """Photos the app chose to keep (``keep_media``), deleted past ``retention_s``.

    Files are named ``<kind>-<unix ms>.<ext>``; :meth:`purge` deletes those whose
    modification time is older than the retention and runs on every save and when the
    assistant starts.
    """

    def __init__(self, directory: Path, retention_s: float) -> None:
        if retention_s <= 0:
            raise InvalidConfigError(f"retention_s: expected > 0, got {retention_s}")
        self.directory = Path(directory)
        self.retention_s = float(retention_s)

    def save(self, kind: str, data: bytes, ext: str) -> Path:
        """Write ``data`` as a new file (owner-only permissions) and purge old ones."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.purge()
        stamp = int(time.time() * 1000)
        path = self.directory / f"{kind}-{stamp}.{ext}"
        n = 1
        while path.exists():
            path = self.directory / f"{kind}-{stamp}-{n}.{ext}"
            n += 1
        path.touch(mode=0o600)
        path.write_bytes(data)
        return path

    def purge(self, now_s: float | None = None) -> list[Path]:
        """Delete the kept files older than the retention; return what was deleted."""
        if not self.directory.is_dir():
            return []
        now_s = time.time() if now_s is None else now_s
        deleted: list[Path] = []
        for path in self.directory.iterdir():
            try:
                if path.is_file() and now_s - path.stat().st_mtime > self.retention_s:
                    path.unlink()
                    deleted.append(path)
            except FileNotFoundError:  # deleted meanwhile by another purge
                continue
        return deleted
