"""Wake-word evaluation: false rejections, false accepts per hour, CPU, and a baseline.

``python -m benchmarks.bench_wakeword [--json] [--hours H] [--positives N] [--baseline]``

- False rejection rate (FRR) on held-out positives: "hey glasses" from espeak-ng's
  held-out variants (every accent), flite's voices and festival's, at random speeds;
  clean and with noise at 10 dB SNR. Each utterance sits in a long stream between gaps,
  and counts as detected when a detection ends within 1 s after it.
- False accepts per hour on negative audio: synthesized sentences that are not the
  phrase (all three synthesizers), the real speech recordings looped with gain and
  noise, and noise; with the one-sided 95% Poisson upper bound.
- CPU: the detector (features included) per 80 ms hop, against the 1.6 ms goal.
- ``--baseline``: pocketsphinx keyphrase spotting on the positives and on part of the
  negatives, its threshold swept to the false-accept rate nearest ours (at or above).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

RATE = 16000
PHRASE = "hey glasses"
Audio = NDArray[np.float32]


@dataclass
class Stream:
    audio: Audio
    spans: list[tuple[float, float]]  # (start_s, end_s) of each positive


def _noise_like(x: Audio, snr_db: float, rng: np.random.Generator) -> Audio:
    from glasses_sdk.wakeword_train._data import _colored_noise

    rms = float(np.sqrt(np.mean(x[np.abs(x) > 1e-4] ** 2))) if np.any(np.abs(x) > 1e-4) else 0.01
    noise = _colored_noise(x.size, rng) * np.float32(rms / 10 ** (snr_db / 20))
    return np.clip(x + noise, -1, 1).astype(np.float32)


def positives(count: int, rng: np.random.Generator) -> tuple[list[Audio], list[str]]:
    """Held-out utterances: espeak-ng's held-out variants, flite and festival voices."""
    from glasses_sdk.wakeword_train._data import plan_voices, synthesize_many
    from glasses_sdk.wakeword_train._synth import (
        espeak_voices,
        festival_voices,
        flite_voices,
    )

    n_flite = count // 5 if flite_voices() else 0
    n_fest = count // 10 if festival_voices() else 0
    voices = plan_voices(espeak_voices(held_out=True), count - n_flite - n_fest, rng)
    if n_flite:
        voices += plan_voices(flite_voices(), n_flite, rng, engine="flite")
    if n_fest:
        voices += plan_voices(festival_voices(), n_fest, rng, engine="festival")
    clips = synthesize_many([(PHRASE, v) for v in voices])
    return clips, [v.engine for v in voices]


def _stream(clips: list[Audio], gap_s: float, rng: np.random.Generator) -> Stream:
    parts: list[Audio] = []
    spans: list[tuple[float, float]] = []
    t = 0
    for clip in clips:
        gap = np.zeros(int(gap_s * RATE * rng.uniform(0.8, 1.2)), np.float32)
        parts += [gap, clip]
        spans.append(((t + gap.size) / RATE, (t + gap.size + clip.size) / RATE))
        t += gap.size + clip.size
    parts.append(np.zeros(2 * RATE, np.float32))
    return Stream(np.concatenate(parts), spans)


def negatives(hours: float, rng: np.random.Generator) -> list[Audio]:
    """About ``hours`` of negative audio, in pieces of a few minutes."""
    import soundfile

    from glasses_sdk import data
    from glasses_sdk.preprocess.audio import resample
    from glasses_sdk.wakeword_train._data import (
        GENERIC_SENTENCES,
        near_misses,
        plan_voices,
        synthesize_many,
    )
    from glasses_sdk.wakeword_train._synth import (
        espeak_voices,
        festival_voices,
        flite_voices,
    )

    texts = [*GENERIC_SENTENCES, *near_misses(PHRASE, rng, vowels=False)]
    texts = [t for t in texts if "glasses" not in t or t.split()[0] != "hey"]
    voices = plan_voices(espeak_voices(held_out=True), 160, rng)
    if flite_voices():
        voices += plan_voices(flite_voices(), 60, rng, engine="flite")
    if festival_voices():
        voices += plan_voices(festival_voices(), 30, rng, engine="festival")
    synth = synthesize_many([(str(rng.choice(texts)), v) for v in voices])
    speech = np.concatenate([x for c in synth for x in (c, np.zeros(RATE // 4, np.float32))])
    real = []
    for name in ("beckett", "two_cities", "endgame"):
        try:
            samples, rate = soundfile.read(str(data.speech_path(name)), dtype="float32")
        except Exception:
            continue
        mono = np.ascontiguousarray(samples if samples.ndim == 1 else samples.mean(axis=1))
        real.append(resample(mono.astype(np.float32), int(rate), RATE) if rate != RATE else mono)
    pool = [speech, *real]
    total = int(hours * 3600 * RATE)
    pieces, made = [], 0
    while made < total:
        kind = int(rng.integers(4))
        if kind == 3:  # noise
            from glasses_sdk.wakeword_train._data import _colored_noise

            piece = _colored_noise(120 * RATE, rng) * np.float32(10 ** (rng.uniform(-50, -15) / 20))
        else:
            src = pool[int(rng.integers(len(pool)))]
            start = int(rng.integers(0, max(src.size - 1, 1)))
            piece = np.roll(src, -start)[: 240 * RATE] * np.float32(
                10 ** (rng.uniform(-12, 6) / 20)
            )
            if rng.random() < 0.5:
                piece = _noise_like(piece.astype(np.float32), float(rng.uniform(5, 20)), rng)
        piece = np.clip(piece, -1, 1).astype(np.float32)
        pieces.append(piece)
        made += piece.size
    return pieces


def _hits(detections: list[float], spans: list[tuple[float, float]]) -> int:
    ends = np.array(sorted(detections))
    hit = 0
    for start, end in spans:
        k = np.searchsorted(ends, start)
        hit += bool(k < ends.size and ends[k] <= end + 1.0)
    return hit


def poisson_upper(k: int, hours: float) -> float:
    """One-sided 95% upper bound of a Poisson rate from ``k`` events in ``hours``."""
    from scipy.stats import chi2

    return float(chi2.ppf(0.95, 2 * k + 2) / 2 / hours)


def run_detector(streams: list[Audio]) -> list[list[float]]:
    from glasses_sdk.inference.wakeword import WakeWordDetector

    detector = WakeWordDetector()
    return [[d.end_s for d in detector.detect(s, RATE).detections] for s in streams]


def cpu_per_hop(seconds: float = 20.0) -> dict[str, float]:
    """Median time of ``push()`` of one 80 ms chunk of speech-like audio, warm."""
    from glasses_sdk.inference.wakeword import HOP_SAMPLES, WakeWordDetector

    rng = np.random.default_rng(0)
    detector = WakeWordDetector()
    audio = (rng.standard_normal(int(seconds * RATE)) * 0.05).astype(np.float32)
    times = []
    for i in range(0, audio.size - HOP_SAMPLES, HOP_SAMPLES):
        t0 = time.perf_counter()
        detector.push(audio[i : i + HOP_SAMPLES])
        times.append((time.perf_counter() - t0) * 1000)
    times = times[10:]
    return {
        "median_ms": round(statistics.median(times), 4),
        "p95_ms": round(float(np.quantile(times, 0.95)), 4),
        "goal_ms": 1.6,
        "core_percent": round(statistics.median(times) / 80 * 100, 2),
    }


def pocketsphinx_detections(audio: Audio, threshold: float) -> list[float]:
    """End times of pocketsphinx keyphrase detections (its bundled en-us model)."""
    import importlib

    # pocketsphinx has no type information; it is a reference here, not an SDK path.
    decoder: Any = importlib.import_module("pocketsphinx").Decoder(
        keyphrase=PHRASE, kws_threshold=threshold, loglevel="FATAL"
    )
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    hop = 1280
    found = []
    decoder.start_utt()
    for i in range(0, pcm.size, hop):
        decoder.process_raw(pcm[i : i + hop].tobytes(), False, False)
        if decoder.hyp() is not None:
            found.append((i + hop) / RATE)
            decoder.end_utt()
            decoder.start_utt()
    decoder.end_utt()
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--hours", type=float, default=1.0, help="hours of negatives (issue: 10)")
    parser.add_argument("--positives", type=int, default=300)
    parser.add_argument("--baseline", action="store_true", help="add pocketsphinx")
    parser.add_argument("--seed", type=int, default=20261122)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    clips, engines = positives(args.positives, rng)
    clean = _stream(clips, 2.5, rng)
    noisy = Stream(_noise_like(clean.audio, 10.0, rng), clean.spans)
    neg = negatives(args.hours, rng)
    neg_hours = sum(p.size for p in neg) / RATE / 3600
    det_clean, det_noisy = run_detector([clean.audio, noisy.audio])
    det_neg = run_detector(neg)
    k = sum(len(d) for d in det_neg)
    by_engine: dict[str, dict[str, float]] = {}
    for engine in sorted(set(engines)):
        idx = [i for i, e in enumerate(engines) if e == engine]
        spans = [clean.spans[i] for i in idx]
        by_engine[engine] = {
            "n": len(idx),
            "frr_clean": round(1 - _hits(det_clean, spans) / len(idx), 4),
            "frr_10db": round(1 - _hits(det_noisy, spans) / len(idx), 4),
        }
    n = len(clean.spans)
    result: dict[str, Any] = {
        "benchmark": "wakeword",
        "phrase": PHRASE,
        "positives": n,
        "frr_clean": round(1 - _hits(det_clean, clean.spans) / n, 4),
        "frr_10db_snr": round(1 - _hits(det_noisy, noisy.spans) / n, 4),
        "by_synthesizer": by_engine,
        "negative_hours": round(neg_hours, 3),
        "false_accepts": k,
        "false_accepts_per_hour": round(k / neg_hours, 3),
        "false_accepts_per_hour_upper95": round(poisson_upper(k, neg_hours), 3),
        "cpu_per_80ms": cpu_per_hop(),
        "goals": {"frr_clean": 0.05, "frr_10db_snr": 0.10, "false_accepts_per_hour": 0.5},
    }
    if args.baseline:
        result["pocketsphinx"] = _baseline(clean, noisy, neg, neg_hours, k / neg_hours)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    if args.json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        _table(result)
    return 0


def _baseline(
    clean: Stream, noisy: Stream, neg: list[Audio], neg_hours: float, ours_fa_h: float
) -> dict[str, Any]:
    """pocketsphinx at thresholds swept on a slice of the negatives (it runs at ~0.3x
    real time); the threshold whose false-accept rate is nearest ours, not below it."""
    budget = min(len(neg), max(1, math.ceil(len(neg) * 0.1)))
    sub = neg[:budget]
    sub_hours = sum(p.size for p in sub) / RATE / 3600
    sweep = []
    for exp in (-40, -30, -20, -10, -5):
        thr = 10.0**exp
        fa = sum(len(pocketsphinx_detections(p, thr)) for p in sub) / sub_hours
        sweep.append((thr, fa))
    ok = [s for s in sweep if s[1] <= max(ours_fa_h, 1.0 / sub_hours)]
    thr, fa = max(ok, key=lambda s: s[1]) if ok else min(sweep, key=lambda s: s[1])
    n = len(clean.spans)
    return {
        "threshold": thr,
        "negative_hours": round(sub_hours, 3),
        "false_accepts_per_hour": round(fa, 3),
        "frr_clean": round(
            1 - _hits(pocketsphinx_detections(clean.audio, thr), clean.spans) / n, 4
        ),
        "frr_10db_snr": round(
            1 - _hits(pocketsphinx_detections(noisy.audio, thr), noisy.spans) / n, 4
        ),
        "sweep": [{"threshold": t, "false_accepts_per_hour": round(f, 3)} for t, f in sweep],
    }


def _table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"wake word {result['phrase']!r}")
    for col in ("metric", "ours", "goal", "pocketsphinx"):
        table.add_column(col)
    ps = result.get("pocketsphinx", {})
    cpu = result["cpu_per_80ms"]
    rows = [
        ("FRR clean", result["frr_clean"], "≤ 0.05", ps.get("frr_clean", "-")),
        ("FRR 10 dB SNR", result["frr_10db_snr"], "≤ 0.10", ps.get("frr_10db_snr", "-")),
        (
            "false accepts / h (95% upper)",
            f"{result['false_accepts_per_hour']} ({result['false_accepts_per_hour_upper95']})",
            "≤ 0.5",
            ps.get("false_accepts_per_hour", "-"),
        ),
        ("CPU ms / 80 ms", cpu["median_ms"], "< 1.6", "-"),
    ]
    for row in rows:
        table.add_row(*[str(c) for c in row])
    Console().print(table)
    Console().print(
        f"{result['positives']} positives, {result['negative_hours']} h of negatives; "
        f"by synthesizer: {result['by_synthesizer']}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
