"""The ``glasses`` command: one JSON document with --json, one clear line on errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import need_data

GLASSES = [sys.executable, "-m", "glasses_sdk.cli"]


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GLASSES, *args], capture_output=True, text=True, timeout=300, check=False, cwd=cwd
    )


def test_help_lists_the_commands() -> None:
    result = _run("--help")
    assert result.returncode == 0
    for command in ("demo", "bench", "data"):
        assert command in result.stdout


def test_data_install_json_is_one_document_and_idempotent() -> None:
    result = _run("data", "install", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    jsonschema.validate(
        document,
        {
            "type": "object",
            "required": ["target", "installed"],
            "properties": {
                "target": {"type": "string"},
                "installed": {"type": "array", "items": {"type": "string"}},
            },
        },
    )
    assert document["installed"] == []  # make test installed them already


def test_unwritable_output_is_one_clear_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = _run("demo", "--out", str(blocker / "report"), "--json")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_unknown_option_exits_non_zero_without_traceback() -> None:
    result = _run("demo", "--frobnicate")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr


DEMO_SCHEMA = {
    "type": "object",
    "required": ["generated", "report", "photos", "speech"],
    "properties": {
        "photos": {
            "type": "array",
            "minItems": 5,
            "items": {
                "type": "object",
                "required": ["name", "input_size", "model_input_shape", "letterbox_ms"],
                "properties": {
                    "model_input_shape": {"const": [1, 3, 640, 640]},
                    "letterbox_ms": {"type": "number", "exclusiveMinimum": 0},
                    "box_round_trip_error_px": {"type": "number", "maximum": 1},
                },
            },
        },
        "speech": {
            "type": "object",
            "required": ["duration_s", "logmel_shape", "stream_max_abs_diff_db"],
            "properties": {"stream_max_abs_diff_db": {"type": "number", "maximum": 1e-3}},
        },
    },
}


@pytest.mark.slow
def test_demo_writes_a_report_with_every_picture(tmp_path: Path) -> None:
    from glasses_sdk import data

    need_data(lambda: data.photo_path("astronaut"))
    need_data(lambda: data.speech_path("two_cities"))
    need_data(data.pedestrian_video_path)
    out = tmp_path / "report"
    result = _run("demo", "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    jsonschema.validate(summary, DEMO_SCHEMA)
    page = (out / "index.html").read_text(encoding="utf-8")
    sources = set(__import__("re").findall(r'src="([^"]+)"', page))
    assert {"speech-waveform.png", "speech-logmel.png", "speech.wav"} <= sources
    assert len([s for s in sources if s.endswith("-model.jpg")]) == len(summary["photos"])
    for name in sources:
        assert (out / name).stat().st_size > 1000, name
    assert summary["speech"]["logmel_shape"][0] == 80
