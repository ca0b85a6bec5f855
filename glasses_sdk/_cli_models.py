"""The model commands of ``glasses``: ``models build|list|bench``, ``vad``, ``faces``, ``ocr``.

Mounted by :mod:`glasses_sdk.cli`. Heavy modules (onnxruntime, OpenCV, the tasks) are
imported inside the commands so that ``glasses --help`` stays fast. With ``--json`` a
command prints exactly one JSON document on stdout; progress and messages go to stderr.
Files that cannot be read raise :class:`~glasses_sdk.InvalidInputError` subclasses,
which ``glasses`` turns into one line and exit status 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.console import Console

from glasses_sdk._exceptions import GlassesError, InvalidAudioError, InvalidFrameError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["faces_command", "models_app", "ocr_command", "vad_command"]

models_app = typer.Typer(
    help="Build, list and benchmark the on-device models.", no_args_is_help=True
)

_err = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


def _print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2) + "\n")


def _existing_file(path: Path, what: str, error: type[GlassesError]) -> Path:
    if not path.exists():
        raise error(f"{path}: no such {what} file")
    if not path.is_file():
        raise error(f"{path}: expected a {what} file, found a folder or device")
    return path


def read_audio(path: Path) -> tuple[NDArray[np.float32], int]:
    """Mono float32 samples and the sample rate of a WAV, FLAC or OGG file."""
    import numpy as np
    import soundfile

    _existing_file(path, "audio", InvalidAudioError)
    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        raise InvalidAudioError(
            f"{path}: not audio that can be read (WAV, FLAC, OGG expected): {exc}"
        ) from exc
    if samples.shape[0] == 0:
        raise InvalidAudioError(f"{path}: the audio file holds no samples")
    mono = samples.mean(axis=1, dtype=np.float32) if samples.shape[1] > 1 else samples[:, 0]
    return np.ascontiguousarray(mono, dtype=np.float32), int(rate)


def read_image(path: Path) -> NDArray[np.uint8]:
    """A BGR uint8 image from any format OpenCV reads (grey images become BGR)."""
    import cv2
    import numpy as np

    _existing_file(path, "image", InvalidFrameError)
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise InvalidFrameError(f"{path}: not an image OpenCV can read")
    return np.asarray(image, dtype=np.uint8)


# ---------------------------------------------------------------------------- models


@models_app.command("build")
def build_command(
    names: Annotated[
        list[str] | None, typer.Argument(help="Models to build (default: all).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild up-to-date files.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Build the models from their pinned packages: verify, convert, quantize."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from glasses_sdk.inference._build import BuildRecord, build_models, count_steps
    from glasses_sdk.inference._registry import built_dir

    with Progress(
        TextColumn("[bold]models[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=_err,
        disable=as_json,
        transient=True,
    ) as progress:
        task = progress.add_task("", total=count_steps(names or None))

        def on_step(label: str, record: BuildRecord | None) -> None:
            if record is None:
                progress.update(task, description=label)
            else:
                progress.advance(task)

        records = build_models(names or None, force=force, on_step=on_step)
    if as_json:
        _print_json({"build_dir": str(built_dir()), "variants": [r.to_json() for r in records]})
        return
    built = [r for r in records if r.status == "built"]
    for r in built:
        _err.print(f"built {r.model}/{r.variant}: {r.size_bytes / 1e6:.2f} MB in {r.seconds:.1f} s")
    _err.print(
        f"models: {len(built)} built, {len(records) - len(built)} up to date, in {built_dir()}"
    )


def _list_rows() -> list[dict[str, Any]]:
    from glasses_sdk.inference._registry import default_registry

    registry = default_registry()
    rows = []
    for spec in registry:
        for variant in spec.variants.values():
            path = registry.output_path(spec.name, variant.name)
            rows.append(
                {
                    "model": spec.name,
                    "task": spec.task,
                    "variant": variant.name,
                    "default": variant.name == spec.default,
                    "recipe": variant.recipe,
                    "built": path.is_file(),
                    "size_bytes": path.stat().st_size if path.is_file() else None,
                    "licence": spec.licence,
                    "source": f"{spec.package}:{spec.file}",
                    "path": str(path),
                }
            )
    return rows


@models_app.command("list")
def list_command(as_json: JsonOption = False) -> None:
    """List every model and variant: task, default, built or not, size, licence."""
    rows = _list_rows()
    if as_json:
        _print_json({"models": rows})
        return
    from rich.table import Table

    table = Table(title="models")
    for column in ("model", "task", "variant", "default", "built", "size", "licence"):
        table.add_column(column)
    for row in rows:
        size = row["size_bytes"]
        table.add_row(
            row["model"],
            row["task"],
            row["variant"],
            "yes" if row["default"] else "",
            "yes" if row["built"] else "[red]no[/red]",
            "-" if size is None else f"{size / 1e6:.2f} MB",
            row["licence"],
        )
    Console().print(table)


@models_app.command("bench")
def bench_command(
    as_json: JsonOption = False,
    quick: Annotated[
        bool, typer.Option("--quick", help="Few samples: a smoke run, not a measurement.")
    ] = False,
) -> None:
    """FP32 against INT8, and each task against its bare session, single thread."""
    from glasses_sdk._paths import benchmark_module

    benchmark_module("bench_models").run(as_json=as_json, quick=quick)


# ----------------------------------------------------------------------------- tasks


def vad_command(
    audio: Annotated[Path, typer.Argument(help="Audio file: WAV, FLAC or OGG, any rate.")],
    as_json: JsonOption = False,
    threshold: Annotated[
        float, typer.Option("--threshold", help="Speech probability that starts speech.")
    ] = 0.5,
    min_silence_ms: Annotated[
        float, typer.Option("--min-silence-ms", help="Silence that ends a segment.")
    ] = 100.0,
) -> None:
    """Speech segments in an audio file (silero VAD, on device)."""
    from glasses_sdk.inference.vad import VadOptions, VoiceActivityDetector

    samples, rate = read_audio(audio)
    detector = VoiceActivityDetector(VadOptions(threshold=threshold, min_silence_ms=min_silence_ms))
    result = detector.detect(samples, rate)
    document = {"audio": str(audio), "sample_rate_hz": rate, **result.to_json()}
    if as_json:
        _print_json(document)
        return
    for s in result.segments:
        typer.echo(f"{s.start_s:8.3f} s  {s.end_s:8.3f} s  speech")
    _err.print(
        f"{len(result.segments)} segments, {document['speech_s']} s of speech in "
        f"{document['duration_s']} s ({result.latency_ms:.1f} ms)"
    )


def faces_command(
    image: Annotated[Path, typer.Argument(help="Image file in any format OpenCV reads.")],
    as_json: JsonOption = False,
    blur: Annotated[
        Path | None, typer.Option("--blur", help="Write the image with every face blurred.")
    ] = None,
    model: Annotated[
        str, typer.Option("--model", help="short (faces within ~2 m) or full (small faces).")
    ] = "short",
    score_threshold: Annotated[
        float, typer.Option("--score-threshold", help="Minimum face score, 0..1.")
    ] = 0.5,
) -> None:
    """Detect faces in an image (BlazeFace, on device); optionally write it blurred."""
    import cv2

    from glasses_sdk.inference.faces import (
        FaceDetector,
        FaceDetectorOptions,
        FaceModel,
        blur_faces,
    )

    frame = read_image(image)
    detector = FaceDetector(
        FaceDetectorOptions(model=cast("FaceModel", model), score_threshold=score_threshold)
    )
    result = detector.detect(frame)
    if blur is not None:
        blur_faces(frame, result.faces)
        ok = cv2.imwrite(str(blur), frame)
        if not ok:
            raise InvalidFrameError(
                f"{blur}: cannot write the blurred image (is the extension one OpenCV writes?)"
            )
    document = {
        "image": str(image),
        "model": model,
        **result.to_json(),
        "blurred": None if blur is None else str(blur),
    }
    if as_json:
        _print_json(document)
        return
    for face in result.faces:
        x0, y0, x1, y1 = face.box
        typer.echo(f"face {face.score:.2f}  [{x0:.0f}, {y0:.0f}, {x1:.0f}, {y1:.0f}]")
    _err.print(f"{len(result.faces)} faces ({result.latency_ms:.1f} ms)")
    if blur is not None:
        _err.print(f"blurred image written: {blur}")


def ocr_command(
    image: Annotated[Path, typer.Argument(help="Image file in any format OpenCV reads.")],
    as_json: JsonOption = False,
    model_set: Annotated[
        str,
        typer.Option(
            "--model-set", help="v4 (rapidocr's PP-OCRv4, default) or v5 (the heavier PP-OCRv5)."
        ),
    ] = "v4",
) -> None:
    """Read the text in an image (PP-OCR, on device)."""
    from glasses_sdk.inference.ocr import ModelSet, TextReader, TextReaderOptions

    options = TextReaderOptions(model_set=cast("ModelSet", model_set))
    frame = read_image(image)
    result = TextReader(options).read(frame)
    document = {"image": str(image), "model_set": model_set, **result.to_json()}
    if as_json:
        _print_json(document)
        return
    for line in result.lines:
        typer.echo(line.text)
    _err.print(f"{len(result.lines)} lines ({result.latency_ms:.1f} ms)")
