"""The trainer end to end on a shortened recipe: another phrase, synthesized, trained,
exported, thresholded, and detected by the streaming detector."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from glasses_sdk._exceptions import InvalidConfigError
from glasses_sdk.inference.wakeword import WakeWordDetector, WakeWordModel, WakeWordOptions
from glasses_sdk.wakeword_train._data import near_misses, normalize_phrase
from glasses_sdk.wakeword_train._synth import Voice, espeak_voices, synthesize
from tests.conftest import missing, need_binary

# The shortened training takes about 3 minutes of CPU (2 threads); a shared machine
# needs more wall time than the default per-test limit.
pytestmark = pytest.mark.timeout(900)

PHRASE = "hey nova"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need_binary("espeak-ng")
    try:
        import torch  # noqa: F401
    except ImportError:
        missing("torch is not installed: pip install torch==2.13.0 (extra 'train')")
    from glasses_sdk.wakeword_train import TrainConfig, train

    out = tmp_path_factory.mktemp("hey_nova")
    train(PHRASE, out, TrainConfig.quick(), progress=False)
    return out


def test_shortened_training_writes_a_model_that_meets_its_held_out_goal(trained: Path) -> None:
    card = json.loads((trained / "wakeword.json").read_text())
    assert card["phrase"] == PHRASE
    assert card["metrics"]["heldout_frr"] <= 0.30, card["metrics"]
    assert card["metrics"]["heldout_far_windows"] <= 0.05, card["metrics"]
    assert card["data"]["positive_utterances"] > 200
    assert "glasses wake train" in card["command"]
    assert (trained / "MODEL_CARD.md").read_text().startswith('# Wake word: "hey nova"')
    assert (trained / "model.onnx").stat().st_size < 1_000_000


def test_trained_model_runs_in_the_detector_beside_the_shipped_one(trained: Path) -> None:
    model = WakeWordModel.load(trained)
    assert model.phrase == PHRASE
    detector = WakeWordDetector(WakeWordOptions(models=(trained, "hey-glasses")))
    names = espeak_voices(held_out=True)[::4]
    silence = np.zeros(16000, np.float32)
    clips = [synthesize(PHRASE, Voice("espeak", n, 150)) for n in names]
    audio = np.concatenate([x for c in clips for x in (silence, c)] + [silence])
    result = detector.detect(audio, 16000)
    heard = [d for d in result.detections if d.phrase == PHRASE]
    assert len(heard) >= 0.6 * len(clips), [d.to_json() for d in result.detections]
    assert result.scores.shape[1] == 2


def test_phrases_and_near_misses() -> None:
    assert normalize_phrase("  Hey,  NOVA! ") == "hey nova"
    with pytest.raises(InvalidConfigError):
        normalize_phrase("?!")
    misses = near_misses("hey nova", np.random.default_rng(0))
    assert "hey" in misses and "nova" in misses
    assert all("hey nova" not in m for m in misses)
