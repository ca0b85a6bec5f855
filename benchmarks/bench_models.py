"""The on-device models, measured: ``glasses models bench``.

Run from a checkout: ``python -m benchmarks.bench_models [--json] [--quick]``. Every
session has one intra-op thread and spinning off (the SDK's defaults), and OpenCV runs on
one thread, so the numbers are what one core of the glasses' host gives.

Three kinds of comparison, each run interleaved in the same process (``_harness``):

- each task against the bare ``session.run`` of its model on the same input: what our
  pre- and post-processing add (goal: at most 1.5×), plus its absolute latency goal;
- each INT8 variant against its FP32 variant: latency, size and the accuracy delta on
  real data, and whether the INT8 variant may become the default (faster, and within
  the tolerance that the manifest fixed before any evaluation);
- the peak resident memory of a fresh process that loads and runs every task once.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
from typing import Any, Literal

import numpy as np

from benchmarks._harness import Comparison, compare, render_table, to_json

__all__ = ["main", "run"]

# Decision thresholds, fixed before evaluation (models/manifest.toml says the same).
FACE_RECALL_TOLERANCE = 0.01  # LFW face recall at most 1 point lower
VAD_F1_TOLERANCE = 0.01
TEXT_CER_TOLERANCE = 0.005

_MEMORY_SCRIPT = """
import soundfile
from glasses_sdk import data
from glasses_sdk.inference import FaceDetector, VoiceActivityDetector
samples, rate = soundfile.read(str(data.speech_path("beckett")), dtype="float32")
VoiceActivityDetector().detect(samples, rate)
FaceDetector().detect(data.load_photo("astronaut"))
try:
    from glasses_sdk.inference.ocr import TextReader
except ImportError:
    pass
else:
    TextReader().read(data.load_photo("page"))
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork and
# exec, so a large benchmark process would inflate its child's figure.
hwm = next(ln for ln in open("/proc/self/status") if ln.startswith("VmHWM:"))
print(int(hwm.split()[1]) * 1024)
"""


def _kw(quick: bool) -> dict[str, Any]:
    return {"samples": 5, "rounds": 1, "warmup": 3} if quick else {"samples": 25, "rounds": 3}


def _speech_chunks() -> tuple[Any, int, list[Any]]:
    """A real recording, its rate, and its first 4 s as 512-sample chunks."""
    import soundfile

    from glasses_sdk import data

    samples, rate = soundfile.read(str(data.speech_path("beckett")), dtype="float32")
    chunks = [np.ascontiguousarray(samples[i : i + 512]) for i in range(0, 16000 * 4, 512)]
    return samples, int(rate), chunks


def _vad(quick: bool) -> Comparison:
    from glasses_sdk.inference import VoiceActivityDetector

    _, _, chunks = _speech_chunks()
    # Each side cycles through the same chunks on its own, carrying its own state.
    ours_chunks, bare_chunks = itertools.cycle(chunks), itertools.cycle(chunks)
    detector = VoiceActivityDetector()
    session = detector.model.session
    feed: dict[str, Any] = {
        "input": np.zeros((1, 576), np.float32),
        "state": np.zeros((2, 1, 128), np.float32),
        "sr": np.array(16000, np.int64),
    }
    feed = {k: v for k, v in feed.items() if k in detector.model.input_names}

    def ours() -> float:
        return detector.process(next(ours_chunks))

    def bare() -> object:
        feed["input"][0, 64:] = next(bare_chunks)
        out = session.run(None, feed)
        feed["state"] = out[1]
        return out

    return compare(
        "vad process(512 samples)",
        ("VoiceActivityDetector.process", ours),
        [("bare session.run", bare, 1 / 1.5)],
        notes="goal: under 0.16 ms per call (real-time factor below 0.005)",
        **_kw(quick),
    )


def _fused_vad(quick: bool) -> tuple[Comparison, dict[str, Any]]:
    """The default (fused) silero file against the file as shipped: process() on the same
    chunks of real speech, and their probabilities over the whole recording."""
    from glasses_sdk.inference import VadOptions, VoiceActivityDetector

    samples, rate, chunks = _speech_chunks()
    fused_chunks, shipped_chunks = itertools.cycle(chunks), itertools.cycle(chunks)
    fused = VoiceActivityDetector(VadOptions(variant="fused"))
    shipped = VoiceActivityDetector(VadOptions(variant="fp32"))

    comparison = compare(
        "vad fused vs fp32 (process, 512 samples)",
        ("fused", lambda: fused.process(next(fused_chunks))),
        [("fp32 as shipped", lambda: shipped.process(next(shipped_chunks)), 1.0)],
        **_kw(quick),
    )
    a, b = fused.detect(samples, rate), shipped.detect(samples, rate)
    return comparison, {
        "speedup_vs_fp32": round(comparison.references[0].speedup, 3),
        "max_probability_difference": float(np.abs(a.probabilities - b.probabilities).max()),
        "same_segments": a.segments == b.segments,
    }


def _vad_accuracy() -> dict[str, Any]:
    """Frame-level precision, recall and F1 of the speech segments against the energy
    reference of voiced time that the VAD tests use (32 ms frames), pooled over every
    real speech recording, and the share of noise flagged as speech."""
    import soundfile

    from glasses_sdk import data
    from glasses_sdk.inference import VoiceActivityDetector
    from tests.inference.test_vad import _flagged, _voiced_frames

    detector = VoiceActivityDetector()
    hits = flagged_total = voiced_total = 0
    for name in sorted(data.SPEECH):
        samples, rate = soundfile.read(str(data.speech_path(name)), dtype="float32")
        if samples.ndim == 2:
            samples = samples.mean(axis=1)
        voiced = _voiced_frames(samples, rate)
        flagged = _flagged(detector.detect(samples, rate).segments, voiced.size)
        hits += int((voiced & flagged).sum())
        flagged_total += int(flagged.sum())
        voiced_total += int(voiced.sum())
    precision = hits / max(flagged_total, 1)
    recall = hits / max(voiced_total, 1)
    rng = np.random.default_rng(7)
    noise = (0.1 * rng.standard_normal(16000 * 6)).astype(np.float32)
    noise_segments = detector.detect(noise, 16000).segments
    return {
        "recordings": len(data.SPEECH),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(2 * precision * recall / max(precision + recall, 1e-9), 4),
        "white_noise_speech_s": round(sum(seg.duration_s for seg in noise_segments), 3),
        "reference": "energy: 32 ms frames within 20 dB of the loudest, runs of >= 3",
    }


def _faces_setup() -> tuple[Any, Any, Any]:
    """The short-range detector, its 1280x720 frame (the astronaut photo, resized), and
    the bare ``session.run`` of the same model on the same frame's tensor."""
    import cv2

    from glasses_sdk import data
    from glasses_sdk.inference import FaceDetector
    from glasses_sdk.inference._registry import default_registry

    frame = np.asarray(cv2.resize(data.load_photo("astronaut"), (1280, 720)), dtype=np.uint8)
    detector = FaceDetector()
    tensor = detector._letterboxer.run(frame)[0].copy()
    session = detector.model.session
    assert detector.model.path == default_registry().path("blazeface-short")
    assert detector.detect(frame).faces, "the benchmark frame must have a face to decode"

    def ours() -> object:
        return detector.detect(frame)

    def bare() -> object:
        return session.run(None, {"input": tensor})

    return ours, bare, detector


def _faces(quick: bool) -> Comparison:
    ours, bare, _ = _faces_setup()
    return compare(
        "faces short-range 1280x720",
        ("FaceDetector.detect", ours),
        [("bare session.run", bare, 1 / 1.5)],
        notes="goal: under 3 ms with letterbox, decoding and NMS",
        **_kw(quick),
    )


def _faces_cpu(quick: bool) -> dict[str, Any]:
    """CPU time (``time.process_time``) per call of ``FaceDetector.detect`` and of the bare
    ``session.run``, interleaved in blocks (ours, bare, ours, ...), ratio per pair.

    Wall time on a shared machine also counts the time the scheduler gave to others; CPU
    time counts this process's work only, so the ratio is the overhead we add."""
    import time

    ours, bare = _faces_setup()[:2]
    calls, pairs = (20, 10) if quick else (50, 40)
    for fn in (ours, bare):
        for _ in range(calls):
            fn()
    samples: dict[str, list[float]] = {"ours": [], "bare": []}
    for _ in range(pairs):
        for name, fn in (("ours", ours), ("bare", bare)):
            start = time.process_time()
            for _ in range(calls):
                fn()
            samples[name].append((time.process_time() - start) / calls * 1e3)
    ratios = [a / b for a, b in zip(samples["ours"], samples["bare"], strict=True)]
    median = float(np.median(ratios))
    return {
        "case": "faces short-range 1280x720, CPU time",
        "ours_cpu_ms": round(float(np.median(samples["ours"])), 3),
        "bare_cpu_ms": round(float(np.median(samples["bare"])), 3),
        "ratio_ours_over_bare": round(median, 3),
        "ratio_quartiles": [round(float(q), 3) for q in np.percentile(ratios, [25, 75])],
        "goal_ratio": 1.5,
        "met": median <= 1.5,
        "pairs": pairs,
        "calls_per_sample": calls,
    }


def _lfw_face_recall(detector: Any) -> tuple[float, float]:
    from glasses_sdk import data

    crops = np.asarray(np.round(np.load(data.lfw_subset_path()) * 255), dtype=np.uint8)
    found = np.array([bool(detector.detect(c).faces) for c in crops])
    return float(found[:100].mean()), float(found[100:].mean())


def _int8_faces(quick: bool) -> tuple[Comparison, dict[str, Any]]:
    from glasses_sdk.inference import FaceDetector, FaceDetectorOptions
    from glasses_sdk.inference._registry import default_registry

    registry = default_registry()
    fp32 = FaceDetector(FaceDetectorOptions(variant="fp32"))
    int8 = FaceDetector(FaceDetectorOptions(variant="int8"))
    tensor = np.random.default_rng(0).uniform(-1, 1, (1, 3, 128, 128)).astype(np.float32)
    comparison = compare(
        "blazeface-short int8 vs fp32 (session.run)",
        ("int8", lambda: int8.model.session.run(None, {"input": tensor})),
        [("fp32", lambda: fp32.model.session.run(None, {"input": tensor}), 1.0)],
        **_kw(quick),
    )
    recall_fp32, false_fp32 = _lfw_face_recall(fp32)
    recall_int8, false_int8 = _lfw_face_recall(int8)
    faster = comparison.references[0].speedup > 1.0
    accurate = recall_int8 >= recall_fp32 - FACE_RECALL_TOLERANCE
    decision = {
        "model": "blazeface-short",
        "variant": "int8",
        "size_bytes": {
            "fp32": registry.path("blazeface-short", "fp32").stat().st_size,
            "int8": registry.path("blazeface-short", "int8").stat().st_size,
        },
        "speedup_vs_fp32": round(comparison.references[0].speedup, 3),
        "accuracy": {
            "metric": "LFW face recall",
            "fp32": recall_fp32,
            "int8": recall_int8,
            "non_face_rate_fp32": false_fp32,
            "non_face_rate_int8": false_int8,
            "tolerance": FACE_RECALL_TOLERANCE,
        },
        "faster": faster,
        "within_tolerance": accurate,
        "keep_as_default": faster and accurate,
        "manifest_default": registry.get("blazeface-short").default,
    }
    return comparison, decision


def _scene() -> Any:
    """A 640x480 real photo (scikit-image's coffee) with a sign of three printed lines."""

    from glasses_sdk import data
    from tests.inference.test_ocr import RENDERED_LINES, render

    photo = data.load_photo("coffee")
    return render(RENDERED_LINES, background=photo), "\n".join(RENDERED_LINES)


def _rapidocr(install: bool) -> tuple[Any, str | None]:
    """rapidocr-onnxruntime's own pipeline, or None and the reason it cannot run.

    Its package sits in the model cache (installed without dependencies, as the SDK
    needs only its files); running its code also needs pyclipper, shapely, pyyaml, six
    and pillow, which only the benchmark's environment installs (``_bench_env``).
    """
    from benchmarks._bench_env import activate

    why = activate(install=install)
    if why is not None:
        return None, why
    try:
        from rapidocr_onnxruntime import RapidOCR  # type: ignore[import-not-found]
    except ImportError as exc:
        return None, f"rapidocr_onnxruntime does not import: {exc}"
    return RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1), None


def _ocr(quick: bool, install: bool) -> tuple[Comparison, dict[str, Any]]:

    from glasses_sdk import data
    from glasses_sdk.inference import TextReader, TextReaderOptions
    from tests.inference.test_ocr import PAGE_TEXT, character_error_rate

    reader = TextReader()
    v5 = TextReader(TextReaderOptions(model_set="v5"))
    scene, scene_text = _scene()
    page = data.load_photo("page")
    accuracy: dict[str, Any] = {
        name: {
            "page_cer": round(character_error_rate(r.read(page).text, PAGE_TEXT), 4),
            "scene_cer": round(character_error_rate(r.read(scene).text, scene_text), 4),
        }
        for name, r in (("ours", reader), ("ours_v5", v5))
    }
    # v5 beside v4 for information (no goal): the heavier set's cost per frame.
    references: list[tuple[str, Any, float | None]] = [
        ("TextReader.read v5", lambda: v5.read(scene), None)
    ]
    engine, why = _rapidocr(install)
    if engine is not None:

        def text_of(image: Any) -> str:
            result, _ = engine(image)
            return "\n".join(line[1] for line in result or [])

        accuracy["rapidocr"] = {
            "page_cer": round(character_error_rate(text_of(page), PAGE_TEXT), 4),
            "scene_cer": round(character_error_rate(text_of(scene), scene_text), 4),
        }
        references.append(("rapidocr RapidOCR", lambda: engine(scene), 1.0))
    else:
        accuracy["rapidocr"] = f"not run: {why}"
    kw = _reader_compare_kw(quick)
    comparison = compare(
        "text reading 640x480 scene, 3 lines",
        ("TextReader.read", lambda: reader.read(scene)),
        references,
        notes="goal: under 200 ms, faster than RapidOCR at an equal or lower CER",
        sample_ms=1.0,
        **kw,
    )
    accuracy["cpu_ms"] = _ocr_cpu_ms(reader, scene, engine, rounds=3 if quick else 10)
    return comparison, accuracy


def _ocr_cpu_ms(reader: Any, scene: Any, engine: Any, *, rounds: int) -> dict[str, Any]:
    """CPU time (``time.process_time``) of one read of the scene, median over ``rounds``,
    ours and RapidOCR's interleaved, and ours split by stage: on a shared machine the
    wall-clock time of a single-threaded call also counts the time other processes
    held the core, its CPU time does not."""
    import time

    from glasses_sdk.preprocess.image import crop_quad

    def cpu_ms(fn: Any) -> float:
        start = time.process_time()
        fn()
        return (time.process_time() - start) * 1e3

    quads = reader.detect(scene)
    crops = [crop_quad(scene, q) for q in quads]
    stages: dict[str, Any] = {
        "read": lambda: reader.read(scene),
        "detect": lambda: reader.detect(scene),
        "classify": lambda: reader.upside_down(crops),
        "recognize": lambda: reader.recognize(crops),
    }
    if engine is not None:
        stages["rapidocr"] = lambda: engine(scene)
    samples: dict[str, list[float]] = {name: [] for name in stages}
    for _ in range(rounds):
        for name, fn in stages.items():
            samples[name].append(cpu_ms(fn))
    out: dict[str, Any] = {name: round(float(np.median(v)), 1) for name, v in samples.items()}
    if engine is not None:
        out["rapidocr_over_ours"] = round(out["rapidocr"] / out["read"], 2)
    out["lines"] = len(quads)
    return out


def _int8_ocr(quick: bool) -> tuple[Comparison, dict[str, Any]]:

    from glasses_sdk import data
    from glasses_sdk.inference import TextReader, TextReaderOptions
    from glasses_sdk.inference._registry import default_registry
    from tests.inference.test_ocr import PAGE_TEXT, character_error_rate

    registry = default_registry()
    fp32 = TextReader(TextReaderOptions(rec_variant="fp32"))
    int8 = TextReader(TextReaderOptions(rec_variant="int8"))
    scene, scene_text = _scene()
    page = data.load_photo("page")

    def cer(reader: Any) -> float:
        # Both real texts count alike: the mean of the page's and the scene's CER.
        return (
            character_error_rate(reader.read(page).text, PAGE_TEXT)
            + character_error_rate(reader.read(scene).text, scene_text)
        ) / 2

    kw = _reader_compare_kw(quick)
    comparison = compare(
        "ppocr-rec int8 vs fp32 (TextReader.read, scene)",
        ("int8", lambda: int8.read(scene)),
        [("fp32", lambda: fp32.read(scene), 1.0)],
        sample_ms=1.0,
        **kw,
    )
    cer_fp32, cer_int8 = cer(fp32), cer(int8)
    faster = comparison.references[0].speedup > 1.0
    accurate = cer_int8 <= cer_fp32 + TEXT_CER_TOLERANCE
    return comparison, {
        "model": "ppocr-rec",
        "variant": "int8",
        "size_bytes": {v: registry.path("ppocr-rec", v).stat().st_size for v in ("fp32", "int8")},
        "speedup_vs_fp32": round(comparison.references[0].speedup, 3),
        "accuracy": {
            "metric": "text CER (mean of page and scene)",
            "fp32": round(cer_fp32, 4),
            "int8": round(cer_int8, 4),
            "tolerance": TEXT_CER_TOLERANCE,
        },
        "faster": faster,
        "within_tolerance": accurate,
        "keep_as_default": faster and accurate,
        "manifest_default": registry.get("ppocr-rec").default,
    }


def _reader_compare_kw(quick: bool) -> dict[str, Any]:
    """Samples and rounds of a comparison of whole TextReader reads (~0.2 s each)."""
    return {"samples": 3, "rounds": 1, "warmup": 1} if quick else {"samples": 8, "rounds": 2}


def _fused_ocr(
    quick: bool, model_set: Literal["v4", "v5"] = "v4"
) -> tuple[Comparison, dict[str, Any]]:
    """The default (fused) PP-OCR files of ``model_set`` against the files as shipped,
    on the same scene."""
    from glasses_sdk import data
    from glasses_sdk.inference import TextReader, TextReaderOptions
    from tests.inference.test_ocr import PAGE_TEXT, character_error_rate

    def reader(variant: str) -> Any:
        options = TextReaderOptions(model_set=model_set, det_variant=variant, rec_variant=variant)
        return TextReader(options)

    fused, fp32 = reader("fused"), reader("fp32")
    scene, _ = _scene()
    page = data.load_photo("page")
    kw = _reader_compare_kw(quick)
    name = "ppocr" if model_set == "v4" else f"ppocr {model_set}"
    comparison = compare(
        f"{name} fused vs fp32 (TextReader.read, scene)",
        ("fused", lambda: fused.read(scene)),
        [("fp32 as shipped", lambda: fp32.read(scene), 1.0)],
        sample_ms=1.0,
        **kw,
    )
    page_fused, page_fp32 = fused.read(page).text, fp32.read(page).text
    return comparison, {
        "speedup_vs_fp32": round(comparison.references[0].speedup, 3),
        "page_cer": {
            "fp32": round(character_error_rate(page_fp32, PAGE_TEXT), 4),
            "fused": round(character_error_rate(page_fused, PAGE_TEXT), 4),
        },
        "same_text": page_fused == page_fp32,
    }


def _peak_memory_bytes() -> int:
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT], capture_output=True, text=True, check=True
    )
    return int(out.stdout.strip().splitlines()[-1])


def run(*, as_json: bool = False, quick: bool = False, install: bool = True) -> dict[str, Any]:
    """Run every model comparison; print a table (or one JSON document) and return it.

    ``install``: pip-install the reference pipelines' pinned packages where missing
    (``requirements/bench.txt``); without it a missing reference is reported, not run.
    """
    import cv2

    cv2.setNumThreads(1)
    vad_fused_comparison, vad_fused = _fused_vad(quick)
    comparisons = [_vad(quick), vad_fused_comparison, _faces(quick)]
    ocr_comparison, ocr_accuracy = _ocr(quick, install)
    comparisons.append(ocr_comparison)
    int8_comparison, decision = _int8_faces(quick)
    comparisons.append(int8_comparison)
    ocr_int8_comparison, ocr_decision = _int8_ocr(quick)
    comparisons.append(ocr_int8_comparison)
    fused_comparison, fused = _fused_ocr(quick)
    comparisons.append(fused_comparison)
    # The cloud's heavier set (its default files are fused too).
    fused_v5_comparison, fused_v5 = _fused_ocr(quick, "v5")
    comparisons.append(fused_v5_comparison)
    document: dict[str, Any] = json.loads(to_json("models", comparisons))
    document["ocr_accuracy"] = ocr_accuracy
    document["vad_accuracy"] = _vad_accuracy()
    document["faces_cpu"] = _faces_cpu(quick)
    document["int8_decisions"] = [decision, ocr_decision]
    document["vad_fused"] = vad_fused
    document["ocr_fused"] = fused
    document["ocr_fused_v5"] = fused_v5
    document["peak_rss_bytes_all_tasks"] = _peak_memory_bytes()
    if as_json:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        from rich.console import Console

        console = Console()
        console.print(render_table("models: tasks vs bare sessions, INT8 vs FP32", comparisons))
        for d in document["int8_decisions"]:
            acc = d["accuracy"]
            console.print(
                f"{d['model']} {d['variant']}: {d['speedup_vs_fp32']}x FP32's speed, "
                f"{acc['metric']} {acc['int8']:.3f} vs {acc['fp32']:.3f}, "
                f"keep as default: {'yes' if d['keep_as_default'] else 'no'}"
            )
        f = document["faces_cpu"]
        console.print(
            f"{f['case']}: ours {f['ours_cpu_ms']} ms, bare session.run {f['bare_cpu_ms']} ms, "
            f"ratio {f['ratio_ours_over_bare']} (goal <= {f['goal_ratio']})"
        )
        console.print(f"text reading CER: {document['ocr_accuracy']}")
        console.print(f"voice activity: {document['vad_accuracy']}")
        console.print(f"voice activity, fused vs shipped file: {document['vad_fused']}")
        console.print(
            f"peak resident memory, all tasks loaded and run once: "
            f"{document['peak_rss_bytes_all_tasks'] / 2**20:.0f} MiB"
        )
    return document


def _run_faces(*, as_json: bool, quick: bool) -> dict[str, Any]:
    """The face detection comparison alone: wall (the harness) and CPU time."""
    import cv2

    cv2.setNumThreads(1)
    comparison = _faces(quick)
    document: dict[str, Any] = json.loads(to_json("models", [comparison]))
    document["faces_cpu"] = _faces_cpu(quick)
    if as_json:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        from rich.console import Console

        console = Console()
        console.print(render_table("face detection vs bare session.run", [comparison]))
        console.print(document["faces_cpu"])
    return document


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: ``--json`` for JSON, ``--quick`` for a smoke run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--quick", action="store_true", help="few samples (smoke run)")
    parser.add_argument(
        "--only",
        choices=("faces",),
        help="run one comparison alone (faces: detect vs bare session.run, wall and CPU)",
    )
    parser.add_argument(
        "--no-install",
        action="store_true",
        help="do not pip-install the references' packages (requirements/bench.txt)",
    )
    args = parser.parse_args(argv)
    if args.only == "faces":
        _run_faces(as_json=args.json, quick=args.quick)
        return 0
    run(as_json=args.json, quick=args.quick, install=not args.no_install)
    return 0


if __name__ == "__main__":
    sys.exit(main())
