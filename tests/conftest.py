"""Shared fixtures: real test data located through one helper, and the CI rule.

Outside CI a test whose package, binary or data file is missing is skipped with the
reason; with ``CI=true`` it fails instead, so that CI can never pass by skipping.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

import numpy as np
import numpy.typing as npt
import pytest

from glasses_sdk import data
from glasses_sdk._exceptions import DataNotFoundError

T = TypeVar("T")

IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def missing(reason: str) -> NoReturn:
    """Skip the test (or fail it under CI=true) because something it needs is absent."""
    if IN_CI:
        pytest.fail(f"missing in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def need_data(get: Callable[[], T]) -> T:
    """Run a :mod:`glasses_sdk.data` lookup, turning a missing file into :func:`missing`."""
    try:
        return get()
    except DataNotFoundError as exc:
        missing(str(exc))


def need_binary(name: str) -> str:
    """The path of an executable, or :func:`missing`."""
    path = shutil.which(name)
    if path is None:
        missing(f"executable {name!r} is not installed (scripts/install-system-deps)")
    return path


@pytest.fixture(scope="session")
def real_photo_paths() -> list[Path]:
    """Real colour and grey photos of different sizes and aspect ratios."""
    names = ["astronaut", "camera", "coffee", "chelsea", "page", "motorcycle"]
    return [need_data(lambda n=n: data.photo_path(n)) for n in names]  # type: ignore[misc]


@pytest.fixture(scope="session")
def speech_wav_path() -> Path:
    """A real speech recording (a man reading, about 10 s, 16-bit WAV)."""
    return need_data(lambda: data.speech_path("beckett"))


@pytest.fixture(scope="session")
def pedestrian_video_path() -> Path:
    """The real pedestrian video from Debian's opencv-doc."""
    return need_data(data.pedestrian_video_path)


@pytest.fixture(scope="session")
def real_photo() -> npt.NDArray[np.uint8]:
    """The astronaut photo (a face at about [160, 40, 300, 200]) as BGR uint8 (H, W, 3)."""
    return need_data(lambda: data.load_photo("astronaut"))
