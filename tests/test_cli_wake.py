"""`glasses wake detect|train` through Typer, mounted as the CLI mounts it."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import soundfile
import typer
from numpy.typing import NDArray
from typer.testing import CliRunner

from glasses_sdk._cli_wake import wake_app
from glasses_sdk.wakeword_train._synth import Voice, synthesize
from tests.conftest import need_binary

DETECT_SCHEMA = {
    "type": "object",
    "required": ["audio", "sample_rate_hz", "detections", "phrases", "duration_s", "latency_ms"],
    "properties": {
        "detections": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["start_s", "end_s", "score", "phrase"],
                "additionalProperties": False,
                "properties": {
                    "start_s": {"type": "number", "minimum": 0},
                    "end_s": {"type": "number", "minimum": 0},
                    "score": {"type": "number", "minimum": 0, "maximum": 1},
                    "phrase": {"type": "string"},
                },
            },
        },
        "phrases": {"type": "array", "items": {"type": "string"}},
    },
}

app = typer.Typer()
app.add_typer(wake_app, name="wake")


def test_detect_json(tmp_path: Path) -> None:
    need_binary("espeak-ng")
    clip = synthesize("hey glasses", Voice("espeak", "en-gb-x-gbclan", 150))
    audio = np.concatenate([np.zeros(16000, np.float32), clip, np.zeros(16000, np.float32)])
    path = tmp_path / "wake.wav"
    soundfile.write(path, resample_to_48k(audio), 48000, subtype="PCM_16")
    result = CliRunner().invoke(app, ["wake", "detect", str(path), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    jsonschema.validate(document, DETECT_SCHEMA)
    assert document["sample_rate_hz"] == 48000
    assert [d["phrase"] for d in document["detections"]] == ["hey glasses"]
    d = document["detections"][0]
    assert set(d) == {"start_s", "end_s", "score", "phrase"}
    assert 0.5 < d["end_s"] < 3.5 and d["start_s"] < d["end_s"] and 0 < d["score"] <= 1


def resample_to_48k(audio: NDArray[np.float32]) -> NDArray[np.float32]:
    from glasses_sdk.preprocess.audio import resample

    return resample(audio.astype(np.float32), 16000, 48000)


def test_detect_rejects_a_missing_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["wake", "detect", str(tmp_path / "nope.wav")])
    assert result.exit_code != 0


def test_train_help_names_the_options() -> None:
    result = CliRunner().invoke(app, ["wake", "train", "--help"])
    assert result.exit_code == 0
    assert "--out" in result.output
