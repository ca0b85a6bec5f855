"""The ``glasses`` command: one JSON document with --json, one clear line on errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import need_binary, need_data

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


LATENCY = {"type": "object", "additionalProperties": {"type": "number", "minimum": 0}}
DEMO_SCHEMA = {
    "type": "object",
    "required": [
        "generated", "report", "duration_s", "counts", "latency_p50_ms", "assistant",
        "photos", "speech",
    ],
    "properties": {
        "counts": {
            "type": "object",
            "required": [
                "commands", "wake_words", "decisions", "answers", "answers_as_expected",
                "frames", "faces_blurred", "text_lines", "spoken_answers", "errors",
            ],
            "additionalProperties": {"type": "integer", "minimum": 0},
        },
        "latency_p50_ms": LATENCY,
        "assistant": {
            "type": "object",
            "required": ["scenario", "wake_words", "decisions", "answers", "errors"],
            "properties": {
                "decisions": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["t_s", "task", "route", "reasons"],
                        "properties": {
                            "route": {"enum": ["local", "cloud", "local_degraded", "refused"]},
                            "reasons": {"type": "array", "minItems": 1},
                        },
                    },
                },
                "answers": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": [
                            "t_s", "skill", "expected_skill", "text", "source", "latency_ms",
                            "frame", "faces", "text_lines", "audio",
                        ],
                        "properties": {"latency_ms": LATENCY},
                    },
                },
            },
        },
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
}  # fmt: skip


@pytest.mark.slow
def test_demo_writes_a_report_with_every_picture(tmp_path: Path) -> None:
    """The whole demo: emulator, cloud server on loopback, assistant, HTML report."""
    import html
    import re
    import wave

    from glasses_sdk import data

    need_data(lambda: data.photo_path("astronaut"))
    need_data(lambda: data.speech_path("two_cities"))
    need_data(data.pedestrian_video_path)
    need_binary("espeak-ng")
    need_binary("flite")
    out = tmp_path / "report"
    result = _run("demo", "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    jsonschema.validate(summary, DEMO_SCHEMA)
    page = (out / "index.html").read_text(encoding="utf-8")
    sources = set(re.findall(r'src="([^"]+)"', page))
    assert {"speech-waveform.png", "speech-logmel.png", "speech.wav"} <= sources
    assert len([s for s in sources if s.endswith("-model.jpg")]) == len(summary["photos"])
    for name in sources:
        assert (out / name).stat().st_size > 1000, name
    assert summary["speech"]["logmel_shape"][0] == 80

    # The assistant part: every command woke the assistant and was answered, spoken,
    # with its photo; the local recognizer (pocketsphinx on synthesized speech,
    # endpointed live) may miss one command's words, not more.
    counts, assistant = summary["counts"], summary["assistant"]
    commands = counts["commands"]
    assert commands >= 4
    assert counts["wake_words"] == commands
    assert counts["answers"] == commands
    assert counts["answers_as_expected"] >= commands - 1
    assert counts["spoken_answers"] == commands
    answers = assistant["answers"]
    skills = {a["skill"] for a in answers}
    assert {"read_text", "take_photo"} <= skills
    # Frames with boxes: photos with blurred faces outlined and text lines drawn.
    frames = [a["frame"] for a in answers if a["frame"]]
    assert len(frames) >= 3 and all(f in sources for f in frames)
    assert counts["faces_blurred"] >= 1 and counts["text_lines"] >= 5
    assert any(a["skill"] == "take_photo" and a["faces"] for a in answers)
    assert any(a["skill"] == "read_text" and a["text_lines"] > 3 for a in answers)
    # Decisions with reasons, local and cloud both.
    routes = {d["route"] for d in assistant["decisions"]}
    assert "local" in routes and "cloud" in routes
    for decision in assistant["decisions"]:
        assert decision["reasons"] and all(r.strip() for r in decision["reasons"])
        assert html.escape(decision["reasons"][0]) in page
    # The spoken answers are audio elements over real WAV files.
    audio = re.findall(r'<audio controls src="(answer-\d+\.wav)"', page)
    assert len(audio) == commands
    for name in audio:
        with wave.open(str(out / name)) as handle:
            assert handle.getframerate() == 16000 and handle.getnframes() > 16000 * 0.3
    assert "<svg" in page and "Latency per stage" in page
    for answer in answers:
        assert answer["latency_ms"]["total"] > 0
    assert summary["duration_s"] < 240
