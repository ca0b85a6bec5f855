"""silero VAD's graph rewritten as matrix products: the ``fused`` variant of ``silero-vad``.

One call of silero VAD is a handful of tiny convolutions over 4 frames, one LSTM step
and a decoder, about 0.7 M multiply-adds on 1.1 MB of weights. At that size
onnxruntime's 1-D convolutions (an im2col copy, then a GEMM whose N is the 1-4 frames)
and the Squeeze/Unsqueeze glue around the LSTM cost more than the arithmetic. The same
function, written with the frames as the rows of ``MatMul``/``Gemm``, runs about 1.3x
faster (``benchmarks/bench_models.py``: "vad fused vs fp32"):

- the STFT (a ``Conv`` with 258 filters of 256 taps, stride 128, over the input padded
  by reflection to 640 samples): the padded input as 5 blocks of 128 samples, times the
  filters' first and second halves side by side, and frame ``t`` as block ``t``'s
  first half plus block ``t + 1``'s second half;
- the magnitude: the square of that, real and imaginary parts summed, the square root;
- the four encoder convolutions (kernel 3, padding 1, strides 1, 2, 2, 1, ReLU): their
  taps gathered by slices of the zero-padded frames and one ``Gemm`` each; at 2 and 1
  frames only the taps that touch a frame remain;
- the LSTM step on onnxruntime's ``LSTM``, with the state split without reshapes; the
  decoder's 1x1 convolution as a ``Gemm`` and a sigmoid.

The inputs (``input`` [1, 576], ``state`` [2, 1, 128]) and outputs (``output`` [1, 1],
``stateN`` [2, 1, 128]) keep their names and shapes. The build checks the rewrite
against the source file on a fixed signal and refuses a file whose graph is not the
one described.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from glasses_sdk._exceptions import MissingDependencyError, ModelBuildError
from glasses_sdk.inference._session import SessionManager
from glasses_sdk.inference.vad import (
    VAD_CHUNK_SAMPLES,
    VAD_CONTEXT_SAMPLES,
    VAD_SAMPLE_RATE_HZ,
    VoiceActivityDetector,
)

__all__ = ["fuse_silero_vad"]

_INPUT_SAMPLES = VAD_CONTEXT_SAMPLES + VAD_CHUNK_SAMPLES
_PADDED_SAMPLES = 640
_HOP = 128
_ENCODER_STRIDES = (1, 2, 2, 1)
_TOLERANCE = 1e-4


def _folded(source: Path, work: Path) -> Any:
    """``source`` with its constant subgraphs folded into initializers (onnxruntime's
    basic level: portable rewrites only), loaded with onnx."""
    import onnx
    import onnxruntime  # type: ignore[import-untyped]

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(work / "folded.onnx")
    try:
        onnxruntime.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise ModelBuildError(f"{source}: onnxruntime cannot load it ({exc})") from exc
    return onnx.load(str(work / "folded.onnx"))


class _Weights:
    """The tensors of the folded silero graph that the rewrite needs, checked."""

    def __init__(self, model: Any, source: Path) -> None:
        from onnx import helper, numpy_helper

        init = {t.name: np.asarray(numpy_helper.to_array(t)) for t in model.graph.initializer}

        def fail(what: str) -> ModelBuildError:
            return ModelBuildError(f"{source}: not silero VAD's 16 kHz graph: {what}")

        def tensor(name: str) -> NDArray[Any]:
            if name not in init:
                raise fail(f"{name!r} is not a constant")
            return init[name]

        def attrs(node: Any) -> dict[str, Any]:
            return {a.name: helper.get_attribute_value(a) for a in node.attribute}

        nodes = list(model.graph.node)
        convs = [n for n in nodes if n.op_type == "Conv"]
        lstms = [n for n in nodes if n.op_type == "LSTM"]
        pads = [n for n in nodes if n.op_type == "Pad"]
        if len(convs) != 6 or len(lstms) != 1 or len(pads) != 1:
            raise fail(
                f"expected 6 Conv, 1 LSTM and 1 Pad, found {len(convs)}, "
                f"{len(lstms)} and {len(pads)}"
            )
        pad = pads[0]
        if attrs(pad).get("mode") != b"reflect" or tensor(pad.input[1]).tolist() != [
            0,
            0,
            0,
            VAD_CONTEXT_SAMPLES,
        ]:
            raise fail("expected the input padded by reflection with 64 samples on the right")
        stft = convs[0]
        a = attrs(stft)
        if (
            a.get("strides") != [_HOP]
            or a.get("pads", [0, 0]) != [0, 0]
            or tensor(stft.input[1]).shape != (258, 1, 256)
        ):
            raise fail("expected an unpadded STFT Conv of 258 filters of 256 taps, stride 128")
        self.basis = tensor(stft.input[1])[:, 0, :]
        self.encoder: list[tuple[NDArray[Any], NDArray[Any]]] = []
        for conv, stride in zip(convs[1:5], _ENCODER_STRIDES, strict=True):
            a = attrs(conv)
            if (
                a.get("strides", [1]) != [stride]
                or a.get("pads") != [1, 1]
                or a.get("group", 1) != 1
                or a.get("dilations", [1]) != [1]
                or len(conv.input) < 3
            ):
                raise fail(
                    f"expected dense encoder convolutions of strides {_ENCODER_STRIDES}, "
                    "padding 1 and a bias"
                )
            w, b = tensor(conv.input[1]), tensor(conv.input[2])
            if w.ndim != 3 or w.shape[2] != 3:
                raise fail(f"expected encoder kernels of 3 taps, got {w.shape}")
            self.encoder.append((w, b))
        lstm = lstms[0]
        self.lstm = tuple(tensor(name) for name in lstm.input[1:4])
        if self.lstm[0].shape != (1, 512, 128) or attrs(lstm).get("hidden_size") != 128:
            raise fail("expected a forward LSTM of 128 units")
        decoder = convs[5]
        self.decoder = tensor(decoder.input[1]), tensor(decoder.input[2])
        if self.decoder[0].shape != (1, 128, 1):
            raise fail("expected a 1x1 decoder convolution to one output")


class _GraphBuilder:
    """Nodes and initializers of the graph being written, constants named once."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._names: set[str] = set()

    def const(self, name: str, value: NDArray[Any] | list[int]) -> str:
        from onnx import numpy_helper

        if name not in self._names:
            array = np.asarray(value)
            array = array.astype(np.int64 if array.dtype.kind in "iu" else np.float32)
            self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
            self._names.add(name)
        return name

    def op(self, op_type: str, inputs: list[str], output: str, **attrs: Any) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op_type, inputs, [output], **attrs))
        return output

    def rows(self, x: str, start: int, stop: int, name: str, step: int = 1) -> str:
        """Rows ``start:stop:step`` of the 2-D tensor ``x``."""
        bounds = [self.const(f"row{start}", [start]), self.const(f"row{stop}", [stop])]
        extra = [self.const("axis0", [0])] + (
            [self.const(f"step{step}", [step])] if step > 1 else []
        )
        return self.op("Slice", [x, *bounds, *extra], name)

    def dense(self, x: str, weight: NDArray[Any], bias: NDArray[Any], name: str) -> str:
        """``relu(x @ weight + bias)``; onnxruntime fuses it into one Gemm."""
        product = self.op("MatMul", [x, self.const(f"{name}_w", weight)], f"{name}_mm")
        return self.op(
            "Relu", [self.op("Add", [product, self.const(f"{name}_b", bias)], f"{name}_add")], name
        )


def _rewrite(w: _Weights) -> Any:
    from onnx import TensorProto, helper

    g = _GraphBuilder()
    # STFT: padded input as 5 blocks of 128; frame t = block t @ first half + block t+1 @
    # second half of each filter; real parts in columns 0-128, imaginary in 129-257.
    padded = g.op(
        "Pad", ["input", g.const("pads", [0, 0, 0, VAD_CONTEXT_SAMPLES])], "padded", mode="reflect"
    )
    blocks = g.op("Reshape", [padded, g.const("blocks_shape", [5, _HOP])], "blocks")
    halves = np.concatenate([w.basis[:, :_HOP].T, w.basis[:, _HOP:].T], axis=1)
    both = g.op("MatMul", [blocks, g.const("stft_basis", halves)], "stft_halves")
    axes = g.const("axes01", [0, 1])
    first = g.op("Slice", [both, g.const("f0", [0, 0]), g.const("f1", [4, 258]), axes], "stft_a")
    second = g.op("Slice", [both, g.const("s0", [1, 258]), g.const("s1", [5, 516]), axes], "stft_b")
    spectrum = g.op("Add", [first, second], "stft")
    power = g.op(
        "Reshape",
        [g.op("Mul", [spectrum, spectrum], "stft_sq"), g.const("parts_shape", [4, 2, 129])],
        "stft_parts",
    )
    summed = g.op("ReduceSum", [power, g.const("axis1", [1])], "power", keepdims=0)
    frames = g.op("Sqrt", [summed], "magnitude")  # (4 frames, 129 bins)
    zero_pad = g.const("pad_rows", [1, 0, 1, 0])
    # Encoder 0 (stride 1): the three taps of each frame side by side, one Gemm.
    (w0, b0), (w1, b1), (w2, b2), (w3, b3) = w.encoder
    p0 = g.op("Pad", [frames, zero_pad], "enc0_padded")  # (6, 129)
    taps = [g.rows(p0, k, k + 4, f"enc0_tap{k}") for k in range(3)]
    cols0 = g.op("Concat", taps, "enc0_cols", axis=1)
    weight0 = np.concatenate([w0[:, :, k].T for k in range(3)], axis=0)
    e0 = g.dense(cols0, weight0, b0, "enc0")  # (4, 128)
    # Encoder 1 (stride 2, frames 0 and 2): taps (z, f0, f1) and (f1, f2, f3) of the padded
    # rows; the first two taps of both as a reshape of rows 0-3, the third as rows 2 and 4.
    p1 = g.op("Pad", [e0, zero_pad], "enc1_padded")  # (6, 128)
    pairs = g.op(
        "Reshape", [g.rows(p1, 0, 4, "enc1_rows"), g.const("pairs_shape", [2, 256])], "enc1_pairs"
    )
    thirds = g.rows(p1, 2, 6, "enc1_thirds", step=2)
    weight1 = np.concatenate([w1[:, :, 0].T, w1[:, :, 1].T], axis=0)
    first_two = g.op("MatMul", [pairs, g.const("enc1_w01", weight1)], "enc1_taps01")
    third = g.op("MatMul", [thirds, g.const("enc1_w2", w1[:, :, 2].T)], "enc1_tap2")
    summed1 = g.op(
        "Add", [g.op("Add", [first_two, third], "enc1_sum"), g.const("enc1_b", b1)], "enc1_add"
    )
    e1 = g.op("Relu", [summed1], "enc1")  # (2, 64)
    # Encoder 2 (stride 2, frame 0): taps (z, f0, f1), the zero tap dropped.
    flat = g.op("Reshape", [e1, g.const("flat_shape", [1, 128])], "enc2_cols")
    e2 = g.dense(flat, np.concatenate([w2[:, :, 1].T, w2[:, :, 2].T], axis=0), b2, "enc2")
    # Encoder 3 (stride 1, one frame): only the centre tap meets a frame.
    e3 = g.dense(e2, w3[:, :, 1].T, b3, "enc3")  # (1, 128)
    step = g.op("Reshape", [e3, g.const("step_shape", [1, 1, 128])], "lstm_in")
    # The state is (h, c) stacked: split on its first axis, each already [1, 1, 128].
    split = helper.make_node("Split", ["state", g.const("halves", [1, 1])], ["h0", "c0"], axis=0)
    g.nodes.append(split)
    weights, recurrence, bias = w.lstm
    g.nodes.append(
        helper.make_node(
            "LSTM",
            [
                step,
                g.const("lstm_w", weights),
                g.const("lstm_r", recurrence),
                g.const("lstm_b", bias),
                "",
                "h0",
                "c0",
            ],
            ["lstm_y", "h1", "c1"],
            hidden_size=128,
        )
    )
    g.op("Concat", ["h1", "c1"], "stateN", axis=0)
    hidden = g.op(
        "Reshape", [g.op("Relu", ["h1"], "dec_relu"), g.const("dec_shape", [1, 128])], "dec_in"
    )
    dec_w, dec_b = w.decoder
    logit = g.op(
        "Add",
        [
            g.op("MatMul", [hidden, g.const("dec_w", dec_w[:, :, 0].T)], "dec_mm"),
            g.const("dec_b", dec_b),
        ],
        "dec_logit",
    )
    g.op("Sigmoid", [logit], "output")
    f32 = TensorProto.FLOAT
    graph = helper.make_graph(
        g.nodes,
        "silero_vad_fused",
        [
            helper.make_tensor_value_info("input", f32, [1, _INPUT_SAMPLES]),
            helper.make_tensor_value_info("state", f32, [2, 1, 128]),
        ],
        [
            helper.make_tensor_value_info("output", f32, [1, 1]),
            helper.make_tensor_value_info("stateN", f32, [2, 1, 128]),
        ],
        g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what onnxruntime 1.x and onnx's checker both accept for opset 17
    return model


def _check_same(source: Path, target: Path) -> float:
    """The largest difference of the two files' probabilities, each run by
    :class:`VoiceActivityDetector` over 60 chunks of a fixed signal (tones, noise bursts
    and silence); ModelBuildError above 1e-4."""
    rng = np.random.default_rng(0)
    t = np.arange(60 * VAD_CHUNK_SAMPLES) / VAD_SAMPLE_RATE_HZ
    signal = 0.3 * np.sin(2 * np.pi * 220.0 * t) * (np.sin(2 * np.pi * 1.5 * t) > 0)
    signal += 0.05 * rng.standard_normal(t.size) * (np.sin(2 * np.pi * 0.7 * t) > 0.3)
    # A manager of its own: the staged file must not stay loaded in the process's.
    sessions = SessionManager()
    source_p, target_p = (
        VoiceActivityDetector(model_path=path, sessions=sessions)
        .detect(signal.astype(np.float32), VAD_SAMPLE_RATE_HZ)
        .probabilities
        for path in (source, target)
    )
    worst = float(np.abs(source_p - target_p).max())
    if worst > _TOLERANCE:
        raise ModelBuildError(
            f"the rewritten silero VAD differs from {source.name} by {worst:.2e} "
            f"(expected at most {_TOLERANCE:g})"
        )
    return worst


def fuse_silero_vad(source: Path, target: Path) -> float:
    """Write silero VAD's 16 kHz graph (``source``) to ``target`` as matrix products.

    Returns the largest probability difference that the check found. Raises
    :class:`ModelBuildError` when ``source`` is not that graph or the rewrite disagrees
    with it. Needs ``onnx`` (the ``models`` extra).
    """
    try:
        import onnx
    except ImportError:
        raise MissingDependencyError("onnx", "models") from None
    with tempfile.TemporaryDirectory(prefix="vad-fuse-") as tmp:
        folded = _folded(source, Path(tmp))
        model = _rewrite(_Weights(folded, source))
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
    try:
        worst = _check_same(source, target)
    except ModelBuildError:
        target.unlink(missing_ok=True)  # a wrong file must not be mistaken for a built one
        raise
    return worst
