"""Fixtures of the inference tests: the models, built once per session, real data."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from glasses_sdk import data
from glasses_sdk._exceptions import DataNotFoundError, MissingDependencyError
from glasses_sdk.inference import ModelRegistry, SessionManager, build_models, default_registry
from tests.conftest import missing, need_data


@pytest.fixture(scope="session")
def registry() -> ModelRegistry:
    """The shipped manifest's registry, with every model built (once per session)."""
    try:
        build_models()
    except MissingDependencyError as exc:
        missing(f"model build tooling: {exc}")
    except DataNotFoundError as exc:
        missing(f"model source packages: {exc}")
    return default_registry()


@pytest.fixture
def sessions() -> SessionManager:
    """A fresh session manager (so that tests do not share sessions)."""
    return SessionManager()


@pytest.fixture(scope="session")
def speech_16k(speech_wav_path: Path) -> NDArray[np.float32]:
    """The real speech recording as 16 kHz mono float32."""
    import soundfile

    samples, rate = soundfile.read(str(speech_wav_path), dtype="float32")
    assert rate == 16000, rate
    return np.ascontiguousarray(samples if samples.ndim == 1 else samples.mean(axis=1))


def read_photo(name: str) -> NDArray[np.uint8]:
    """A scikit-image photo as BGR uint8."""
    path = need_data(lambda: data.photo_path(name))
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, path
    return np.asarray(image, dtype=np.uint8)


@pytest.fixture(scope="session")
def lfw_crops() -> NDArray[np.uint8]:
    """scikit-image's LFW subset as uint8 grey crops: 100 faces, then 100 non-faces."""
    crops = np.load(need_data(data.lfw_subset_path))
    return np.asarray(np.round(crops * 255), dtype=np.uint8)
