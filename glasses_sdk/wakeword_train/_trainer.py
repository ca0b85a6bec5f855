"""Train a wake word from synthetic speech on the CPU and write model, threshold and card.

The pipeline (:func:`train`): synthesize the phrase with espeak-ng's training voices at
random speeds, pitches and amplitudes, and negatives (near-misses, generic sentences,
parts of the phrase, silence, noise); cut one model window around each clip and augment
(synthetic room, noise at 5-20 dB SNR, gain, time shift); log-mel features exactly as
the detector computes them; a depthwise-separable 1-D CNN (~30 k parameters) trained
with a fixed seed; a threshold chosen on one half of the held-out espeak-ng voices and
metrics on the other half; ONNX export (TorchScript exporter, IR version 9).
"""

from __future__ import annotations

import json
import platform
import shlex
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from glasses_sdk._exceptions import MissingDependencyError, WakeWordTrainingError
from glasses_sdk.inference.wakeword import (
    FEATURE_OPTIONS,
    WINDOW_FRAMES,
    WINDOW_SAMPLES,
    log_mel_window,
)
from glasses_sdk.wakeword_train._data import (
    GENERIC_SENTENCES,
    Augmenter,
    near_misses,
    normalize_phrase,
    plan_voices,
    synthesize_many,
    to_window,
)
from glasses_sdk.wakeword_train._synth import espeak_voices

__all__ = ["TrainConfig", "TrainReport", "train"]

Audio = NDArray[np.float32]


@dataclass(frozen=True)
class TrainConfig:
    """Data sizes and training length; the defaults are the full recipe (~10 min on 2
    cores), :meth:`quick` a shortened one for tests."""

    positives: int = 1600
    near_misses: int = 1600
    generic: int = 500
    eval_positives: int = 400
    eval_negatives: int = 400
    augment_copies: int = 2
    epochs: int = 30
    batch_size: int = 128
    channels: int = 32
    learning_rate: float = 3e-3
    seed: int = 1234
    threads: int = 2

    @classmethod
    def quick(cls) -> TrainConfig:
        """A shortened recipe (a minute or two on 2 cores) that still learns a phrase."""
        return cls(
            positives=300, near_misses=300, generic=120, eval_positives=80,
            eval_negatives=100, augment_copies=2, epochs=12, batch_size=64,
        )  # fmt: skip


@dataclass(frozen=True)
class TrainReport:
    """What :func:`train` wrote and measured."""

    out_dir: Path
    phrase: str
    threshold: float
    metrics: dict[str, float]
    data: dict[str, int]
    parameters: int
    seconds: float


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError("torch", "train") from exc
    return torch


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str, int], Callable[[int], None]]]:
    """Rich progress bars: ``stage(description, total)`` returns ``advance(n)``."""
    if not enabled:
        yield lambda _d, _t: lambda _n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
    )  # fmt: skip
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:

        def stage(description: str, total: int) -> Callable[[int], None]:
            task = bar.add_task(description, total=total)
            return lambda n: bar.advance(task, n)

        yield stage


def _build_net(torch: Any, channels: int) -> Any:
    nn = torch.nn
    n_mels = FEATURE_OPTIONS.n_mels

    def separable(c_in: int, c_out: int, stride: int) -> Any:
        return nn.Sequential(
            nn.Conv1d(c_in, c_in, 9, stride=stride, padding=4, groups=c_in, bias=False),
            nn.BatchNorm1d(c_in),
            nn.ReLU(),
            nn.Conv1d(c_in, c_out, 1, bias=False),
            nn.BatchNorm1d(c_out),
            nn.ReLU(),
        )

    class WakeNet(nn.Module):  # type: ignore[misc,name-defined]
        """Input normalisation, a stem, four separable blocks, mean+max pooling, a logit."""

        def __init__(self) -> None:
            super().__init__()
            self.norm = nn.BatchNorm1d(n_mels)
            self.stem = nn.Sequential(
                nn.Conv1d(n_mels, channels, 5, stride=2, padding=2, bias=False),
                nn.BatchNorm1d(channels),
                nn.ReLU(),
            )
            self.blocks = nn.Sequential(
                separable(channels, channels, 1),
                separable(channels, 2 * channels, 2),
                separable(2 * channels, 2 * channels, 1),
                separable(2 * channels, 2 * channels, 2),
            )
            self.drop = nn.Dropout(0.2)
            self.head = nn.Linear(4 * channels, 1)

        def forward(self, x: Any) -> Any:
            h = self.blocks(self.stem(self.norm(x)))
            pooled = torch.cat((h.mean(dim=2), h.amax(dim=2)), dim=1)
            return self.head(self.drop(pooled))

    return WakeNet()


def _windows(
    clips: list[Audio], copies: int, rng: np.random.Generator, augment: Augmenter | None
) -> list[Audio]:
    out = []
    for clip in clips:
        for _ in range(copies):
            w = to_window(clip, rng)
            out.append(augment(w) if augment is not None else w)
    return out


def _fit_window(clips: list[Audio]) -> list[Audio]:
    """Positives must fit a window with some margin; the few that do not are dropped."""
    limit = WINDOW_SAMPLES - 1600
    return [c for c in clips if 0 < c.size <= limit]


def _parts(clips: list[Audio], rng: np.random.Generator) -> list[Audio]:
    """The first or last 25-55% of positives: a phrase cut short is not the phrase."""
    out = []
    for c in clips:
        frac = float(rng.uniform(0.25, 0.55))
        k = int(c.size * frac)
        out.append(c[:k].copy() if rng.random() < 0.5 else c[-k:].copy())
    return out


def _noise_windows(count: int, augment: Augmenter, rng: np.random.Generator) -> list[Audio]:
    out = []
    for k in range(count):
        level = 10 ** (float(rng.uniform(-70, -15)) / 20.0)
        if k % 5 == 0:
            out.append(np.zeros(WINDOW_SAMPLES, np.float32))
        else:
            out.append((augment.noise(WINDOW_SAMPLES) * np.float32(level)).astype(np.float32))
    return out


def _spec_augment(torch: Any, xb: Any, rng: np.random.Generator) -> Any:
    """SpecAugment-style masks: per example, at random, a band of up to 6 mels and a
    stretch of up to 10 frames set to the batch mean."""
    n, n_mels, n_frames = xb.shape
    mels, frames = np.arange(n_mels)[None, :], np.arange(n_frames)[None, :]
    f0 = rng.integers(0, n_mels, (n, 1))
    fw = rng.integers(1, 7, (n, 1)) * (rng.random((n, 1)) < 0.5)
    t0 = rng.integers(0, n_frames, (n, 1))
    tw = rng.integers(1, 11, (n, 1)) * (rng.random((n, 1)) < 0.5)
    mask = ((mels >= f0) & (mels < f0 + fw))[:, :, None] | ((frames >= t0) & (frames < t0 + tw))[
        :, None, :
    ]
    return torch.where(torch.from_numpy(mask), xb.mean(), xb)


def _scores(torch: Any, net: Any, feats: NDArray[np.float32]) -> NDArray[np.float32]:
    net.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(feats), 512):
            logits = net(torch.from_numpy(feats[i : i + 512]))
            out.append(torch.sigmoid(logits).numpy().reshape(-1))
    return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)


def _choose_threshold(pos: NDArray[np.float32], neg: NDArray[np.float32]) -> float:
    """Just above the highest score of a held-out negative window (generic speech and
    parts of the phrase), kept within [0.5, 0.95].

    Near-misses do not set it: some ("okay nova" for "hey nova") contain the phrase's
    sounds, and an all-day stream is mostly generic speech, where false accepts count.
    A stream scores every window position ~12 times a second, so the threshold leans
    towards rejecting; a phrase is seen in ~5 positions, which gives misses more chances.
    """
    top = float(neg.max(initial=0.0))
    threshold = min(max(top + 0.05, 0.5), 0.95)
    if pos.size and float(np.mean(pos >= threshold)) < 0.5:
        threshold = min(max(float(np.quantile(neg, 0.99)), 0.5), 0.95)
    return round(threshold, 4)


def _export_torchscript(torch: Any, module: Any, path: Path) -> None:
    example = torch.zeros(1, FEATURE_OPTIONS.n_mels, WINDOW_FRAMES)
    torch.onnx.export(
        module,
        (example,),
        str(path),
        input_names=["features"],
        output_names=["score"],
        dynamic_axes={"features": {0: "n"}, "score": {0: "n"}},
        opset_version=17,
        dynamo=False,
    )


def _export(torch: Any, net: Any, path: Path) -> None:
    import onnx

    class WithSigmoid(torch.nn.Module):  # type: ignore[misc]
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: Any) -> Any:
            return torch.sigmoid(self.inner(x))

    wrapped = WithSigmoid(net).eval()
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter is chosen on purpose (DESIGN.md: the newer one needs
        # onnxscript); torch warns, several times over, that it is deprecated.
        warnings.simplefilter("ignore", DeprecationWarning)
        _export_torchscript(torch, wrapped, path)
    model = onnx.load(str(path))
    model.ir_version = 9  # onnxruntime 1.31 rejects onnx 1.23's default IR version
    onnx.save(model, str(path))


def train(
    phrase: str,
    out_dir: Path,
    config: TrainConfig | None = None,
    *,
    progress: bool = True,
    command: str | None = None,
) -> TrainReport:
    """Train ``phrase`` and write ``model.onnx``, ``wakeword.json`` and ``MODEL_CARD.md``
    to ``out_dir``; return what was measured."""
    torch = _import_torch()
    config = config or TrainConfig()
    phrase = normalize_phrase(phrase)
    t_start = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    out_dir.mkdir(parents=True, exist_ok=True)

    train_names = espeak_voices(held_out=False)
    eval_names = espeak_voices(held_out=True)
    misses = near_misses(phrase, rng)
    # The held-out negatives use near-misses unseen in training, and no vowel changes.
    distinct = near_misses(phrase, rng, count=40, vowels=False)
    eval_misses = [m for m in distinct if m not in misses]
    train_misses = misses

    def jobs(texts: list[str], names: list[str], count: int) -> list[tuple[str, Any]]:
        voices = plan_voices(names, count, rng)
        return [(texts[k % len(texts)] if k < len(texts) else str(rng.choice(texts)), v)
                for k, v in enumerate(voices)]  # fmt: skip

    plan = {
        "pos": jobs([phrase], train_names, config.positives),
        "miss": jobs(train_misses, train_names, config.near_misses),
        "generic": jobs(list(GENERIC_SENTENCES[::2]), train_names, config.generic),
        "eval_pos": jobs([phrase], eval_names, config.eval_positives),
        "eval_miss": jobs(eval_misses, eval_names, config.eval_negatives // 2),
        "eval_generic": jobs(list(GENERIC_SENTENCES[1::2]), eval_names, config.eval_negatives // 2),
    }
    with _progress(progress) as stage:
        total = sum(len(v) for v in plan.values())
        advance = stage("synthesizing (espeak-ng)", total)
        audio = {k: synthesize_many(v, on_done=lambda: advance(1)) for k, v in plan.items()}
        for key in ("pos", "eval_pos"):
            audio[key] = _fit_window(audio[key])
        if len(audio["pos"]) < 20 or len(audio["eval_pos"]) < 10:
            raise WakeWordTrainingError(
                f"phrase {phrase!r} is too long: fewer than 20 utterances fit the "
                f"{WINDOW_SAMPLES / 16000:.1f} s window; choose a phrase of 1-4 words"
            )
        phrase_s = float(np.median([c.size for c in audio["pos"]])) / 16000.0

        augment = Augmenter(rng, babble=audio["generic"][:100])
        copies = config.augment_copies
        pos_w = _windows(audio["pos"], copies, rng, augment)
        neg_w = (
            _windows(audio["miss"], copies, rng, augment)
            + _windows(audio["generic"], 2 * copies, rng, augment)
            + _windows(_parts(audio["pos"], rng), 1, rng, augment)
            + _noise_windows(len(audio["pos"]) // 2, augment, rng)
        )
        ev_pos_w = _windows(audio["eval_pos"], 1, rng, Augmenter(rng, p_noise=0.5))
        ev_neg_w = _windows(audio["eval_generic"], 4, rng, None) + (
            _windows(_parts(audio["eval_pos"], rng), 1, rng, None)
        )
        ev_miss_w = _windows(audio["eval_miss"], 1, rng, None)
        all_w = pos_w + neg_w + ev_pos_w + ev_neg_w + ev_miss_w
        advance = stage("features (log-mel)", len(all_w))
        feats = np.empty((len(all_w), FEATURE_OPTIONS.n_mels, WINDOW_FRAMES), np.float32)
        for i, w in enumerate(all_w):
            feats[i] = log_mel_window(w)
            if i % 256 == 255:
                advance(256)
        advance(len(all_w) % 256)
        n_tr = len(pos_w) + len(neg_w)
        x_train = feats[:n_tr]
        y_train = np.concatenate((np.ones(len(pos_w)), np.zeros(len(neg_w)))).astype(np.float32)
        ev_pos_f = feats[n_tr : n_tr + len(ev_pos_w)]
        ev_neg_f = feats[n_tr + len(ev_pos_w) : n_tr + len(ev_pos_w) + len(ev_neg_w)]
        ev_miss_f = feats[n_tr + len(ev_pos_w) + len(ev_neg_w) :]

        net = _build_net(torch, config.channels)
        n_params = int(sum(p.numel() for p in net.parameters()))
        optimizer = torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=1e-3)
        steps_per_epoch = max(1, n_tr // config.batch_size)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.learning_rate, total_steps=config.epochs * steps_per_epoch
        )
        # Negatives outnumber positives; weigh the classes equally.
        pos_weight = torch.tensor([len(neg_w) / max(len(pos_w), 1)])
        loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        x_t, y_t = torch.from_numpy(x_train), torch.from_numpy(y_train)
        advance = stage("training", config.epochs)
        for _ in range(config.epochs):
            net.train()
            order = torch.from_numpy(rng.permutation(n_tr))
            for s in range(steps_per_epoch):
                idx = order[s * config.batch_size : (s + 1) * config.batch_size]
                xb = x_t[idx]
                # Gain jitter in the feature domain: a gain is a shift in dB.
                xb = xb + torch.from_numpy(rng.uniform(-6, 6, (len(idx), 1, 1)).astype(np.float32))
                xb = _spec_augment(torch, xb, rng)
                loss = loss_fn(net(xb).reshape(-1), y_t[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                scheduler.step()
            advance(1)

    pos_s, neg_s = _scores(torch, net, ev_pos_f), _scores(torch, net, ev_neg_f)
    miss_s = _scores(torch, net, ev_miss_f)
    # Alternate halves: the voices interleave, so both halves hold every held-out voice.
    threshold = _choose_threshold(pos_s[0::2], neg_s[0::2])
    metrics = {
        "heldout_frr": round(float(np.mean(pos_s[1::2] < threshold)), 4),
        "heldout_far_windows": round(float(np.mean(neg_s[1::2] >= threshold)), 5),
        "heldout_near_miss_accepts": round(float(np.mean(miss_s >= threshold)), 4),
        "heldout_positives": len(pos_s[1::2]),
        "heldout_negative_windows": len(neg_s[1::2]),
        "heldout_near_misses": len(miss_s),
        "train_windows": int(n_tr),
    }
    _export(torch, net, out_dir / "model.onnx")
    seconds = time.perf_counter() - t_start
    data = {
        "positive_utterances": len(audio["pos"]),
        "near_miss_utterances": len(audio["miss"]),
        "generic_utterances": len(audio["generic"]),
        "positive_windows": len(pos_w),
        "negative_windows": len(neg_w),
        "heldout_positive_utterances": len(audio["eval_pos"]),
        "heldout_negative_windows": len(ev_neg_w),
    }
    card: dict[str, Any] = {
        "phrase": phrase,
        "threshold": threshold,
        "window_frames": WINDOW_FRAMES,
        "phrase_s": round(phrase_s, 3),
        "features": {
            "sample_rate_hz": FEATURE_OPTIONS.sample_rate_hz,
            "n_fft": FEATURE_OPTIONS.n_fft,
            "win_length": FEATURE_OPTIONS.win_length,
            "hop_length": FEATURE_OPTIONS.hop_length,
            "n_mels": FEATURE_OPTIONS.n_mels,
            "center": False,
            "db": True,
        },
        "parameters": n_params,
        "data": data,
        "metrics": metrics,
        "config": asdict(config),
        "train_voices": train_names,
        "heldout_voices": eval_names,
        "near_misses": misses,
        "command": command or f"glasses wake train {shlex.quote(phrase)} --out {out_dir}",
        "seconds": round(seconds, 1),
        "versions": {"torch": str(torch.__version__), "python": platform.python_version()},
    }
    (out_dir / "wakeword.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    (out_dir / "MODEL_CARD.md").write_text(_card_markdown(card), encoding="utf-8")
    return TrainReport(out_dir, phrase, threshold, metrics, data, n_params, seconds)


def _card_markdown(card: dict[str, Any]) -> str:
    lines = [
        f'# Wake word: "{card["phrase"]}"',
        "",
        "Trained offline on the CPU from synthetic speech (espeak-ng) by `glasses wake train`.",
        "",
        f"- Reproduce: `{card['command']}` (seed {card['config']['seed']}, "
        f"torch {card['versions']['torch']}; {card['seconds']} s here)",
        f"- Network: depthwise-separable 1-D CNN, {card['parameters']} parameters, FP32 ONNX "
        "(INT8 not applied: the model is already small and fast)",
        f"- Input: log-mel `(n, 40, {card['window_frames']})` in dB (25 ms / 10 ms, uncentred), "
        "output `score` in 0..1",
        f"- Threshold: {card['threshold']} (chosen on half of the held-out voices)",
        f"- Median phrase duration: {card['phrase_s']} s",
        "",
        "## Data",
        "",
        *[f"- {k.replace('_', ' ')}: {v}" for k, v in card["data"].items()],
        f"- training voices: {len(card['train_voices'])} espeak-ng voice+variant pairs; "
        f"held-out: {len(card['heldout_voices'])} others",
        "",
        "## Metrics (the other half of the held-out espeak-ng voices)",
        "",
        *[f"- {k.replace('_', ' ')}: {v}" for k, v in card["metrics"].items()],
        "",
        "Evaluation on other synthesizers (flite, festival), noise and hours of negatives: "
        "`python -m benchmarks.bench_wakeword`.",
        "",
    ]
    return "\n".join(lines)
