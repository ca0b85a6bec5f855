"""Speech synthesis for wake-word data: espeak-ng (training and held-out), flite, festival.

Each synthesizer runs as a subprocess and its WAV comes back as mono float32 at 16 kHz.
espeak-ng writes 22,050 Hz to stdout with a streaming header (sizes near 0x7fffffff), so the
header is parsed by hand rather than with :mod:`wave`, in :mod:`glasses_sdk._espeak`
(shared with the assistant's speech). flite and festival write files.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from glasses_sdk._espeak import SAMPLE_RATE_HZ, parse_wav, resample_to_16k
from glasses_sdk._exceptions import InvalidAudioError, WakeWordTrainingError
from glasses_sdk.preprocess.audio import SUPPORTED_SAMPLE_RATES_HZ

__all__ = [
    "ESPEAK_ACCENTS",
    "SAMPLE_RATE_HZ",
    "Voice",
    "espeak_voices",
    "festival_voices",
    "flite_voices",
    "synthesize",
]


# espeak-ng's English voices (the gmw ones; the mbrola ones need packages Debian lacks)
# are accents; its variants are speakers (pitch, formants, breathiness). Every accent is
# in training, since an accent that none of the training speech has pronounces the
# phrase with other phonemes; the held-out split is by speaker: the held-out variants
# never reach training.
ESPEAK_ACCENTS = (
    "en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan",
    "en-gb-x-gbcwmd", "en-us-nyc",
)  # fmt: skip
# File names under espeak-ng-data/voices/!v (a wrong name falls back silently to the
# plain voice). Robotic, whispered and "demonic" variants are left out of both splits,
# and so are edward2 and steph3, near copies of the held-out edward and steph2.
_TRAIN_VARIANTS = (
    "", "m1", "m2", "m3", "m4", "m5", "m8", "f1", "f2", "f3", "f4", "klatt", "klatt3",
    "klatt4", "Andy", "Annie", "boris", "david", "ed", "Gene", "linda", "Mario", "max",
    "Michael", "paul", "rob", "steph", "Storm", "zac", "anika", "grandma", "iven", "john",
    "travis", "adam", "belinda", "benjamin", "caleb", "norbert", "pablo", "Denis", "Diogo",
    "Gene2", "Henrique", "Jacky", "Nguyen", "announcer", "antonio", "croak", "gustave",
    "iven2", "iven3", "iven4", "kaukovalta", "klatt5", "klatt6", "marcelo", "michel",
    "miguel", "pedro", "sandro",
)  # fmt: skip
_EVAL_VARIANTS = (
    "", "m6", "m7", "f5", "klatt2", "Alex", "Alicia", "Andrea", "Hugo", "Lee", "Marco",
    "Mike", "quincy", "robert", "aunty", "edward", "shelby", "victor", "grandpa", "steph2",
)  # fmt: skip
_FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
_FESTIVAL_VOICES = ("kal_diphone",)


@dataclass(frozen=True)
class Voice:
    """One synthesizer voice with its prosody: rate in words per minute, pitch 0-99,
    and (espeak-ng only) a gap between words in units of 10 ms."""

    engine: str
    name: str
    speed_wpm: int = 160
    pitch: int = 50
    amplitude: int = 100
    word_gap: int = 0

    def describe(self) -> str:
        """A short label, e.g. ``espeak:en-us+f3@150wpm/p40``."""
        return f"{self.engine}:{self.name}@{self.speed_wpm}wpm/p{self.pitch}"


def espeak_voices(*, held_out: bool) -> list[str]:
    """espeak-ng voice names (``accent+variant``) of the training or the held-out split:
    every accent with the training variants, or with the held-out ones."""
    variants = _EVAL_VARIANTS[1:] if held_out else _TRAIN_VARIANTS
    return [f"{v}+{var}" if var else v for var in variants for v in ESPEAK_ACCENTS]


def flite_voices() -> list[str]:
    """flite's built-in voices (Debian's flite package)."""
    return list(_FLITE_VOICES) if shutil.which("flite") else []


def festival_voices() -> list[str]:
    """festival voices installed here (Debian's festvox-* packages)."""
    return list(_FESTIVAL_VOICES) if shutil.which("text2wave") else []


def _read_wav(data: bytes) -> NDArray[np.float32]:
    """A synthesizer's WAV as mono float32 at 16 kHz."""
    try:
        pcm, rate_hz = parse_wav(data)
    except InvalidAudioError as exc:
        raise WakeWordTrainingError(f"synthesizer output cannot be read: {exc}") from None
    if rate_hz not in SUPPORTED_SAMPLE_RATES_HZ:
        raise WakeWordTrainingError(f"synthesizer wrote an unsupported rate of {rate_hz} Hz")
    return resample_to_16k(pcm, rate_hz)


def _run(cmd: Sequence[str], *, stdin: bytes | None = None) -> bytes:
    try:
        done = subprocess.run(cmd, input=stdin, capture_output=True, check=True, timeout=60)
    except FileNotFoundError as exc:
        raise WakeWordTrainingError(
            f"{cmd[0]} is not installed (Debian: apt-get install espeak-ng flite festival "
            "festvox-kallpc16k)"
        ) from exc
    except subprocess.CalledProcessError as exc:
        raise WakeWordTrainingError(
            f"{cmd[0]} failed: {exc.stderr.decode(errors='replace').strip()}"
        ) from exc
    return done.stdout


def synthesize(text: str, voice: Voice) -> NDArray[np.float32]:
    """``text`` spoken by ``voice`` as mono float32 at 16 kHz, silence trimmed."""
    if voice.engine == "espeak":
        out = _run(
            [
                "espeak-ng", "-v", voice.name, "-s", str(voice.speed_wpm), "-p",
                str(voice.pitch), "-a", str(voice.amplitude), "-g", str(voice.word_gap),
                "--stdout", text,
            ]
        )  # fmt: skip
        samples = _read_wav(out)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "out.wav"
            if voice.engine == "flite":
                stretch = 160.0 / max(voice.speed_wpm, 1)
                _run(
                    ["flite", "-voice", voice.name, "--setf", f"duration_stretch={stretch:.2f}",
                     "-t", text, "-o", str(path)]
                )  # fmt: skip
            elif voice.engine == "festival":
                stretch = 160.0 / max(voice.speed_wpm, 1)
                _run(["text2wave", "-eval", f"(voice_{voice.name})", "-eval",
                      f"(Parameter.set 'Duration_Stretch {stretch:.2f})", "-o", str(path)],
                     stdin=text.encode())  # fmt: skip
            else:
                raise WakeWordTrainingError(f"unknown synthesizer {voice.engine!r}")
            samples = _read_wav(path.read_bytes())
    return _trim(samples)


def _trim(x: NDArray[np.float32], floor: float = 0.01) -> NDArray[np.float32]:
    """Drop leading and trailing near-silence (synthesizers pad a little)."""
    loud = np.flatnonzero(np.abs(x) > floor * max(float(np.abs(x).max(initial=0.0)), 1e-6))
    if loud.size == 0:
        return x[:0].copy()
    return x[loud[0] : loud[-1] + 1].copy()
