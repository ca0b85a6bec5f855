"""Which skill a spoken command asks for: fuzzy word overlap with the skills' phrases.

Speech recognition on a small device mishears ("read the tax" for "read the text"), so
matching is forgiving but explainable:

1. Transcript and phrases are lower-cased and split into words (letters, digits, ').
2. A phrase's *content words* are its words minus a short list of function words
   ("the", "a", "is", ...); a phrase made only of function words keeps them all.
3. Each content word scores its best :class:`difflib.SequenceMatcher` ratio against the
   transcript's words (1.0 for the same word, about 0.75 for "text"/"tax"); a ratio
   under 0.6 counts 0.
4. The phrase's score is the mean of its content words' scores; a skill's score is that
   of its best phrase. The best skill wins if its score reaches the threshold; ties go
   to the phrase with more content words (the more specific one).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

__all__ = ["IntentMatch", "match_intent", "words"]

_WORD = re.compile(r"[a-z0-9']+")
_FUNCTION_WORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "is",
        "are",
        "am",
        "be",
        "to",
        "of",
        "in",
        "on",
        "at",
        "for",
        "me",
        "my",
        "i",
        "you",
        "it",
        "this",
        "that",
        "what's",
        "please",
        "can",
        "could",
        "would",
        "will",
        "do",
        "does",
        "hey",
        "glasses",
    ]
)
_MIN_RATIO = 0.6


def words(text: str) -> list[str]:
    """The lower-case words of ``text``."""
    return _WORD.findall(text.lower())


def _content(phrase: str) -> list[str]:
    all_words = words(phrase)
    content = [w for w in all_words if w not in _FUNCTION_WORDS]
    return content or all_words


def _similarity(a: str, b: str) -> float:
    if a == b:
        return 1.0
    ratio = SequenceMatcher(None, a, b).ratio()
    return ratio if ratio >= _MIN_RATIO else 0.0


def phrase_score(phrase: str, transcript_words: Sequence[str]) -> float:
    """How well ``transcript_words`` cover ``phrase``'s content words, 0..1."""
    content = _content(phrase)
    if not content or not transcript_words:
        return 0.0
    return sum(max(_similarity(w, t) for t in transcript_words) for w in content) / len(content)


@dataclass(frozen=True, slots=True)
class IntentMatch:
    """The chosen skill, its score, and the phrase that matched."""

    skill: str
    score: float
    phrase: str


def match_intent(
    transcript: str, phrases: Mapping[str, Iterable[str]], threshold: float
) -> IntentMatch | None:
    """The skill whose phrases best match ``transcript``, or None below ``threshold``."""
    heard = words(transcript)
    best: tuple[float, int, str, str] | None = None
    for skill, skill_phrases in phrases.items():
        for phrase in skill_phrases:
            score = phrase_score(phrase, heard)
            key = (score, len(_content(phrase)), skill, phrase)
            if best is None or key[:2] > best[:2]:
                best = key
    if best is None or best[0] < threshold or best[0] == 0.0:
        return None
    return IntentMatch(best[2], best[0], best[3])
