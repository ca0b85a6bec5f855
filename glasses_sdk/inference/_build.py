"""``glasses models build``: from pinned packages to the ONNX files the runtime loads.

For every variant of every manifest model, in dependency order: locate the source file
inside its package (installed aside, never imported), check its sha256, then apply the
variant's recipe (copy, ``tflite2onnx``, ``torch-onnx`` for MiniLM's PyTorch weights, or
onnxruntime quantization) into a temporary
file that is renamed into place only when complete. Beside each output a small
``.build.json`` stamp records what it was made from; a variant whose stamp still matches
is skipped, so the build is idempotent and incremental. A file lock serializes
concurrent builds (two test workers, ``make demo`` beside ``make test``).

Build tooling (``onnx``, ``tflite2onnx``, and ``sympy`` for onnxruntime's quantization
pre-processing) is imported only by the recipes that need it: copying the ONNX files of
silero-vad and rapidocr needs none of it. ``torch-onnx`` needs torch, which no extra
installs (``pip install torch==2.13.0``, the CPU build; see :mod:`._minilm`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnxruntime  # type: ignore[import-untyped]
from numpy.typing import NDArray

from glasses_sdk._exceptions import (
    ChecksumMismatchError,
    DataNotFoundError,
    MissingDependencyError,
    ModelBuildError,
)
from glasses_sdk._sources import install_sources, locate_package
from glasses_sdk.inference._registry import ModelRegistry, ModelSpec, VariantSpec, default_registry

__all__ = [
    "BuildRecord",
    "build_models",
    "calibration_feeds",
    "calibration_sources",
    "count_steps",
    "sha256_of",
]

BUILD_EXTRA = "models"
"""The extra that installs the build tooling (onnx, tflite2onnx, sympy)."""

# onnxruntime 1.31 rejects IR version 14, which onnx 1.23 writes by default.
_MAX_IR_VERSION = 9
# Bump when a recipe changes what it writes, so that existing builds are redone.
_STAMP_VERSION = 2


@dataclass(frozen=True)
class BuildRecord:
    """What the build did for one variant."""

    model: str
    variant: str
    status: Literal["built", "up-to-date"]
    path: str
    size_bytes: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        """A plain dict for ``--json`` output."""
        return asdict(self)


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _source_file(spec: ModelSpec, sources: Path | None) -> Path:
    try:
        folder = locate_package(spec.module, sources)
    except DataNotFoundError as exc:
        raise ModelBuildError(
            f"model {spec.name!r}: package {spec.package!r} is not installed ({exc})"
        ) from exc
    path = folder / spec.file
    if not path.is_file():
        raise ModelBuildError(
            f"model {spec.name!r}: {spec.file} is missing from package {spec.package!r} "
            f"({folder}); check its pin in models/sources.txt"
        )
    return path


def _verified_source(spec: ModelSpec, sources: Path | None) -> Path:
    path = _source_file(spec, sources)
    actual = sha256_of(path)
    if actual != spec.sha256:
        raise ChecksumMismatchError(str(path), spec.sha256, actual)
    return path


def _verified_characters(spec: ModelSpec, sources: Path | None) -> Path | None:
    """A recognizer's dictionary file named by ``input.characters``, checksum verified."""
    name = spec.input.get("characters")
    if name is None:
        return None
    expected = spec.input.get("characters_sha256")
    if not isinstance(name, str) or not isinstance(expected, str):
        raise ModelBuildError(
            f"model {spec.name!r}: input.characters and input.characters_sha256 must be "
            "a file inside the package and its sha256"
        )
    path = locate_package(spec.module, sources) / name
    if not path.is_file():
        raise ModelBuildError(
            f"model {spec.name!r}: {name} is missing from package {spec.package!r}; "
            "check its pin in models/sources.txt"
        )
    actual = sha256_of(path)
    if actual != expected:
        raise ChecksumMismatchError(str(path), expected, actual)
    return path


def _copy_with_characters(source: Path, characters: Path, out: Path) -> None:
    """Copy a recognizer, writing its dictionary into the 'character' metadata entry
    (one character per line, as rapidocr's files carry theirs)."""
    onnx = _import_onnx()
    model = onnx.load(str(source))
    text = characters.read_text(encoding="utf-8").rstrip("\n").replace("\r\n", "\n")
    onnx.helper.set_model_props(
        model, {**{p.key: p.value for p in model.metadata_props}, "character": text}
    )
    onnx.save(model, str(out))


# ------------------------------------------------------------------------ calibration


def calibration_sources(name: str) -> list[Path]:
    """The real images a calibration set is made from, those installed here.

    None of them is used by an accuracy test: those use astronaut, camera, page, coffee
    and the LFW subset. The opencv-doc files (a Debian package) are used when present;
    the build stamp records which were, so that installing them later rebuilds.
    """
    from glasses_sdk.data import OPENCV_DATA_DIR

    skimage_data = locate_package("skimage") / "data"
    if name == "face-photos":
        paths = [
            *(skimage_data / n for n in ("chelsea.png", "motorcycle_left.png", "rocket.jpg")),
            *(skimage_data / n for n in ("color.png", "horse.png")),
            *(OPENCV_DATA_DIR / n for n in ("messi5.jpg", "basketball1.png", "home.jpg")),
        ]
    elif name == "text-lines":
        paths = [
            skimage_data / "text.png",
            *(
                OPENCV_DATA_DIR / n
                for n in (
                    "imageTextN.png",
                    "imageTextR.png",
                    "text_motion.jpg",
                    "text_defocus.jpg",
                    "licenseplate_motion.jpg",
                )
            ),
        ]
    else:
        raise ModelBuildError(f"unknown calibration set {name!r}")
    return [p for p in paths if p.is_file()]


def _read_images(paths: Sequence[Path]) -> list[NDArray[np.uint8]]:
    import cv2

    images = []
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is not None:
            images.append(np.ascontiguousarray(image, dtype=np.uint8))
    if not images:
        raise ModelBuildError("no calibration images found; run `glasses data install`")
    return images


def _face_feeds(input_name: str, size: int) -> list[dict[str, NDArray[np.float32]]]:
    from glasses_sdk.preprocess.image import Letterboxer, LetterboxOptions

    letterboxer = Letterboxer(
        LetterboxOptions(size=size, channel_order="rgb", scale=1 / 127.5, mean=127.5)
    )
    feeds = []
    for photo in _read_images(calibration_sources("face-photos")):
        h, w = photo.shape[:2]
        # The whole photo, its mirror, and a centre crop: faces at several scales.
        crop = photo[h // 6 : h - h // 6, w // 6 : w - w // 6]
        for view in (photo, photo[:, ::-1], crop):
            tensor, _ = letterboxer.run(np.ascontiguousarray(view))
            feeds.append({input_name: tensor.copy()})
    return feeds


# Calibration sentences: none of them is a test's text.
_CALIBRATION_LINES = (
    "The quick brown fox jumps over the lazy dog",
    "Gate B12 closes 20 minutes before departure",
    "Open Mon-Fri 8:30-18:00, Sat 9-13",
    "Total: 42.95 (VAT 19%)",
    "www.example.org / info@example.org",
    "Keep left. Slow down! Wet floor?",
    "No. 7 Harbour Road",
    "EXIT",
)


def _text_line_feeds(
    input_name: str, registry: ModelRegistry
) -> list[dict[str, NDArray[np.float32]]]:
    """Text lines as the recognizer sees them: real lines found by the FP32 detector in
    the calibration photos, and rendered lines over real textures."""
    import cv2

    from glasses_sdk.inference._session import SessionManager
    from glasses_sdk.inference.ocr import (
        _REC_HEIGHT,
        _REC_MIN_WIDTH,
        TextReader,
        _normalize_into,
    )
    from glasses_sdk.preprocess.image import crop_quad

    reader = TextReader(registry=registry, sessions=SessionManager())
    crops = [
        crop_quad(image, quad)
        for image in _read_images(calibration_sources("text-lines"))
        for quad in reader.detect(image)
    ]
    textures = _read_images(
        [locate_package("skimage") / "data" / n for n in ("brick.png", "grass.png", "gravel.png")]
    )
    fonts = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX)
    for i, line in enumerate(_CALIBRATION_LINES):
        font = fonts[i % len(fonts)]
        (w, h), base = cv2.getTextSize(line, font, 1.0, 2)
        canvas = np.full((h + base + 16, w + 16, 3), 230, np.uint8)
        patch = cv2.resize(textures[i % len(textures)], (canvas.shape[1], canvas.shape[0]))
        canvas = np.asarray(cv2.addWeighted(canvas, 0.8, patch, 0.2, 0), dtype=np.uint8)
        cv2.putText(canvas, line, (8, h + 8), font, 1.0, (20, 20, 20), 2, cv2.LINE_AA)
        crops.append(np.ascontiguousarray(canvas, dtype=np.uint8))
    feeds = []
    for crop in crops:
        width = max(_REC_MIN_WIDTH, int(_REC_HEIGHT * crop.shape[1] / crop.shape[0]))
        tensor = np.empty((1, 3, _REC_HEIGHT, width), dtype=np.float32)
        _normalize_into(crop, tensor[0], width)
        feeds.append({input_name: tensor})
    return feeds


def calibration_feeds(
    name: str, spec: ModelSpec, registry: ModelRegistry | None = None
) -> list[dict[str, NDArray[np.float32]]]:
    """The calibration inputs of the named set for ``spec``'s model."""
    if name == "face-photos":
        shape = spec.input.get("shape", [1, 3, 128, 128])
        return _face_feeds(str(spec.input.get("name", "input")), int(shape[-1]))
    if name == "text-lines":
        return _text_line_feeds(str(spec.input.get("name", "x")), registry or default_registry())
    raise ModelBuildError(f"model {spec.name!r}: unknown calibration set {name!r}")


# --------------------------------------------------------------------------- recipes


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise MissingDependencyError("onnx", BUILD_EXTRA) from None
    return onnx


def _cap_ir_version(path: Path) -> None:
    onnx = _import_onnx()
    model = onnx.load(str(path))
    if model.ir_version > _MAX_IR_VERSION:
        model.ir_version = _MAX_IR_VERSION
        onnx.save(model, str(path))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence a tool's prints and log lines (tflite2onnx warns about every float16)."""
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logging.disable(logging.NOTSET)


def _tflite2onnx(source: Path, out: Path) -> None:
    try:
        import tflite2onnx  # type: ignore[import-untyped]
    except ImportError:
        raise MissingDependencyError("tflite2onnx", BUILD_EXTRA) from None
    try:
        with _quiet():
            tflite2onnx.convert(str(source), str(out))
    except Exception as exc:
        raise ModelBuildError(f"tflite2onnx could not convert {source.name}: {exc}") from exc
    _cap_ir_version(out)


def _torch_onnx(source: Path, out: Path) -> None:
    from glasses_sdk.inference._minilm import export_minilm

    export_minilm(source, out)
    _cap_ir_version(out)


# Per-channel QDQ needs DequantizeLinear's ``axis``, which arrived in opset 13;
# tflite2onnx writes opset 11.
_MIN_QUANT_OPSET = 13


def _upgrade_opset(source: Path, out: Path) -> None:
    onnx = _import_onnx()
    from onnx import version_converter

    model = onnx.load(str(source))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < _MIN_QUANT_OPSET:
        model = version_converter.convert_version(model, _MIN_QUANT_OPSET)
    onnx.save(model, str(out))


def _check_loads(path: Path) -> None:
    """Fail the build, not the first user, when onnxruntime rejects a built file."""
    try:
        onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelBuildError(f"onnxruntime rejects the built {path.name}: {exc}") from exc


class _FeedReader:
    """onnxruntime's CalibrationDataReader protocol over a list of feeds."""

    def __init__(self, feeds: Sequence[dict[str, NDArray[np.float32]]]) -> None:
        self._feeds = iter(feeds)

    def get_next(self) -> dict[str, NDArray[np.float32]] | None:
        return next(self._feeds, None)

    def rewind(self) -> None:  # pragma: no cover - called only by some calibrators
        pass


def _quantize(
    spec: ModelSpec,
    variant: VariantSpec,
    source: Path,
    out: Path,
    work: Path,
    *,
    registry: ModelRegistry,
) -> None:
    _import_onnx()
    try:
        from onnxruntime.quantization import (  # type: ignore[import-untyped]
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_dynamic,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import (  # type: ignore[import-untyped]
            quant_pre_process,
        )
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "onnxruntime.quantization", BUILD_EXTRA) from exc
    prepared = work / "prepared.onnx"
    try:
        with _quiet():
            _upgrade_opset(source, work / "opset.onnx")
            quant_pre_process(str(work / "opset.onnx"), str(prepared), skip_symbolic_shape=True)
            if variant.recipe == "quantize-static":
                feeds = calibration_feeds(variant.calibration or "", spec, registry)
                quantize_static(
                    str(prepared),
                    str(out),
                    _FeedReader(feeds),
                    quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    per_channel=variant.per_channel,
                    calibrate_method=CalibrationMethod.MinMax,
                )
            else:
                quantize_dynamic(
                    str(prepared),
                    str(out),
                    weight_type=QuantType.QInt8,
                    per_channel=variant.per_channel,
                )
    except (MissingDependencyError, ModelBuildError):
        raise
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "sympy", BUILD_EXTRA) from exc
    except Exception as exc:
        raise ModelBuildError(
            f"quantizing {spec.name!r} to {variant.name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    _cap_ir_version(out)


# ----------------------------------------------------------------------------- build


def _stamp_path(out: Path) -> Path:
    return out.with_suffix(".build.json")


def _stamp(spec: ModelSpec, variant: VariantSpec, input_sha: str) -> dict[str, Any]:
    stamp: dict[str, Any] = {
        "stamp_version": _STAMP_VERSION,
        "source_sha256": spec.sha256,
        "input_sha256": input_sha,
        **variant.recipe_key(),
    }
    if variant.recipe.startswith("quantize"):
        # A new onnxruntime may quantize differently; rebuild then.
        stamp["onnxruntime"] = onnxruntime.__version__
    if variant.calibration is not None:
        stamp["calibration_files"] = [p.name for p in calibration_sources(variant.calibration)]
    return stamp


def _up_to_date(out: Path, stamp: dict[str, Any]) -> bool:
    stamp_file = _stamp_path(out)
    if not (out.is_file() and stamp_file.is_file()):
        return False
    try:
        recorded = json.loads(stamp_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(recorded, dict):
        return False
    output_sha = recorded.pop("output_sha256", None)
    return recorded == stamp and output_sha == sha256_of(out)


@contextlib.contextmanager
def _build_lock(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".build.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _order(spec: ModelSpec) -> list[VariantSpec]:
    """Variants so that each comes after the one it is made from."""
    done: list[VariantSpec] = []
    pending = list(spec.variants.values())
    while pending:
        ready = [v for v in pending if v.source_variant in (None, *[d.name for d in done])]
        if not ready:
            raise ModelBuildError(f"model {spec.name!r}: its variants depend on each other")
        done += ready
        pending = [v for v in pending if v not in ready]
    return done


def _build_variant(
    registry: ModelRegistry,
    spec: ModelSpec,
    variant: VariantSpec,
    source: Path,
    *,
    force: bool,
    characters: Path | None = None,
) -> BuildRecord:
    start = time.perf_counter()
    out = registry.output_path(spec.name, variant.name)
    if variant.source_variant is None:
        input_path, input_sha = source, spec.sha256
    else:
        input_path = registry.output_path(spec.name, variant.source_variant)
        input_sha = sha256_of(input_path)
    stamp = _stamp(spec, variant, input_sha)
    if characters is not None and variant.source_variant is None:
        stamp["characters_sha256"] = spec.input["characters_sha256"]
    if not force and _up_to_date(out, stamp):
        return BuildRecord(spec.name, variant.name, "up-to-date", str(out), out.stat().st_size, 0.0)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".build-") as tmp:
        work = Path(tmp)
        staged = work / out.name
        if variant.recipe == "copy" and characters is not None:
            _copy_with_characters(input_path, characters, staged)
        elif variant.recipe == "copy":
            shutil.copyfile(input_path, staged)
        elif variant.recipe == "tflite2onnx":
            _tflite2onnx(input_path, staged)
        elif variant.recipe == "torch-onnx":
            _torch_onnx(input_path, staged)
        elif variant.recipe == "fuse-activations":
            # Exact graph rewrites (see ocr.fuse_affine_activations): same outputs to
            # 1e-4, fewer element-wise kernels; measured 1.29x on TextReader.read.
            from glasses_sdk.inference.ocr import fuse_affine_activations

            fuse_affine_activations(input_path, staged)
        elif variant.recipe == "fuse-vad":
            # silero VAD as matrix products (see _vad_graph): checked against its
            # source while building.
            from glasses_sdk.inference._vad_graph import fuse_silero_vad

            fuse_silero_vad(input_path, staged)
        else:
            _quantize(spec, variant, input_path, staged, work, registry=registry)
        if variant.recipe != "copy":
            _check_loads(staged)
        stamp["output_sha256"] = sha256_of(staged)
        staged.replace(out)
        _stamp_path(out).write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")
    return BuildRecord(
        spec.name,
        variant.name,
        "built",
        str(out),
        out.stat().st_size,
        round(time.perf_counter() - start, 3),
    )


def build_models(
    names: Sequence[str] | None = None,
    *,
    registry: ModelRegistry | None = None,
    force: bool = False,
    install: bool = True,
    sources: Path | None = None,
    on_step: Callable[[str, BuildRecord | None], None] | None = None,
) -> list[BuildRecord]:
    """Build the named models (all when None) and return one record per variant.

    ``install`` first installs missing pinned source packages (``models/sources.txt``)
    into ``sources`` (default: the cache). ``force`` rebuilds up-to-date variants.
    ``on_step(label, record)`` is called before each variant (record None) and after
    it, for a progress display. Raises :class:`ModelBuildError` (or its
    :class:`ChecksumMismatchError`) naming the model, package and file at fault, and
    :class:`MissingDependencyError` when build tooling is missing.
    """
    registry = registry or default_registry()
    specs = [registry.get(n) for n in names] if names else list(registry)
    records: list[BuildRecord] = []
    with _build_lock(registry.build_root):
        # Inside the lock: two processes must not pip-install into one folder at once.
        if install:
            install_sources(sources)
        for spec in specs:
            if spec.shipped:  # trained here and shipped as is: nothing to build
                continue
            source = _verified_source(spec, sources)
            characters = _verified_characters(spec, sources)
            for variant in _order(spec):
                label = f"{spec.name}/{variant.name}"
                if on_step is not None:
                    on_step(label, None)
                record = _build_variant(
                    registry, spec, variant, source, force=force, characters=characters
                )
                records.append(record)
                if on_step is not None:
                    on_step(label, record)
    return records


def count_steps(names: Sequence[str] | None = None, registry: ModelRegistry | None = None) -> int:
    """How many variants :func:`build_models` would visit (for a progress bar)."""
    registry = registry or default_registry()
    specs = [registry.get(n) for n in names] if names else list(registry)
    return sum(len(s.variants) for s in specs if not s.shipped)
