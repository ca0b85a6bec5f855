"""The model commands: one JSON document each, checked against its JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import jsonschema
import numpy as np
import pytest
import soundfile
import typer
from typer.testing import CliRunner

from glasses_sdk._exceptions import (
    GlassesError,
    InvalidAudioError,
    InvalidConfigError,
    InvalidFrameError,
)
from glasses_sdk.inference import ModelRegistry
from tests.inference.conftest import read_photo

_NUMBER = {"type": "number"}
_POINT = {"type": "array", "items": _NUMBER, "minItems": 2, "maxItems": 2}

VAD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["audio", "sample_rate_hz", "segments", "duration_s", "speech_s", "latency_ms"],
    "properties": {
        "audio": {"type": "string"},
        "sample_rate_hz": {"type": "integer", "minimum": 1},
        "segments": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["start_s", "end_s"],
                "properties": {
                    "start_s": {"type": "number", "minimum": 0},
                    "end_s": {"type": "number", "minimum": 0},
                },
            },
        },
        "duration_s": {"type": "number", "minimum": 0},
        "speech_s": {"type": "number", "minimum": 0},
        "latency_ms": {"type": "number", "minimum": 0},
    },
}

FACES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["image", "model", "faces", "width", "height", "latency_ms", "blurred"],
    "properties": {
        "image": {"type": "string"},
        "model": {"enum": ["short", "full"]},
        "width": {"type": "integer", "minimum": 1},
        "height": {"type": "integer", "minimum": 1},
        "latency_ms": {"type": "number", "minimum": 0},
        "blurred": {"type": ["string", "null"]},
        "faces": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["box", "score", "keypoints"],
                "properties": {
                    "box": {"type": "array", "items": _NUMBER, "minItems": 4, "maxItems": 4},
                    "score": {"type": "number", "minimum": 0, "maximum": 1},
                    "keypoints": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": [
                            "right_eye",
                            "left_eye",
                            "nose_tip",
                            "mouth_centre",
                            "right_ear_tragion",
                            "left_ear_tragion",
                        ],
                        "patternProperties": {".*": _POINT},
                    },
                },
            },
        },
    },
}

OCR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["image", "model_set", "lines", "width", "height", "latency_ms"],
    "properties": {
        "image": {"type": "string"},
        "model_set": {"enum": ["v4", "v5"]},
        "width": {"type": "integer", "minimum": 1},
        "height": {"type": "integer", "minimum": 1},
        "latency_ms": {"type": "number", "minimum": 0},
        "lines": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["polygon", "box", "text", "score"],
                "properties": {
                    "polygon": {"type": "array", "items": _POINT, "minItems": 4, "maxItems": 4},
                    "box": {"type": "array", "items": _NUMBER, "minItems": 4, "maxItems": 4},
                    "text": {"type": "string", "minLength": 1},
                    "score": {"type": "number", "minimum": 0, "maximum": 1},
                },
            },
        },
    },
}

MODELS_LIST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["models"],
    "properties": {
        "models": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": [
                    *("model", "task", "variant", "default", "built", "size_bytes", "licence")
                ],
                "properties": {
                    "model": {"type": "string"},
                    "task": {"type": "string"},
                    "variant": {"type": "string"},
                    "default": {"type": "boolean"},
                    "built": {"type": "boolean"},
                    "size_bytes": {"type": ["integer", "null"]},
                    "licence": {"type": "string"},
                },
            },
        }
    },
}

MODELS_BUILD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["build_dir", "variants"],
    "properties": {
        "build_dir": {"type": "string"},
        "variants": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["model", "variant", "status", "path", "size_bytes", "seconds"],
                "properties": {
                    "model": {"type": "string"},
                    "variant": {"type": "string"},
                    "status": {"enum": ["built", "up-to-date"]},
                    "path": {"type": "string"},
                    "size_bytes": {"type": "integer", "minimum": 1},
                    "seconds": {"type": "number", "minimum": 0},
                },
            },
        },
    },
}


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    """The ``glasses`` command itself."""
    from glasses_sdk.cli import app as glasses_app

    return glasses_app


def _json(app: typer.Typer, *args: str) -> Any:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)  # exactly one document, nothing else on stdout


def test_vad_json(app: typer.Typer, registry: ModelRegistry, speech_wav_path: Path) -> None:
    document = _json(app, "vad", str(speech_wav_path), "--json")
    jsonschema.validate(document, VAD_SCHEMA)
    assert document["sample_rate_hz"] == 16000
    assert len(document["segments"]) >= 3


@pytest.mark.usefixtures("registry")
@pytest.mark.parametrize("fmt_rate", [("FLAC", 44100), ("OGG", 48000), ("WAV", 22050)])
def test_vad_reads_other_formats_and_rates(
    app: typer.Typer, speech_wav_path: Path, tmp_path: Path, fmt_rate: tuple[str, int]
) -> None:
    from scipy.signal import resample_poly

    fmt, rate = fmt_rate
    samples, source_rate = soundfile.read(str(speech_wav_path), dtype="float32")
    resampled = resample_poly(samples, rate // 100, source_rate // 100).astype(np.float32)
    stereo = np.stack([resampled, resampled], axis=1)
    path = tmp_path / f"speech.{fmt.lower()}"
    soundfile.write(str(path), stereo, rate, format=fmt)
    document = _json(app, "vad", str(path), "--json")
    jsonschema.validate(document, VAD_SCHEMA)
    assert document["sample_rate_hz"] == rate
    assert len(document["segments"]) >= 3


def test_faces_json_and_blur(app: typer.Typer, registry: ModelRegistry, tmp_path: Path) -> None:
    source = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(source), read_photo("astronaut"))
    out = tmp_path / "blurred.png"
    document = _json(app, "faces", str(source), "--json", "--blur", str(out))
    jsonschema.validate(document, FACES_SCHEMA)
    assert len(document["faces"]) == 1
    assert document["blurred"] == str(out)
    blurred = cv2.imread(str(out))
    assert blurred is not None
    assert blurred.shape == (512, 512, 3)
    full = _json(app, "faces", str(source), "--json", "--model", "full")
    jsonschema.validate(full, FACES_SCHEMA)
    assert len(full["faces"]) == 1


def test_faces_on_a_grey_image(app: typer.Typer, registry: ModelRegistry, tmp_path: Path) -> None:
    source = tmp_path / "camera.bmp"
    cv2.imwrite(str(source), cv2.cvtColor(read_photo("camera"), cv2.COLOR_BGR2GRAY))
    document = _json(app, "faces", str(source), "--json")
    jsonschema.validate(document, FACES_SCHEMA)
    assert len(document["faces"]) == 1


def test_ocr_json(app: typer.Typer, registry: ModelRegistry, tmp_path: Path) -> None:
    from tests.inference.test_ocr import RENDERED_LINES, render

    source = tmp_path / "sign.webp"
    assert cv2.imwrite(str(source), render(RENDERED_LINES), [cv2.IMWRITE_WEBP_QUALITY, 100])
    document = _json(app, "ocr", str(source), "--json")
    jsonschema.validate(document, OCR_SCHEMA)
    assert [line["text"] for line in document["lines"]] == RENDERED_LINES
    v5 = _json(app, "ocr", str(source), "--json", "--model-set", "v5")
    jsonschema.validate(v5, OCR_SCHEMA)
    assert v5["model_set"] == "v5"
    assert [line["text"] for line in v5["lines"]] == RENDERED_LINES
    wrong = CliRunner().invoke(app, ["ocr", str(source), "--model-set", "v6"])
    assert wrong.exit_code != 0
    assert isinstance(wrong.exception, InvalidConfigError)
    assert "model_set: expected one of ('v4', 'v5'), got 'v6'" in str(wrong.exception)


def test_models_list_and_build_json(app: typer.Typer, registry: ModelRegistry) -> None:
    listing = _json(app, "models", "list", "--json")
    jsonschema.validate(listing, MODELS_LIST_SCHEMA)
    assert all(row["built"] for row in listing["models"])
    assert sum(row["default"] for row in listing["models"]) == len(registry.models)
    build = _json(app, "models", "build", "--json")
    jsonschema.validate(build, MODELS_BUILD_SCHEMA)
    assert {v["status"] for v in build["variants"]} == {"up-to-date"}


def test_human_output_goes_to_stdout_and_stderr(
    app: typer.Typer, registry: ModelRegistry, speech_wav_path: Path
) -> None:
    result = CliRunner().invoke(app, ["vad", str(speech_wav_path)])
    assert result.exit_code == 0
    assert "speech" in result.stdout
    assert "segments" in result.stderr


@pytest.mark.usefixtures("registry")
@pytest.mark.parametrize(
    "case",
    [
        ("vad", None, InvalidAudioError, "no such audio file"),
        ("vad", b"RIFF not really a wave", InvalidAudioError, "not audio that can be read"),
        ("faces", None, InvalidFrameError, "no such image file"),
        ("faces", b"\x89PNG broken", InvalidFrameError, "not an image OpenCV can read"),
        ("faces", b"", InvalidFrameError, "not an image OpenCV can read"),
        ("ocr", b"GIF89a", InvalidFrameError, "not an image OpenCV can read"),
    ],
)
def test_bad_files_fail_with_one_clear_line(
    app: typer.Typer,
    tmp_path: Path,
    case: tuple[str, bytes | None, type[GlassesError], str],
) -> None:
    command, content, error, message = case
    path = tmp_path / "input.bin"
    if content is not None:
        path.write_bytes(content)
    result = CliRunner().invoke(app, [command, str(path), "--json"])
    assert result.exit_code != 0
    assert isinstance(result.exception, error), result.exception
    assert message in str(result.exception)
    assert "\n" not in str(result.exception)
    assert str(path) in str(result.exception)
    assert result.stdout == ""
