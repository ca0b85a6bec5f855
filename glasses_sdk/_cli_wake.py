"""The wake-word commands of ``glasses``: ``wake detect AUDIO`` and ``wake train PHRASE``.

Mounted by :mod:`glasses_sdk.cli` as ``app.add_typer(wake_app, name="wake")``. Heavy
modules are imported inside the commands; with ``--json`` a command prints exactly one
JSON document on stdout, and progress goes to stderr.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from glasses_sdk._cli_models import read_audio

__all__ = ["detect_command", "train_command", "wake_app"]

wake_app = typer.Typer(
    help="Spot wake words in audio, and train new ones offline on the CPU.",
    no_args_is_help=True,
)

_err = Console(stderr=True)


@wake_app.command("detect")
def detect_command(
    audio: Annotated[Path, typer.Argument(help="Audio file: WAV, FLAC or OGG, any rate.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document on stdout.")
    ] = False,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            help="A registry name or a folder from `glasses wake train` (repeatable); "
            "default: hey-glasses.",
        ),
    ] = None,
    sensitivity: Annotated[
        float, typer.Option("--sensitivity", help="0..1; 0.5 is the model's own threshold.")
    ] = 0.5,
) -> None:
    """Wake-word detections in an audio file (on device)."""
    from glasses_sdk.inference.wakeword import WakeWordDetector, WakeWordOptions

    samples, rate = read_audio(audio)
    specs: tuple[str | Path, ...] = tuple(model) if model else ("hey-glasses",)
    detector = WakeWordDetector(WakeWordOptions(models=specs, sensitivity=sensitivity))
    result = detector.detect(samples, rate)
    document = {"audio": str(audio), "sample_rate_hz": rate, **result.to_json()}
    if as_json:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return
    for d in result.detections:
        typer.echo(f"{d.start_s:8.3f} s  {d.end_s:8.3f} s  {d.score:.3f}  {d.phrase}")
    _err.print(
        f"{len(result.detections)} detections in {document['duration_s']} s "
        f"({result.latency_ms:.1f} ms)"
    )


@wake_app.command("train")
def train_command(
    phrase: Annotated[str, typer.Argument(help='The wake phrase, e.g. "hey nova".')],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for model.onnx, wakeword.json and MODEL_CARD.md."),
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="A shortened recipe (tests, trying a phrase).")
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of data and training.")] = 1234,
) -> None:
    """Train a wake word for PHRASE from synthetic speech, offline, on the CPU."""
    from glasses_sdk.wakeword_train import TrainConfig, train
    from glasses_sdk.wakeword_train._data import normalize_phrase

    normalized = normalize_phrase(phrase)
    folder = out or Path("wakewords") / normalized.replace(" ", "_")
    config = TrainConfig.quick() if quick else TrainConfig()
    if seed != config.seed:
        from dataclasses import replace

        config = replace(config, seed=seed)
    command = f"glasses wake train {shlex.quote(normalized)} --out {shlex.quote(str(folder))}"
    command += (" --quick" if quick else "") + (f" --seed {seed}" if seed != 1234 else "")
    report = train(normalized, folder, config, progress=True, command=command)
    _err.print(
        f"wrote {report.out_dir}/model.onnx ({report.parameters} parameters), threshold "
        f"{report.threshold}, held-out FRR {report.metrics['heldout_frr']:.1%} "
        f"in {report.seconds:.0f} s"
    )
