"""Training data for a wake word: phrases, synthesis plans, augmentation and features.

Everything here is NumPy; torch is only needed by :mod:`._trainer`. Randomness comes
from one :class:`numpy.random.Generator` passed in, so a seed reproduces the data.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.signal import fftconvolve

from glasses_sdk._exceptions import InvalidConfigError
from glasses_sdk.inference.wakeword import WINDOW_SAMPLES, log_mel_window
from glasses_sdk.wakeword_train._synth import SAMPLE_RATE_HZ, Voice, synthesize

__all__ = [
    "GENERIC_SENTENCES",
    "Augmenter",
    "near_misses",
    "normalize_phrase",
    "plan_voices",
    "synthesize_many",
    "to_window",
]

Audio = NDArray[np.float32]


# Generic speech: everyday sentences and commands someone wearing glasses might say.
GENERIC_SENTENCES = (
    "what time is it", "take a picture of this", "remind me to buy milk",
    "the weather looks nice today", "call my mother please", "how far is the station",
    "I left my keys on the table", "play some music", "turn up the volume",
    "read this sign for me", "where did I park the car", "send a message to Anna",
    "we should meet again next week", "can you hear me now", "this coffee is too hot",
    "the meeting starts at nine", "open the door", "thank you very much",
    "good morning everyone", "let me think about it", "how much does this cost",
    "the train is late again", "I will be there in five minutes", "what is this building",
    "start recording a video", "stop the timer", "set an alarm for seven",
    "translate this into French", "is it going to rain", "who is calling me",
    "navigate to the nearest pharmacy", "the book was better than the film",
    "my phone battery is low", "they are playing football in the park",
    "did you see that", "I need a new pair of shoes", "please speak more slowly",
    "the cat is sleeping on the sofa", "what did she say", "the shop closes at six",
    "pass me the salt", "hello how are you", "okay sounds good", "never mind",
    "yes please", "no thanks", "see you later", "that is a great idea",
    "look at the mountains", "the children are laughing", "listen to this song",
)  # fmt: skip

# Words that share sounds with many phrases, for near-misses and babble.
_FILLER_WORDS = (
    "hey", "hi", "hello", "say", "play", "okay", "class", "glass", "grass", "pass",
    "kisses", "classes", "gases", "places", "faces", "cases", "glad", "less", "yes",
    "guess", "go", "ask", "the", "a", "his", "is", "as", "nova", "over", "never",
)  # fmt: skip
_ONSETS = ("b", "k", "p", "t", "d", "m", "n", "s", "f", "r", "l", "bl", "gr", "tr", "st", "h")
_VOWELS = "aeiou"


def normalize_phrase(phrase: str) -> str:
    """Lower case, letters, digits, apostrophes and single spaces; InvalidConfigError if empty."""
    words = re.findall(r"[a-z0-9']+", phrase.lower())
    if not words:
        raise InvalidConfigError(f"phrase: expected at least one word, got {phrase!r}")
    return " ".join(words)


def _swap_onset(word: str, onset: str) -> str:
    m = re.match(r"^([^aeiouy]*)(.*)$", word)
    rest = m.group(2) if m else word
    return onset + rest if rest else word


def _swap_vowel(word: str, vowel: str) -> str:
    for i, c in enumerate(word):
        if c in _VOWELS:
            return word[:i] + vowel + word[i + 1 :]
    return word


def near_misses(
    phrase: str, rng: np.random.Generator, count: int = 60, *, vowels: bool = True
) -> list[str]:
    """Phrases that share sounds with ``phrase`` but are not it.

    Each word alone, the words in another order, one word replaced by a word whose
    first consonants or first vowel changed, one word dropped, and a filler
    word in front of a part of the phrase. ``vowels=False`` leaves out the vowel changes,
    some of which (an unstressed vowel) a synthesizer speaks the same as the phrase.
    """
    words = normalize_phrase(phrase).split()
    out: set[str] = set()
    out.update(words)
    if len(words) > 1:
        out.add(" ".join(reversed(words)))
        for i in range(len(words)):
            out.add(" ".join(words[:i] + words[i + 1 :]))
    for _ in range(count * 4):
        if len(out) >= count + len(words):
            break
        i = int(rng.integers(len(words)))
        changed = list(words)
        kind = int(rng.integers(3)) if vowels else 2 * int(rng.integers(2))
        if kind == 0:
            changed[i] = _swap_onset(changed[i], str(rng.choice(_ONSETS)))
        elif kind == 1:
            changed[i] = _swap_vowel(changed[i], str(rng.choice(list(_VOWELS))))
        else:
            changed[i] = str(rng.choice(_FILLER_WORDS))
        out.add(" ".join(changed))
    # A candidate that contains the phrase (a filler that repeats a word) is a positive.
    target = " ".join(words)
    return sorted(
        p for p in out if p and target not in p and p.replace(" ", "") != target.replace(" ", "")
    )


def plan_voices(
    names: Sequence[str], count: int, rng: np.random.Generator, *, engine: str = "espeak"
) -> list[Voice]:
    """``count`` voices drawn from ``names`` with random speed, pitch and amplitude."""
    voices = []
    for k in range(count):
        name = names[k % len(names)] if k < len(names) else str(rng.choice(list(names)))
        voices.append(
            Voice(
                engine,
                name,
                speed_wpm=int(rng.integers(110, 211)),
                pitch=int(rng.integers(20, 81)),
                amplitude=int(rng.integers(60, 161)),
            )
        )
    return voices


def synthesize_many(
    jobs: Sequence[tuple[str, Voice]],
    *,
    workers: int = 4,
    on_done: Callable[[], None] | None = None,
) -> list[Audio]:
    """Synthesize ``(text, voice)`` pairs with a few subprocesses at once, in order."""

    def one(job: tuple[str, Voice]) -> Audio:
        audio = synthesize(*job)
        if on_done is not None:
            on_done()
        return audio

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, jobs))


def _colored_noise(n: int, rng: np.random.Generator) -> Audio:
    """White, pink or brown noise of unit RMS (a 1/f^beta spectrum)."""
    beta = float(rng.choice([0.0, 1.0, 2.0, float(rng.uniform(0.0, 2.0))]))
    spectrum = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    freqs = np.arange(n // 2 + 1, dtype=np.float64)
    freqs[0] = 1.0
    spectrum /= freqs ** (beta / 2.0)
    spectrum[0] = 0.0
    noise = np.fft.irfft(spectrum, n)
    rms = float(np.sqrt(np.mean(noise**2))) or 1.0
    return (noise / rms).astype(np.float32)


def _room_impulse(rng: np.random.Generator) -> Audio:
    """A synthetic room: a direct path, then exponentially decaying noise (RT60 0.15-0.7 s)."""
    rt60_s = float(rng.uniform(0.15, 0.7))
    n = int(rt60_s * SAMPLE_RATE_HZ)
    t = np.arange(n) / SAMPLE_RATE_HZ
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60_s)
    tail *= float(rng.uniform(0.1, 0.5)) / (float(np.sqrt(np.sum(tail**2))) or 1.0)
    tail[0] = 1.0
    return tail.astype(np.float32)


@dataclass
class Augmenter:
    """Noise at a random SNR, a synthetic room, a random gain; probabilities per effect.

    ``babble`` is speech (other synthesized phrases) that serves as one kind of noise.
    """

    rng: np.random.Generator
    babble: Sequence[Audio] = ()
    snr_db: tuple[float, float] = (5.0, 20.0)
    p_noise: float = 0.7
    p_reverb: float = 0.4
    gain_db: tuple[float, float] = (-18.0, 6.0)

    def noise(self, n: int) -> Audio:
        """A noise of ``n`` samples and unit RMS: colored noise or speech babble."""
        if self.babble and self.rng.random() < 0.3:
            out = np.zeros(n, np.float32)
            for _ in range(int(self.rng.integers(1, 4))):
                clip = self.babble[int(self.rng.integers(len(self.babble)))]
                start = int(self.rng.integers(-clip.size, n)) if n else 0
                lo, hi = max(start, 0), min(start + clip.size, n)
                if hi > lo:
                    out[lo:hi] += clip[lo - start : hi - start]
            rms = float(np.sqrt(np.mean(out**2)))
            if rms > 1e-6:
                return out / np.float32(rms)
        return _colored_noise(n, self.rng)

    def __call__(self, x: Audio) -> Audio:
        """``x`` (a whole window) with reverberation, noise and gain applied at random."""
        y = x
        if self.rng.random() < self.p_reverb:
            y = fftconvolve(y, _room_impulse(self.rng))[: y.size].astype(np.float32)
        if self.rng.random() < self.p_noise:
            signal_rms = float(np.sqrt(np.mean(y**2))) or 1e-3
            snr = float(self.rng.uniform(*self.snr_db))
            y = y + self.noise(y.size) * np.float32(signal_rms / 10 ** (snr / 20.0))
        gain = 10 ** (float(self.rng.uniform(*self.gain_db)) / 20.0)
        y = y * np.float32(gain)
        peak = float(np.abs(y).max(initial=0.0))
        if peak > 0.99:
            y = y * np.float32(0.99 / peak)
        return y.astype(np.float32)


def to_window(clip: Audio, rng: np.random.Generator, *, background: Audio | None = None) -> Audio:
    """``clip`` placed at a random position inside one model window of audio.

    A clip longer than the window is cut to a random window-long piece (negatives only:
    the positives are synthesized to fit). ``background`` fills the rest when given.
    """
    out = np.zeros(WINDOW_SAMPLES, np.float32) if background is None else background.copy()
    if clip.size >= WINDOW_SAMPLES:
        start = int(rng.integers(0, clip.size - WINDOW_SAMPLES + 1))
        out += clip[start : start + WINDOW_SAMPLES]
        return out
    start = int(rng.integers(0, WINDOW_SAMPLES - clip.size + 1))
    out[start : start + clip.size] += clip
    return out


def features(windows: Sequence[Audio]) -> NDArray[np.float32]:
    """The log-mel windows ``(n, n_mels, WINDOW_FRAMES)`` the detector computes."""
    return np.stack([log_mel_window(w) for w in windows])
