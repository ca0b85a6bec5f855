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
    "CONFUSABLES",
    "GENERIC_SENTENCES",
    "Augmenter",
    "near_misses",
    "negative_stream",
    "normalize_phrase",
    "perturb_voice",
    "plan_voices",
    "random_sentences",
    "real_speech",
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
# Everyday phrases that share sounds with wake phrases ("hey ...", "... glasses"); the
# ones that contain the phrase being trained are dropped.
CONFUSABLES = (
    "hey there", "hey guys", "hey you", "hi there", "hey listen", "hey lady", "hey grace",
    "eyeglasses", "sunglasses", "grasses", "a glass", "the glasses", "my glasses",
    "these glasses", "reading glasses", "hey classes", "hey lassie", "hey gladys",
    "hay bales", "glassy", "glossy", "classic", "passes", "masses", "hey class",
    "hey google", "hey siri", "okay google", "hey what's up", "hey wait", "a day off",
    "they gave us", "hey kids", "grey skies", "hey thanks", "hey look", "eight classes",
)  # fmt: skip
# Common words for random sentences: speech in many phonetic contexts, which a handful of
# fixed sentences cannot give (a network memorizes them and fires on the unseen).
_VOCABULARY = (
    "the", "a", "to", "and", "of", "in", "is", "it", "you", "that", "was", "for", "on",
    "are", "with", "as", "they", "be", "at", "one", "have", "this", "from", "or", "had",
    "by", "word", "but", "what", "some", "we", "can", "out", "other", "were", "all",
    "there", "when", "up", "use", "your", "how", "said", "an", "each", "she", "which",
    "do", "their", "time", "if", "will", "way", "about", "many", "then", "them", "write",
    "would", "like", "so", "these", "her", "long", "make", "thing", "see", "him", "two",
    "has", "look", "more", "day", "could", "go", "come", "did", "number", "sound", "no",
    "most", "people", "my", "over", "know", "water", "than", "call", "first", "who",
    "may", "down", "side", "been", "now", "find", "any", "new", "work", "part", "take",
    "get", "place", "made", "live", "where", "after", "back", "little", "only", "round",
    "man", "year", "came", "show", "every", "good", "me", "give", "our", "under", "name",
    "very", "through", "just", "form", "sentence", "great", "think", "say", "help",
    "low", "line", "differ", "turn", "cause", "much", "mean", "before", "move", "right",
    "boy", "old", "too", "same", "tell", "does", "set", "three", "want", "air", "well",
    "also", "play", "small", "end", "put", "home", "read", "hand", "port", "large",
    "spell", "add", "even", "land", "here", "must", "big", "high", "such", "follow",
    "act", "why", "ask", "men", "change", "went", "light", "kind", "off", "need",
    "house", "picture", "try", "us", "again", "animal", "point", "mother", "world",
    "near", "build", "self", "earth", "father", "head", "stand", "own", "page", "should",
    "country", "found", "answer", "school", "grow", "study", "still", "learn", "plant",
    "cover", "food", "sun", "four", "between", "state", "keep", "eye", "never", "last",
    "let", "thought", "city", "tree", "cross", "farm", "hard", "start", "might", "story",
    "saw", "far", "sea", "draw", "left", "late", "run", "while", "press", "close",
    "night", "real", "life", "few", "north", "open", "seem", "together", "next", "white",
    "children", "begin", "got", "walk", "example", "ease", "paper", "group", "always",
    "music", "those", "both", "mark", "often", "letter", "until", "mile", "river",
    "car", "feet", "care", "second", "book", "carry", "took", "science", "eat", "room",
    "friend", "began", "idea", "fish", "mountain", "stop", "once", "base", "hear",
    "horse", "cut", "sure", "watch", "color", "face", "wood", "main", "enough", "plain",
    "girl", "usual", "young", "ready", "above", "ever", "red", "list", "though", "feel",
    "talk", "bird", "soon", "body", "dog", "family", "direct", "pose", "leave", "song",
    "measure", "door", "product", "black", "short", "numeral", "class", "wind",
    "question", "happen", "complete", "ship", "area", "half", "rock", "order", "fire",
    "south", "problem", "piece", "told", "knew", "pass", "since", "top", "whole", "king",
    "space", "heard", "best", "hour", "better", "true", "during", "hundred", "five",
    "remember", "step", "early", "hold", "west", "ground", "interest", "reach", "fast",
    "verb", "sing", "listen", "six", "table", "travel", "less", "morning", "ten",
    "simple", "several", "vowel", "toward", "war", "lay", "against", "pattern", "slow",
    "center", "love", "person", "money", "serve", "appear", "road", "map", "rain",
    "rule", "govern", "pull", "cold", "notice", "voice", "unit", "power", "town", "fine",
    "certain", "fly", "fall", "lead", "cry", "dark", "machine", "note", "wait", "plan",
    "figure", "star", "box", "noun", "field", "rest", "correct", "able", "pound", "done",
    "beauty", "drive", "stood", "contain", "front", "teach", "week", "final", "gave",
    "green", "oh", "quick", "develop", "ocean", "warm", "free", "minute", "strong",
    "special", "mind", "behind", "clear", "tail", "produce", "fact", "street", "inch",
    "multiply", "nothing", "course", "stay", "wheel", "full", "force", "blue", "object",
    "decide", "surface", "deep", "moon", "island", "foot", "system", "busy", "test",
    "record", "boat", "common", "gold", "possible", "plane", "stead", "dry", "wonder",
    "laugh", "thousand", "ago", "ran", "check", "game", "shape", "equate", "hot", "miss",
    "brought", "heat", "snow", "tire", "bring", "yes", "distant", "fill", "east", "paint",
    "language", "among", "grass", "glass", "hello", "okay", "hi", "hay", "gases",
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


def random_sentences(count: int, rng: np.random.Generator, *, avoid: str) -> list[str]:
    """``count`` sentences of 3-9 random common words, none containing ``avoid``."""
    target = normalize_phrase(avoid)
    out: list[str] = []
    while len(out) < count:
        words = rng.choice(len(_VOCABULARY), size=int(rng.integers(3, 10)))
        text = " ".join(_VOCABULARY[int(i)] for i in words)
        if target not in text and target.replace(" ", "") not in text.replace(" ", ""):
            out.append(text)
    return out


def plan_voices(
    names: Sequence[str],
    count: int,
    rng: np.random.Generator,
    *,
    engine: str = "espeak",
    wide: bool = False,
) -> list[Voice]:
    """``count`` voices drawn from ``names`` with random speed, pitch and amplitude.

    ``wide`` (training) spreads speed and pitch further and adds gaps between words, so
    that one synthesizer gives as many speakers as it can.
    """
    voices = []
    speed, pitch = ((90, 241), (0, 100)) if wide else ((110, 211), (20, 81))
    for k in range(count):
        name = names[k % len(names)] if k < len(names) else str(rng.choice(list(names)))
        voices.append(
            Voice(
                engine,
                name,
                speed_wpm=int(rng.integers(*speed)),
                pitch=int(rng.integers(*pitch)),
                amplitude=int(rng.integers(60, 161)),
                word_gap=int(rng.integers(0, 9)) if wide and rng.random() < 0.4 else 0,
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


def perturb_voice(clip: Audio, rng: np.random.Generator) -> Audio:
    """``clip`` as if another speaker and another channel had produced it.

    Resampling by 0.85-1.18 moves pitch, formants (vocal-tract length) and tempo together;
    a random equalizer (a spectral tilt of up to 4 dB per octave and a few 2-octave-wide
    bumps of up to 6 dB) stands for another voice's spectral envelope and another
    microphone; with probability 0.4 a low-pass at 3-7 kHz stands for band-limited
    audio (telephone, 8 kHz voices) and with 0.3 a high-pass at 80-300 Hz for a small
    microphone. Synthesizers differ from each other in exactly these ways.
    """
    factor = float(rng.uniform(0.85, 1.18))
    n_out = max(int(clip.size / factor), 1)
    y = np.interp(np.arange(n_out) * factor, np.arange(clip.size), clip)
    n_fft = 1 << int(np.ceil(np.log2(max(y.size, 2))))
    spectrum = np.fft.rfft(y, n_fft)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / SAMPLE_RATE_HZ)
    octaves = np.log2(np.maximum(freqs, 20.0) / 1000.0)
    gain_db = float(rng.uniform(-4.0, 4.0)) * octaves
    for _ in range(int(rng.integers(0, 4))):
        centre, height = float(rng.uniform(-2.5, 2.5)), float(rng.uniform(-6.0, 6.0))
        gain_db += height * np.exp(-0.5 * (octaves - centre) ** 2)
    if rng.random() < 0.4:
        cutoff = float(rng.uniform(3000.0, 7000.0))
        gain_db -= 60.0 * np.clip((freqs - cutoff) / 400.0, 0.0, 1.0)
    if rng.random() < 0.3:
        cutoff = float(rng.uniform(80.0, 300.0))
        gain_db -= 40.0 * np.clip((cutoff - freqs) / cutoff, 0.0, 1.0)
    y = np.fft.irfft(spectrum * 10 ** (gain_db / 20.0), n_fft)[:n_out]
    peak, before = float(np.abs(y).max(initial=0.0)), float(np.abs(clip).max(initial=0.0))
    if peak > 0:
        y *= before / peak  # the level stays the synthesizer's; the Augmenter sets gains
    return y.astype(np.float32)


def real_speech(split: str) -> list[Audio]:
    """The real recordings that moonshine-voice ships (DESIGN.md, test data), 16 kHz:
    ``"train"`` their first 60%, ``"eval"`` the last 40%; empty when the package is
    missing (they only add negatives)."""
    from glasses_sdk._exceptions import DataNotFoundError

    try:
        import soundfile

        from glasses_sdk import data
        from glasses_sdk.preprocess.audio import resample

        out = []
        for name in sorted(data.SPEECH):
            samples, rate = soundfile.read(str(data.speech_path(name)), dtype="float32")
            mono = np.ascontiguousarray(samples if samples.ndim == 1 else samples.mean(axis=1))
            x = mono.astype(np.float32)
            x = resample(x, int(rate), SAMPLE_RATE_HZ) if rate != SAMPLE_RATE_HZ else x
            cut = int(0.6 * x.size)
            out.append(x[:cut] if split == "train" else x[cut:])
        return out
    except (ImportError, DataNotFoundError):
        return []


def negative_stream(
    clips: Sequence[Audio],
    seconds: float,
    rng: np.random.Generator,
    augment: Augmenter,
    *,
    real: Sequence[Audio] = (),
) -> Audio:
    """About ``seconds`` of negative audio: runs of ``clips`` with short pauses, pieces of
    the ``real`` recordings and noise, each piece augmented (room, noise, gain)."""
    total = int(seconds * SAMPLE_RATE_HZ)
    parts: list[Audio] = []
    made = 0
    while made < total:
        r = rng.random()
        if real and r < 0.2:
            src = real[int(rng.integers(len(real)))]
            start = int(rng.integers(0, max(src.size, 1)))
            piece = np.roll(src, -start)[: int(rng.uniform(4, 12) * SAMPLE_RATE_HZ)]
        elif r < 0.3:
            n = int(rng.uniform(3, 10) * SAMPLE_RATE_HZ)
            piece = augment.noise(n) * np.float32(10 ** (float(rng.uniform(-60, -20)) / 20))
        else:
            run = []
            for _ in range(int(rng.integers(2, 7))):
                run.append(clips[int(rng.integers(len(clips)))])
                gap = int(rng.uniform(0.1, 0.8) * SAMPLE_RATE_HZ)
                run.append(np.zeros(gap, np.float32))
            piece = np.concatenate(run)
        piece = augment(np.ascontiguousarray(piece, np.float32))
        pause = np.zeros(int(rng.uniform(0.2, 1.5) * SAMPLE_RATE_HZ), np.float32)
        parts += [piece, pause]
        made += piece.size + pause.size
    return np.concatenate(parts)[:total]


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
