"""Real photos, speech and video for tests, samples and the demo, from installed packages.

Nothing is downloaded at run time. Photos come from scikit-image's wheel
(``skimage/data/``) and speech from moonshine-voice's wheel (``moonshine_voice/assets/``),
both installed aside by ``glasses data install`` (see :mod:`glasses_sdk._sources`); book
pages and a pedestrian video come from Debian's ``opencv-doc`` package. Every function
returns a path that exists, or raises :class:`~glasses_sdk.DataNotFoundError` saying what
to install.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from glasses_sdk._exceptions import DataNotFoundError
from glasses_sdk._sources import INSTALL_HINT, locate_package

__all__ = [
    "OPENCV_DATA_DIR",
    "PHOTOS",
    "SPEECH",
    "lfw_subset_path",
    "load_photo",
    "opencv_sample_path",
    "pedestrian_video_path",
    "photo_path",
    "speech_path",
]

OPENCV_DATA_DIR = Path("/usr/share/doc/opencv-doc/examples/data")
"""Where Debian's opencv-doc package puts its sample data."""

PHOTOS: dict[str, str] = {
    "astronaut": "astronaut.png",  # portrait with one face, 512x512 RGB
    "camera": "camera.png",  # cameraman, one face, 512x512 grey
    "coffee": "coffee.png",  # a cup on a table, 600x400
    "chelsea": "chelsea.png",  # a cat, 451x300
    "page": "page.png",  # a printed page under uneven light, 384x191 grey
    "text": "text.png",  # hand-painted text on a textured wall, 448x172 grey
    "motorcycle": "motorcycle_left.png",  # a motorcycle in a workshop, 741x500
}
"""Names accepted by :func:`photo_path`, mapped to their files in ``skimage/data``."""

SPEECH: dict[str, str] = {
    "beckett": "beckett.wav",  # a man reading, about 10 s
    "two_cities": "two_cities.wav",  # a long read passage
    "endgame": "endgame_nagg_nell.wav",  # two voices in dialogue
}
"""Names accepted by :func:`speech_path`, mapped to files in ``moonshine_voice/assets``."""


def _existing(path: Path, what: str, hint: str) -> Path:
    if not path.is_file():
        raise DataNotFoundError(f"{what} is missing: {path} does not exist; {hint}")
    return path


def photo_path(name: str) -> Path:
    """A real photo shipped by scikit-image, by name (see :data:`PHOTOS`)."""
    try:
        filename = PHOTOS[name]
    except KeyError:
        raise DataNotFoundError(
            f"unknown photo {name!r}; expected one of {', '.join(sorted(PHOTOS))}"
        ) from None
    folder = locate_package("skimage") / "data"
    return _existing(folder / filename, f"photo {name!r}", INSTALL_HINT)


def _without_icc_profile(png: bytes) -> bytes:
    """The PNG without its ``iCCP`` chunk, whose profile we never use.

    Some of scikit-image's photos carry an ICC profile that libpng calls invalid and
    warns about on stderr at every read; dropping the chunk keeps the pixels intact.
    """
    if not png.startswith(b"\x89PNG\r\n\x1a\n"):
        return png
    out, pos = bytearray(png[:8]), 8
    while pos + 12 <= len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        end = pos + 12 + length
        if png[pos + 4 : pos + 8] != b"iCCP":
            out += png[pos:end]
        pos = end
    return bytes(out)


def load_photo(name: str) -> npt.NDArray[np.uint8]:
    """A photo from :data:`PHOTOS` decoded as a BGR ``uint8`` array ``(H, W, 3)``."""
    path = photo_path(name)
    encoded = np.frombuffer(_without_icc_profile(path.read_bytes()), dtype=np.uint8)
    image = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    if image is None:
        raise DataNotFoundError(f"photo {name!r} at {path} could not be decoded")
    return np.ascontiguousarray(image, dtype=np.uint8)


def lfw_subset_path() -> Path:
    """scikit-image's LFW subset: 200 grey 25x25 crops, 100 faces then 100 non-faces."""
    folder = locate_package("skimage") / "data"
    return _existing(folder / "lfw_subset.npy", "the LFW subset", INSTALL_HINT)


def speech_path(name: str = "beckett") -> Path:
    """A real speech recording shipped by moonshine-voice (see :data:`SPEECH`)."""
    try:
        filename = SPEECH[name]
    except KeyError:
        raise DataNotFoundError(
            f"unknown recording {name!r}; expected one of {', '.join(sorted(SPEECH))}"
        ) from None
    folder = locate_package("moonshine_voice") / "assets"
    return _existing(folder / filename, f"recording {name!r}", INSTALL_HINT)


_OPENCV_HINT = "install Debian's opencv-doc (scripts/install-system-deps does it)"


def opencv_sample_path(filename: str) -> Path:
    """A file from Debian's opencv-doc sample data, e.g. ``text_motion.jpg``."""
    if "/" in filename or filename.startswith("."):
        raise DataNotFoundError(f"expected a bare file name, got {filename!r}")
    return _existing(OPENCV_DATA_DIR / filename, f"OpenCV sample {filename!r}", _OPENCV_HINT)


def pedestrian_video_path() -> Path:
    """The pedestrian video (``vtest.avi``, 768x576, 10 fps) from opencv-doc."""
    return opencv_sample_path("vtest.avi")
