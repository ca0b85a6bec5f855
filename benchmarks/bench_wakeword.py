"""Wake-word evaluation: false rejections, false accepts per hour, CPU, and a baseline.

``python -m benchmarks.bench_wakeword [--json] [--hours H] [--positives N]
[--baseline-hours H] [--no-baseline] [--quick]``

- False rejection rate (FRR) on held-out positives: "hey glasses" from espeak-ng's
  held-out variants (every accent), flite's voices and festival's, at random speeds
  (none of flite or festival is ever used in training); clean and with noise at 10 dB
  SNR. Each utterance sits in a long stream between gaps, and counts as detected when a
  detection ends within 1 s after it.
- False accepts per hour on ``--hours`` (issue: 10) of negative audio, generated piece by
  piece and streamed through one detector, so that memory stays bounded: runs of
  synthesized sentences that are not the phrase (all three synthesizers; random
  sentences from a seed of this benchmark, the fixed everyday ones, and one run in ten
  of held-out near-misses such as "hey classes"), the last 40% of the real recordings
  (the trainer only sees their first 60%) looped with gain, room and noise, and noise;
  with the one-sided 95% Poisson upper bound. Near-misses are also reported alone, as
  the share of near-miss utterances that fire.
- pocketsphinx keyphrase spotting (its bundled en-us model, kws mode) on the same audio:
  its threshold swept on the first ``--baseline-hours`` of the same negative stream (it
  runs at ~0.03 of real time, 10 h per threshold would take too long), the most
  permissive threshold whose false-accept rate stays at or under ours (or under 1 per
  the hours swept, the least that can be measured) chosen, and its false rejections on
  the same positive streams compared.
- CPU: the detector (features included) per 80 ms hop, as thread CPU time and wall time,
  against the 1.6 ms goal.
- ``--quick``: a short version (seconds of CPU, not minutes) that a test runs.

The threshold is the model's own (``wakeword.json``), set by the trainer on a validation
stream of its own before this evaluation; nothing here tunes it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from benchmarks._harness import environment

RATE = 16000
PHRASE = "hey glasses"
Audio = NDArray[np.float32]
_PIECE_S = 120.0


@dataclass
class Stream:
    audio: Audio
    spans: list[tuple[float, float]]  # (start_s, end_s) of each positive


def _noise_like(x: Audio, snr_db: float, rng: np.random.Generator) -> Audio:
    """``x`` plus colored noise at ``snr_db`` below the level of its non-silent part."""
    from glasses_sdk.wakeword_train._data import _colored_noise

    loud = np.abs(x) > 1e-4
    rms = float(np.sqrt(np.mean(x[loud] ** 2))) if np.any(loud) else 0.01
    noise = _colored_noise(x.size, rng) * np.float32(rms / 10 ** (snr_db / 20))
    return np.clip(x + noise, -1, 1).astype(np.float32)


def _voices(count: int, rng: np.random.Generator) -> list[Any]:
    """Held-out voices: 60% espeak-ng held-out variants, 25% flite, 15% festival."""
    from glasses_sdk.wakeword_train._data import plan_voices
    from glasses_sdk.wakeword_train._synth import espeak_voices, festival_voices, flite_voices

    n_flite = round(count * 0.25) if flite_voices() else 0
    n_fest = round(count * 0.15) if festival_voices() else 0
    voices = plan_voices(espeak_voices(held_out=True), count - n_flite - n_fest, rng)
    if n_flite:
        voices += plan_voices(flite_voices(), n_flite, rng, engine="flite")
    if n_fest:
        voices += plan_voices(festival_voices(), n_fest, rng, engine="festival")
    return voices


def positives(count: int, rng: np.random.Generator) -> tuple[list[Audio], list[str]]:
    """``count`` held-out utterances of the phrase and the synthesizer of each."""
    from glasses_sdk.wakeword_train._data import synthesize_many

    voices = _voices(count, rng)
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


@dataclass
class NegativePool:
    """What the negative stream is cut from: synthesized sentences (all synthesizers),
    held-out near-misses, and the held-out part of the real recordings."""

    speech: list[Audio]
    near_misses: list[Audio]
    real: list[Audio]
    engines: dict[str, int]


def negative_pool(utterances: int, rng: np.random.Generator) -> NegativePool:
    """Synthesize ``utterances`` sentences and a tenth as many near-misses."""
    from glasses_sdk.wakeword_train._data import (
        GENERIC_SENTENCES,
        near_misses,
        random_sentences,
        real_speech,
        synthesize_many,
    )

    texts = [*GENERIC_SENTENCES, *random_sentences(max(utterances, 1), rng, avoid=PHRASE)]
    voices = _voices(utterances, rng)
    speech = synthesize_many([(str(rng.choice(texts)), v) for v in voices])
    # Near-misses with a changed onset or a filler word ("hey classes", "okay glasses");
    # no vowel changes, some of which a synthesizer speaks as the phrase itself.
    misses = [m for m in near_misses(PHRASE, rng, vowels=False) if m != "glasses hey"]
    miss_voices = _voices(max(utterances // 10, 1), rng)
    miss_clips = synthesize_many([(str(rng.choice(misses)), v) for v in miss_voices])
    engines: dict[str, int] = {}
    for v in voices:
        engines[v.engine] = engines.get(v.engine, 0) + 1
    return NegativePool(speech, miss_clips, real_speech("eval"), engines)


def negatives(hours: float, pool: NegativePool, seed: int) -> Iterator[Audio]:
    """About ``hours`` of negative audio, one piece of ~2 minutes at a time.

    Each piece: a run of synthesized sentences with pauses (six in ten), of near-misses
    (one in ten), a loop of a real recording from a random offset (two in ten), or noise
    (one in ten); then a room, noise at 5-20 dB SNR and a gain at random. The same seed
    gives the same stream.
    """
    from glasses_sdk.wakeword_train._data import Augmenter, _colored_noise

    rng = np.random.default_rng(seed)
    augment = Augmenter(rng, p_noise=0.5, p_reverb=0.4, gain_db=(-12.0, 6.0))
    total = int(hours * 3600 * RATE)
    made = 0
    n_piece = int(_PIECE_S * RATE)
    while made < total:
        r = float(rng.random())
        if r < 0.1:
            level = np.float32(10 ** (rng.uniform(-60, -15) / 20))
            piece = _colored_noise(n_piece, rng) * level
        elif r < 0.3 and pool.real:
            src = pool.real[int(rng.integers(len(pool.real)))]
            start = int(rng.integers(0, src.size))
            reps = n_piece // src.size + 2
            piece = np.tile(np.roll(src, -start), reps)[:n_piece]
        else:
            clips = pool.near_misses if r < 0.4 else pool.speech
            parts, size = [], 0
            while size < n_piece:
                clip = clips[int(rng.integers(len(clips)))]
                pause = np.zeros(int(rng.uniform(0.3, 2.0) * RATE), np.float32)
                parts += [clip, pause]
                size += clip.size + pause.size
            piece = np.concatenate(parts)[:n_piece]
        piece = augment(np.ascontiguousarray(piece, np.float32))
        piece = piece[: total - made]
        made += piece.size
        yield np.clip(piece, -1, 1).astype(np.float32)


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


_MODEL: list[str] = ["hey-glasses"]


def _detector() -> Any:
    from glasses_sdk.inference.wakeword import WakeWordDetector, WakeWordOptions

    return WakeWordDetector(WakeWordOptions(models=(_MODEL[0],)))


def detections(audio: Audio) -> list[float]:
    """End times of our detections in one clip."""
    return [d.end_s for d in _detector().detect(audio, RATE).detections]


def stream_false_accepts(pieces: Iterator[Audio]) -> tuple[int, float, float]:
    """Detections over the whole negative stream, its hours, and CPU seconds spent."""
    detector = _detector()
    count, samples, cpu = 0, 0, 0.0
    for piece in pieces:
        t0 = time.process_time()
        count += len(detector.push(piece))
        cpu += time.process_time() - t0
        samples += piece.size
    count += len(detector.flush())
    return count, samples / RATE / 3600, cpu


def near_miss_accepts(clips: list[Audio]) -> float:
    """The share of near-miss utterances, each alone between pauses, that fire."""
    rng = np.random.default_rng(0)
    stream = _stream(clips, 2.5, rng)
    return _hits(detections(stream.audio), stream.spans) / max(len(clips), 1)


def cpu_per_hop(seconds: float = 20.0) -> dict[str, float]:
    """Median per-hop time of ``push()`` of one 80 ms chunk, warm: thread CPU time and
    wall time (the machine may be shared; CPU time is the claim)."""
    from glasses_sdk.inference.wakeword import HOP_SAMPLES

    rng = np.random.default_rng(0)
    detector = _detector()
    audio = (rng.standard_normal(int(seconds * RATE)) * 0.05).astype(np.float32)
    walls, cpus = [], []
    for i in range(0, audio.size - HOP_SAMPLES, HOP_SAMPLES):
        c0, t0 = time.thread_time(), time.perf_counter()
        detector.push(audio[i : i + HOP_SAMPLES])
        walls.append((time.perf_counter() - t0) * 1000)
        cpus.append((time.thread_time() - c0) * 1000)
    walls, cpus = walls[10:], cpus[10:]
    return {
        "median_ms": round(statistics.median(walls), 4),
        "p95_ms": round(float(np.quantile(walls, 0.95)), 4),
        "cpu_mean_ms": round(float(np.mean(cpus)), 4),
        "goal_ms": 1.6,
        "core_percent": round(float(np.mean(cpus)) / 80 * 100, 2),
    }


def pocketsphinx_detections(
    audio: Audio, threshold: float, limit: int | None = None
) -> list[float]:
    """End times of pocketsphinx keyphrase detections (its bundled en-us model); it stops
    after ``limit`` detections when given."""
    import importlib

    # pocketsphinx has no type information; it is a reference here, not an SDK path.
    decoder: Any = importlib.import_module("pocketsphinx").Decoder(
        keyphrase=PHRASE, kws_threshold=threshold, loglevel="FATAL"
    )
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    hop = 1280
    found: list[float] = []
    decoder.start_utt()
    for i in range(0, pcm.size, hop):
        decoder.process_raw(pcm[i : i + hop].tobytes(), False, False)
        if decoder.hyp() is not None:
            found.append((i + hop) / RATE)
            decoder.end_utt()
            if limit is not None and len(found) >= limit:
                return found
            decoder.start_utt()
    decoder.end_utt()
    return found


# kws_threshold is a probability: the smaller, the more it detects. Strictest first.
_PS_THRESHOLDS = (1e-5, 1e-10, 1e-20, 1e-30, 1e-40, 1e-50, 1e-60, 1e-80)


def baseline(
    clean: Stream,
    noisy: Stream,
    negative_pieces: list[Audio],
    ours_fa_h: float,
    engines: list[str],
) -> dict[str, Any]:
    """pocketsphinx matched to our false-accept rate, then its false rejections.

    Its threshold is swept from strict to permissive on ``negative_pieces`` (the start
    of the same negative stream); the most permissive one whose false accepts per hour
    stay at or under ours (or under 1 per the hours swept, the least measurable) is
    chosen. A threshold that exceeds the budget ends the sweep (the rate only grows from
    there), and counting stops as soon as it does.
    """
    hours = sum(p.size for p in negative_pieces) / RATE / 3600
    budget = max(ours_fa_h, 1.0 / hours) * hours  # false accepts allowed in the sweep
    allowed = math.floor(budget + 1e-9)
    sweep: list[dict[str, Any]] = []
    chosen = _PS_THRESHOLDS[0]
    for thr in _PS_THRESHOLDS:
        count = 0
        for piece in negative_pieces:
            count += len(pocketsphinx_detections(piece, thr, limit=allowed + 1 - count))
            if count > allowed:
                break
        over = count > allowed
        sweep.append(
            {
                "threshold": thr,
                "false_accepts_per_hour": round(count / hours, 3),
                "stopped_early": over,
            }
        )
        if over:
            break
        chosen = thr
    fa_h = next(s["false_accepts_per_hour"] for s in sweep if s["threshold"] == chosen)
    det_clean = pocketsphinx_detections(clean.audio, chosen)
    det_noisy = pocketsphinx_detections(noisy.audio, chosen)
    return {
        "threshold": chosen,
        "negative_hours": round(hours, 3),
        "false_accepts_per_hour": fa_h,
        **_frr(det_clean, det_noisy, clean.spans, engines),
        "sweep": sweep,
    }


def _frr(
    det_clean: list[float],
    det_noisy: list[float],
    spans: list[tuple[float, float]],
    engines: list[str],
) -> dict[str, Any]:
    n = len(spans)
    by_engine: dict[str, dict[str, float]] = {}
    for engine in sorted(set(engines)):
        sub = [spans[i] for i, e in enumerate(engines) if e == engine]
        by_engine[engine] = {
            "n": len(sub),
            "frr_clean": round(1 - _hits(det_clean, sub) / len(sub), 4),
            "frr_10db_snr": round(1 - _hits(det_noisy, sub) / len(sub), 4),
        }
    return {
        "frr_clean": round(1 - _hits(det_clean, spans) / n, 4),
        "frr_10db_snr": round(1 - _hits(det_noisy, spans) / n, 4),
        "by_synthesizer": by_engine,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--hours", type=float, default=10.0, help="hours of negatives")
    parser.add_argument("--positives", type=int, default=300)
    parser.add_argument(
        "--baseline-hours", type=float, default=1.0, help="negatives for pocketsphinx's sweep"
    )
    parser.add_argument("--no-baseline", action="store_true", help="leave pocketsphinx out")
    parser.add_argument("--quick", action="store_true", help="a short version, for tests")
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument(
        "--model", default="hey-glasses", help="a registry name or a model folder to evaluate"
    )
    args = parser.parse_args(argv)
    _MODEL[0] = args.model
    if args.quick:
        args.hours, args.positives, args.baseline_hours = 0.05, 20, 0.02
    for name in ("hours", "baseline_hours"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name.replace('_', '-')}: expected a number of hours > 0")
    if args.positives < 1:
        parser.error("--positives: expected at least 1")
    rng = np.random.default_rng(args.seed)
    t0, c0 = time.perf_counter(), time.process_time()
    clips, engines = positives(args.positives, rng)
    clean = _stream(clips, 2.5, rng)
    noisy = Stream(_noise_like(clean.audio, 10.0, rng), clean.spans)
    pool = negative_pool(40 if args.quick else 800, rng)
    det_clean, det_noisy = detections(clean.audio), detections(noisy.audio)
    neg_seed = args.seed + 1
    k, neg_hours, neg_cpu_s = stream_false_accepts(negatives(args.hours, pool, neg_seed))
    result: dict[str, Any] = {
        "benchmark": "wakeword",
        "phrase": PHRASE,
        "model": args.model,
        "positives": len(clean.spans),
        **_frr(det_clean, det_noisy, clean.spans, engines),
        "negative_hours": round(neg_hours, 3),
        "negative_utterances": pool.engines,
        "false_accepts": k,
        "false_accepts_per_hour": round(k / neg_hours, 3),
        "false_accepts_per_hour_upper95": round(poisson_upper(k, neg_hours), 3),
        "near_miss_accept_rate": round(near_miss_accepts(pool.near_misses), 4),
        "near_miss_utterances": len(pool.near_misses),
        "negative_stream_cpu_ms_per_hop": round(neg_cpu_s * 1000 / (neg_hours * 3600 / 0.08), 4),
        "cpu_per_80ms": cpu_per_hop(5.0 if args.quick else 20.0),
        "goals": {"frr_clean": 0.05, "frr_10db_snr": 0.10, "false_accepts_per_hour": 0.5},
    }
    if not args.no_baseline:
        pieces = list(negatives(min(args.baseline_hours, args.hours), pool, neg_seed))
        result["pocketsphinx"] = baseline(clean, noisy, pieces, k / neg_hours, engines)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["cpu_seconds"] = round(time.process_time() - c0, 1)
    result["environment"] = {**environment(), "load_average_1min": round(os.getloadavg()[0], 2)}
    if args.json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        _table(result)
    return 0


def _table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"wake word {result['phrase']!r}")
    for col in ("metric", "ours", "goal", "pocketsphinx (matched FA)"):
        table.add_column(col)
    ps = result.get("pocketsphinx", {})
    cpu = result["cpu_per_80ms"]
    rows = [
        ("FRR clean", result["frr_clean"], "≤ 0.05", ps.get("frr_clean", "-")),
        ("FRR 10 dB SNR", result["frr_10db_snr"], "≤ 0.10", ps.get("frr_10db_snr", "-")),
    ]
    for engine, m in result["by_synthesizer"].items():
        p = ps.get("by_synthesizer", {}).get(engine, {})
        rows.append(
            (
                f"  {engine} (n={m['n']}) clean / 10 dB",
                f"{m['frr_clean']} / {m['frr_10db_snr']}",
                "",
                f"{p.get('frr_clean', '-')} / {p.get('frr_10db_snr', '-')}",
            )
        )
    rows += [
        (
            f"false accepts / h in {result['negative_hours']} h (95% upper)",
            f"{result['false_accepts_per_hour']} ({result['false_accepts_per_hour_upper95']})",
            "≤ 0.5",
            f"{ps.get('false_accepts_per_hour', '-')} in {ps.get('negative_hours', '-')} h",
        ),
        ("near-miss utterances accepted", result["near_miss_accept_rate"], "", "-"),
        ("CPU ms / 80 ms hop", cpu["cpu_mean_ms"], "< 1.6", "-"),
    ]
    for row in rows:
        table.add_row(*[str(c) for c in row])
    Console().print(table)


if __name__ == "__main__":
    raise SystemExit(main())
