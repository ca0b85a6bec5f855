"""Image preprocessing: letterbox to NCHW float tensors, text-line crops, region blur.

Pure functions and small classes with preallocated buffers; no I/O. Frames are BGR
``uint8`` arrays of shape ``(H, W, 3)``, as OpenCV and the capture layer produce them.

Letterbox semantics follow ``cv2.dnn.blobFromImageWithParams`` with
``paddingmode=DNN_PMODE_LETTERBOX`` exactly: the same resize factor (computed in float32),
the same resized size and padding placement, the same ``INTER_LINEAR`` resize, and the
same normalization ``(x - mean) * scale`` per channel, to which we add an optional
per-channel ``std``::

    out[c] = (pixel - mean[c]) * scale / std[c]

``mean`` and ``std`` are given in the *output* channel order (as OpenCV's ``mean``), in
pixel units for ``mean``: ImageNet normalization is ``scale=1/255``,
``mean=(123.675, 116.28, 103.53)``, ``std=(0.229, 0.224, 0.225)``; BlazeFace's
``x / 127.5 - 1`` is ``scale=1/127.5, mean=127.5``.

How the hot path is built. Times are from ``benchmarks/bench_image.py`` (interleaved,
one OpenCV thread, a shared 2-core x86 machine whose absolute times drift ±40% between
runs). ``blobFromImageWithParams`` into a preallocated blob: 1.5–2.5 ms for 1920×1080 →
640×640, 1.1–1.8 ms for 1280×720, 1.1–1.4 ms for 640×480; ours: 0.9–1.1, 0.75–1.1 and
0.46–0.54 ms; the memory floor (``np.copyto`` of one output, cold cache) 0.5 ms.

- Resize with ``cv2.resize`` into a preallocated ``uint8`` buffer, ``INTER_LINEAR`` as
  OpenCV's letterbox does, or the bit-identical ``INTER_NEAREST_EXACT`` when a side
  shrinks by an odd integer factor (1080p → 360p: 0.27 ms against 0.56 ms; see
  :func:`_interpolation`).
- ``cv2.split`` into three preallocated ``uint8`` planes (0.03 ms warm, 0.13 ms cold
  for 640×480): every later pass then reads and writes contiguous rows.
- Convert ``uint8 → float32`` with the normalization in one pass, written straight
  into each NCHW plane of the output (the region inside the padding is a strided view
  that OpenCV and NumPy write in place). Whole-pipeline times for 640×480 → 640×640:
  ``np.multiply(plane, float32 scale, out=view)`` 0.38 ms, ``cv2.addWeighted(...,
  dtype=CV_32F)`` (``x·a + b``) 0.48 ms, ``cv2.LUT`` with a 256-entry float32 table
  0.80 ms (a scalar gather loop), ``np.take(table, plane, out=view)`` slower still
  (1.0 ms warm for 1080p), and a 3-channel LUT to HWC float then ``cv2.split`` 0.9 ms
  (one more pass over a float image). So: ``np.multiply`` when every mean is 0 (the
  common ``1/255`` case; ``std`` is folded into the per-channel factor), else
  ``cv2.addWeighted``. Either is within a float32 rounding of OpenCV's
  subtract-then-multiply (bit-identical for ``mean=0, std=1``).
- The pad strips are filled on every call (``ndarray.fill``, 0.05–0.1 ms), because the
  output buffer may have been written by a caller or by a frame of another size.

What is left is mostly memory traffic: reading the frame once and writing the 4.9 MB
output once. Trying to do better by strip-mining the conversion (cast then multiply in
L2-sized strips) or a larger NumPy buffer size measured the same within noise.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray

from glasses_sdk._exceptions import InvalidConfigError, InvalidFrameError, InvalidInputError

__all__ = [
    "BlurStyle",
    "ChannelOrder",
    "LetterboxInfo",
    "LetterboxOptions",
    "Letterboxer",
    "blur_regions",
    "crop_quad",
    "crop_quads",
    "letterbox",
    "letterbox_batch",
]

ChannelOrder = Literal["rgb", "bgr"]
"""Channel order of the model input: ``"rgb"`` swaps the frame's BGR (OpenCV's swapRB)."""
BlurStyle = Literal["pixelate", "smooth"]
"""How :func:`blur_regions` scales the averaged blocks back up: visible blocks, or a blur."""

# Larger model inputs than this are a configuration mistake, not a real model.
_MAX_SIDE = 16384
# Distinct resized sizes whose scratch buffers a Letterboxer keeps; a camera delivers one
# size, a batch of mixed photos a few.
_MAX_SCRATCH = 8
# Resized frames up to this many pixels take the fused path (one NumPy call for the three
# channels): 128×72 in 41 µs against 55 µs split + addWeighted; at 640×360 the split path
# wins (1.02 against 1.21 ms), its contiguous planes being kinder to the caches.
_FUSED_MAX_PIXELS = 160 * 160


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"array of dtype {value.dtype} and shape {value.shape}"
    return f"{type(value).__name__}"


def _check_frame(frame: object, name: str = "frame") -> NDArray[np.uint8]:
    """The frame itself if it is a non-empty BGR uint8 (H, W, 3) array, else raise."""
    if not isinstance(frame, np.ndarray):
        raise InvalidFrameError(
            f"{name}: expected a numpy uint8 array of shape (H, W, 3), received {_describe(frame)}"
        )
    if frame.dtype != np.uint8:
        raise InvalidFrameError(
            f"{name}: expected dtype uint8 (BGR pixels 0..255), received dtype {frame.dtype}"
        )
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise InvalidFrameError(
            f"{name}: expected shape (H, W, 3) with 3 BGR channels, received shape {frame.shape}"
        )
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise InvalidFrameError(f"{name}: expected a non-empty frame, received shape {frame.shape}")
    return frame


def _triple(value: float | Sequence[float], name: str) -> tuple[float, float, float]:
    if isinstance(value, int | float):
        v = float(value)
        return (v, v, v)
    items = tuple(float(v) for v in value)
    if len(items) != 3:
        raise InvalidConfigError(
            f"{name}: expected one number or three (one per channel), received {len(items)}"
        )
    return (items[0], items[1], items[2])


def _normalize_size(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, int | np.integer) and not isinstance(size, bool):
        width = height = int(size)
    elif (
        isinstance(size, tuple | list)
        and len(size) == 2
        and all(isinstance(s, int | np.integer) and not isinstance(s, bool) for s in size)
    ):
        width, height = int(size[0]), int(size[1])
    else:
        raise InvalidConfigError(
            f"size: expected an int (square) or a (width, height) pair of ints, received {size!r}"
        )
    if not (1 <= width <= _MAX_SIDE and 1 <= height <= _MAX_SIDE):
        raise InvalidConfigError(
            f"size: expected width and height in 1..{_MAX_SIDE}, received {width}×{height}"
        )
    return width, height


@dataclass(frozen=True)
class LetterboxOptions:
    """How frames become model input: target size, padding, channel order, normalization.

    ``size`` is an int for a square input or ``(width, height)``. ``pad_value`` is the
    colour of the padding as a pixel of the frame (0..255, one value or three in the
    frame's BGR order, like OpenCV's ``borderValue``); it is normalized like any pixel.
    ``channel_order`` is the output's (``"rgb"`` swaps, like OpenCV's ``swapRB``).
    ``mean`` and ``std`` are per output channel; the output is
    ``(pixel - mean) * scale / std``.
    """

    size: int | tuple[int, int]
    pad_value: int | tuple[int, int, int] = 0
    channel_order: ChannelOrder = "rgb"
    scale: float = 1.0 / 255.0
    mean: float | tuple[float, float, float] = 0.0
    std: float | tuple[float, float, float] = 1.0

    def __post_init__(self) -> None:
        # Validate at construction, so that a wrong combination fails before any frame.
        _normalize_size(self.size)
        if self.channel_order not in ("rgb", "bgr"):
            raise InvalidConfigError(
                f"channel_order: expected 'rgb' or 'bgr', received {self.channel_order!r}"
            )
        pads = (self.pad_value,) * 3 if isinstance(self.pad_value, int) else tuple(self.pad_value)
        if len(pads) != 3 or not all(
            isinstance(p, int | np.integer) and not isinstance(p, bool) and 0 <= p <= 255
            for p in pads
        ):
            raise InvalidConfigError(
                "pad_value: expected an int or three ints in 0..255 (a BGR pixel), "
                f"received {self.pad_value!r}"
            )
        if not (math.isfinite(self.scale) and self.scale != 0.0):
            raise InvalidConfigError(
                f"scale: expected a finite non-zero number, received {self.scale!r}"
            )
        mean = _triple(self.mean, "mean")
        std = _triple(self.std, "std")
        if not all(math.isfinite(m) for m in mean):
            raise InvalidConfigError(f"mean: expected finite numbers, received {self.mean!r}")
        if not all(math.isfinite(s) and s != 0.0 for s in std):
            raise InvalidConfigError(
                f"std: expected finite non-zero numbers, received {self.std!r}"
            )

    @property
    def width(self) -> int:
        """Width of the model input in pixels."""
        return _normalize_size(self.size)[0]

    @property
    def height(self) -> int:
        """Height of the model input in pixels."""
        return _normalize_size(self.size)[1]


@dataclass(frozen=True)
class LetterboxInfo:
    """Where a frame landed inside the model input, to map coordinates both ways.

    ``scale`` is the uniform resize factor as OpenCV computes it (float32);
    ``resized_size`` is the frame's size after the resize and ``pad_x``/``pad_y`` the
    left and top padding, all in model-input pixels. Sizes are ``(width, height)``.
    Mapping uses the exact per-axis ratio ``resized / source`` (which differs from
    ``scale`` by under one pixel over the frame), the geometry ``cv2.resize`` applies.
    """

    scale: float
    pad_x: int
    pad_y: int
    source_size: tuple[int, int]
    target_size: tuple[int, int]
    resized_size: tuple[int, int]

    @property
    def ratio(self) -> tuple[float, float]:
        """The per-axis factors ``(resized / source)`` that frame pixels are scaled by."""
        return (
            self.resized_size[0] / self.source_size[0],
            self.resized_size[1] / self.source_size[1],
        )

    def points_to_frame(self, points: ArrayLike, *, clip: bool = False) -> NDArray[np.float64]:
        """Map ``(..., 2)`` points ``[x, y]`` from model-input pixels to frame pixels.

        With ``clip``, points in the padding are moved to the nearest frame edge.
        """
        p = _coords(points, 2, "points")
        rx, ry = self.ratio
        out = np.empty_like(p)
        out[..., 0] = (p[..., 0] - self.pad_x) / rx
        out[..., 1] = (p[..., 1] - self.pad_y) / ry
        if clip:
            np.clip(out[..., 0], 0, self.source_size[0], out=out[..., 0])
            np.clip(out[..., 1], 0, self.source_size[1], out=out[..., 1])
        return out

    def points_to_model(self, points: ArrayLike) -> NDArray[np.float64]:
        """Map ``(..., 2)`` points ``[x, y]`` from frame pixels to model-input pixels."""
        p = _coords(points, 2, "points")
        rx, ry = self.ratio
        out = np.empty_like(p)
        out[..., 0] = p[..., 0] * rx + self.pad_x
        out[..., 1] = p[..., 1] * ry + self.pad_y
        return out

    def boxes_to_frame(self, boxes: ArrayLike, *, clip: bool = False) -> NDArray[np.float64]:
        """Map ``(..., 4)`` boxes ``[x0, y0, x1, y1]`` from model-input to frame pixels."""
        b = _coords(boxes, 4, "boxes")
        return self.points_to_frame(b.reshape(*b.shape[:-1], 2, 2), clip=clip).reshape(b.shape)

    def boxes_to_model(self, boxes: ArrayLike) -> NDArray[np.float64]:
        """Map ``(..., 4)`` boxes ``[x0, y0, x1, y1]`` from frame to model-input pixels."""
        b = _coords(boxes, 4, "boxes")
        return self.points_to_model(b.reshape(*b.shape[:-1], 2, 2)).reshape(b.shape)


def _coords(values: ArrayLike, last: int, name: str) -> NDArray[np.float64]:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name}: expected numbers, received {values!r:.80}") from exc
    if arr.ndim == 0 or arr.shape[-1] != last:
        raise InvalidInputError(f"{name}: expected shape (..., {last}), received {arr.shape}")
    return arr


@dataclass(frozen=True)
class _Geometry:
    scale: float
    rw: int
    rh: int
    left: int
    top: int
    interpolation: int


def _odd_integer_ratio(src: int, dst: int) -> bool:
    return src % dst == 0 and (src // dst) % 2 == 1


def _interpolation(src_w: int, src_h: int, rw: int, rh: int) -> int:
    """The fastest cv2.resize mode that gives exactly OpenCV's INTER_LINEAR result.

    When a side shrinks by an odd integer k (1920×1080 → 640×360 is k = 3), INTER_LINEAR
    maps output pixel x to source position (x + 0.5)·k − 0.5 = k·x + (k − 1)/2, a whole
    pixel, so its weights are 1 and 0: it only samples. INTER_NEAREST_EXACT samples
    floor((x + 0.5)·k), the same pixel, bit for bit (checked on noise and photos in
    the tests), at half the cost (0.27 ms against 0.56 ms for 1080p → 360p). An even k
    (1280×720 → 640×360) averages two pixels, which INTER_LINEAR already does fast.
    """
    if _odd_integer_ratio(src_w, rw) and _odd_integer_ratio(src_h, rh):
        return cv2.INTER_NEAREST_EXACT
    return cv2.INTER_LINEAR


def _geometry(src_w: int, src_h: int, dst_w: int, dst_h: int) -> _Geometry:
    # OpenCV computes the factor and the resized size in float32 and truncates; doing the
    # same in float64 gives a different size for some frames (e.g. one pixel less).
    f = min(np.float32(dst_w) / np.float32(src_w), np.float32(dst_h) / np.float32(src_h))
    # OpenCV asserts when a side truncates to 0 (a 1×2000 strip into 640×640); we keep
    # one pixel instead, so that any frame maps.
    rw = min(dst_w, max(1, int(np.float32(src_w) * f)))
    rh = min(dst_h, max(1, int(np.float32(src_h) * f)))
    return _Geometry(
        float(f), rw, rh, (dst_w - rw) // 2, (dst_h - rh) // 2, _interpolation(src_w, src_h, rw, rh)
    )


def _check_out(out: object, shape: tuple[int, ...]) -> NDArray[np.float32]:
    if not isinstance(out, np.ndarray):
        raise InvalidFrameError(
            f"out: expected a float32 C-contiguous array of shape {shape}, "
            f"received {_describe(out)}"
        )
    if out.dtype != np.float32:
        raise InvalidFrameError(f"out: expected dtype float32, received dtype {out.dtype}")
    if out.shape != shape:
        raise InvalidFrameError(f"out: expected shape {shape}, received shape {out.shape}")
    if not out.flags.c_contiguous:
        raise InvalidFrameError(
            f"out: expected a C-contiguous array, received one with strides {out.strides}"
        )
    if not out.flags.writeable:
        raise InvalidFrameError("out: expected a writeable array, received a read-only one")
    return out


class Letterboxer:
    """Letterboxes frames into NCHW float32 tensors with reusable buffers.

    The resize buffer, the channel planes and the output are allocated once (per frame
    size) and reused, so that the hot path allocates nothing. Not thread-safe: give each
    thread its own instance. Without ``out``, :meth:`run` returns the same output array
    on every call, overwritten by the next call.
    """

    def __init__(self, options: LetterboxOptions) -> None:
        """Precompute the per-channel factors and pad values for ``options``."""
        self.options = options
        self._width, self._height = _normalize_size(options.size)
        mean = _triple(options.mean, "mean")
        std = _triple(options.std, "std")
        pad_bgr = (
            (options.pad_value,) * 3
            if isinstance(options.pad_value, int)
            else tuple(options.pad_value)
        )
        # Output channel c reads input (BGR) channel _source[c].
        self._source = (2, 1, 0) if options.channel_order == "rgb" else (0, 1, 2)
        # out = (x - mean) * scale / std = x * factor + offset, per output channel.
        factors = [np.float32(options.scale / std[c]) for c in range(3)]
        offsets = [np.float32(-mean[c] * options.scale / std[c]) for c in range(3)]
        self._factors = tuple(factors)
        self._offsets = tuple(float(o) for o in offsets)
        self._multiply_only = all(m == 0.0 for m in mean)
        # The same factors as (3, 1, 1) arrays in output order, for the fused small path.
        self._factors3 = np.array(factors, dtype=np.float32).reshape(3, 1, 1)
        self._offsets3 = np.array(offsets, dtype=np.float32).reshape(3, 1, 1)
        # Pads are computed the way OpenCV does: a frame pixel, then normalized.
        self._pads = tuple(
            float(
                (np.float32(pad_bgr[self._source[c]]) - np.float32(mean[c]))
                * np.float32(options.scale)
                / np.float32(std[c])
            )
            for c in range(3)
        )
        self._scratch: OrderedDict[
            tuple[int, int], tuple[NDArray[np.uint8], list[NDArray[np.uint8]]]
        ] = OrderedDict()
        self._geometries: dict[tuple[int, int], _Geometry] = {}
        self._output: NDArray[np.float32] | None = None
        self._batch_output: NDArray[np.float32] | None = None

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """Shape of one output, ``(1, 3, height, width)``."""
        return (1, 3, self._height, self._width)

    def info(self, frame_size: tuple[int, int]) -> LetterboxInfo:
        """The :class:`LetterboxInfo` a frame of ``(width, height)`` would get."""
        g = self._geometry(int(frame_size[0]), int(frame_size[1]))
        return LetterboxInfo(
            scale=g.scale,
            pad_x=g.left,
            pad_y=g.top,
            source_size=(int(frame_size[0]), int(frame_size[1])),
            target_size=(self._width, self._height),
            resized_size=(g.rw, g.rh),
        )

    def run(
        self, frame: NDArray[np.uint8], out: NDArray[np.float32] | None = None
    ) -> tuple[NDArray[np.float32], LetterboxInfo]:
        """Letterbox one BGR frame into ``out`` (or the internal buffer) ``[1, 3, H, W]``."""
        frame = _check_frame(frame)
        if out is None:
            if self._output is None:
                self._output = np.empty(self.input_shape, dtype=np.float32)
            out = self._output
        else:
            out = _check_out(out, self.input_shape)
        info = self._fill(frame, out[0])
        return out, info

    def run_batch(
        self, frames: Sequence[NDArray[np.uint8]], out: NDArray[np.float32] | None = None
    ) -> tuple[NDArray[np.float32], list[LetterboxInfo]]:
        """Letterbox N frames (sizes may differ) into ``out`` ``[N, 3, H, W]``.

        Without ``out``, an internal buffer is reused while N stays the same.
        """
        n = len(frames)
        if n == 0:
            raise InvalidFrameError("frames: expected at least one frame, received none")
        checked = [_check_frame(f, f"frames[{i}]") for i, f in enumerate(frames)]
        shape = (n, 3, self._height, self._width)
        if out is None:
            if self._batch_output is None or self._batch_output.shape != shape:
                self._batch_output = np.empty(shape, dtype=np.float32)
            out = self._batch_output
        else:
            out = _check_out(out, shape)
        infos = [self._fill(f, out[i]) for i, f in enumerate(checked)]
        return out, infos

    def _geometry(self, src_w: int, src_h: int) -> _Geometry:
        key = (src_w, src_h)
        g = self._geometries.get(key)
        if g is None:
            if len(self._geometries) > 64:
                self._geometries.clear()
            g = self._geometries[key] = _geometry(src_w, src_h, self._width, self._height)
        return g

    def _buffers(self, rw: int, rh: int) -> tuple[NDArray[np.uint8], list[NDArray[np.uint8]]]:
        key = (rw, rh)
        bufs = self._scratch.get(key)
        if bufs is None:
            if len(self._scratch) >= _MAX_SCRATCH:
                self._scratch.popitem(last=False)
            bufs = (
                np.empty((rh, rw, 3), dtype=np.uint8),
                [np.empty((rh, rw), dtype=np.uint8) for _ in range(3)],
            )
            self._scratch[key] = bufs
        else:
            self._scratch.move_to_end(key)
        return bufs

    def _fill(self, frame: NDArray[np.uint8], out3: NDArray[np.float32]) -> LetterboxInfo:
        src_h, src_w = frame.shape[0], frame.shape[1]
        g = self._geometry(src_w, src_h)
        resized_buf, planes = self._buffers(g.rw, g.rh)
        if (g.rw, g.rh) == (src_w, src_h):
            resized = frame  # OpenCV's same-size resize is a copy; skip it.
        else:
            # dst has the exact size and type, so OpenCV writes into it in place.
            cv2.resize(frame, (g.rw, g.rh), dst=resized_buf, interpolation=g.interpolation)
            resized = resized_buf
        if g.rw * g.rh <= _FUSED_MAX_PIXELS:
            self._fill_small(resized, out3, g)
        else:
            self._fill_planes(resized, planes, out3, g)
        return LetterboxInfo(
            scale=g.scale,
            pad_x=g.left,
            pad_y=g.top,
            source_size=(src_w, src_h),
            target_size=(self._width, self._height),
            resized_size=(g.rw, g.rh),
        )

    def _fill_small(
        self, resized: NDArray[np.uint8], out3: NDArray[np.float32], g: _Geometry
    ) -> None:
        # Small inputs (BlazeFace's 128×72): per-call overhead dominates, so the three
        # channels go in one or two NumPy calls through a CHW view of the HWC image.
        src = resized.transpose(2, 0, 1)
        if self._source[0] == 2:
            src = src[::-1]
        region = out3[:, g.top : g.top + g.rh, g.left : g.left + g.rw]
        np.multiply(src, self._factors3, out=region)
        if not self._multiply_only:
            np.add(region, self._offsets3, out=region)
        pads = self._pads
        if pads[0] == pads[1] == pads[2]:
            self._fill_pads(out3, pads[0], g)
        else:
            for c in range(3):
                self._fill_pads(out3[c : c + 1], pads[c], g)

    def _fill_pads(self, planes: NDArray[np.float32], pad: float, g: _Geometry) -> None:
        top, left, bottom, right = g.top, g.left, g.top + g.rh, g.left + g.rw
        if top:
            planes[:, :top].fill(pad)
        if bottom < self._height:
            planes[:, bottom:].fill(pad)
        if left:
            planes[:, top:bottom, :left].fill(pad)
        if right < self._width:
            planes[:, top:bottom, right:].fill(pad)

    def _fill_planes(
        self,
        resized: NDArray[np.uint8],
        planes: list[NDArray[np.uint8]],
        out3: NDArray[np.float32],
        g: _Geometry,
    ) -> None:
        cv2.split(resized, planes)
        top, left, bottom, right = g.top, g.left, g.top + g.rh, g.left + g.rw
        for c in range(3):
            plane = out3[c]
            src = planes[self._source[c]]
            region = plane[top:bottom, left:right]
            if self._multiply_only:
                np.multiply(src, self._factors[c], out=region)
            else:
                # addWeighted writes into the strided view in place (checked in the tests).
                cv2.addWeighted(
                    src,
                    float(self._factors[c]),
                    src,
                    0.0,
                    self._offsets[c],
                    dst=region,
                    dtype=cv2.CV_32F,
                )
            pad = self._pads[c]
            if top:
                plane[:top].fill(pad)
            if bottom < self._height:
                plane[bottom:].fill(pad)
            if left:
                plane[top:bottom, :left].fill(pad)
            if right < self._width:
                plane[top:bottom, right:].fill(pad)


def letterbox(
    frame: NDArray[np.uint8],
    size: int | tuple[int, int],
    *,
    pad_value: int | tuple[int, int, int] = 0,
    channel_order: ChannelOrder = "rgb",
    scale: float = 1.0 / 255.0,
    mean: float | tuple[float, float, float] = 0.0,
    std: float | tuple[float, float, float] = 1.0,
    out: NDArray[np.float32] | None = None,
) -> tuple[NDArray[np.float32], LetterboxInfo]:
    """Letterbox a BGR uint8 frame into a float32 ``[1, 3, H, W]`` tensor.

    Same result as ``cv2.dnn.blobFromImageWithParams`` with ``DNN_PMODE_LETTERBOX``
    (see the module docstring for the normalization). ``out``, when given, must be
    float32, C-contiguous and of shape ``(1, 3, H, W)``; it is filled and returned.
    For a stream of frames, keep a :class:`Letterboxer`, which reuses its buffers.
    """
    options = LetterboxOptions(
        size=size,
        pad_value=pad_value,
        channel_order=channel_order,
        scale=scale,
        mean=mean,
        std=std,
    )
    return Letterboxer(options).run(frame, out)


def letterbox_batch(
    frames: Sequence[NDArray[np.uint8]],
    size: int | tuple[int, int],
    *,
    pad_value: int | tuple[int, int, int] = 0,
    channel_order: ChannelOrder = "rgb",
    scale: float = 1.0 / 255.0,
    mean: float | tuple[float, float, float] = 0.0,
    std: float | tuple[float, float, float] = 1.0,
    out: NDArray[np.float32] | None = None,
) -> tuple[NDArray[np.float32], list[LetterboxInfo]]:
    """Letterbox N BGR frames (sizes may differ) into one float32 ``[N, 3, H, W]`` tensor.

    Each item equals :func:`letterbox` of that frame.
    """
    options = LetterboxOptions(
        size=size,
        pad_value=pad_value,
        channel_order=channel_order,
        scale=scale,
        mean=mean,
        std=std,
    )
    return Letterboxer(options).run_batch(frames, out)


def _check_quad(quad: ArrayLike) -> NDArray[np.float32]:
    q = _coords(quad, 2, "quad")
    if q.shape != (4, 2):
        raise InvalidInputError(
            f"quad: expected 4 points [x, y] (shape (4, 2)), received shape {q.shape}"
        )
    if not np.isfinite(q).all():
        raise InvalidInputError(f"quad: expected finite coordinates, received {q.tolist()}")
    return q.astype(np.float32)


def crop_quad(frame: NDArray[np.uint8], quad: ArrayLike) -> NDArray[np.uint8]:
    """Cut a quadrilateral out of ``frame`` as an upright rectangle (PP-OCR's text crop).

    ``quad`` holds 4 points ``[x, y]`` in frame pixels, clockwise from the top-left of
    the text: top-left, top-right, bottom-right, bottom-left. The crop is as wide as the
    longer of the top and bottom edges and as tall as the longer side edge, warped with
    ``INTER_CUBIC`` and replicated borders; when it is at least 1.5 times taller than
    wide (a vertical line), it is rotated 90° counter-clockwise, as PP-OCR does.
    """
    frame = _check_frame(frame)
    q = _check_quad(quad)
    width = int(max(np.linalg.norm(q[0] - q[1]), np.linalg.norm(q[2] - q[3])))
    height = int(max(np.linalg.norm(q[0] - q[3]), np.linalg.norm(q[1] - q[2])))
    if width < 1 or height < 1:
        raise InvalidInputError(
            f"quad: expected a quadrilateral at least 1 pixel wide and tall, received "
            f"{q.tolist()} ({width}×{height})"
        )
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(q, target)
    crop = cv2.warpPerspective(
        frame,
        matrix,
        (width, height),
        flags=cv2.INTER_CUBIC,
        borderMode=cv2.BORDER_REPLICATE,
    )
    if height / width >= 1.5:
        crop = np.ascontiguousarray(np.rot90(crop))
    return np.asarray(crop, dtype=np.uint8)


def crop_quads(frame: NDArray[np.uint8], quads: ArrayLike) -> list[NDArray[np.uint8]]:
    """:func:`crop_quad` for each of ``(K, 4, 2)`` quadrilaterals."""
    q = np.asarray(quads, dtype=np.float64)
    if q.size == 0:
        return []
    if q.ndim != 3 or q.shape[1:] != (4, 2):
        raise InvalidInputError(f"quads: expected shape (K, 4, 2), received {q.shape}")
    return [crop_quad(frame, one) for one in q]


def blur_regions(
    frame: NDArray[np.uint8],
    boxes: ArrayLike,
    *,
    margin_fraction: float = 0.0,
    cells: int = 8,
    style: BlurStyle = "pixelate",
) -> int:
    """Make rectangular regions of ``frame`` unrecognizable, in place; return how many.

    ``boxes`` holds ``(K, 4)`` boxes ``[x0, y0, x1, y1]`` in frame pixels. Each grows by
    ``margin_fraction`` times its width (height) on each side, is clipped to the frame, and is
    skipped when nothing of it is left inside. The region is averaged down to ``cells``
    blocks along its longer side (``INTER_AREA``), which removes every detail finer
    than a block (eyes, mouth), and then scaled back: ``"pixelate"`` shows the blocks,
    ``"smooth"`` interpolates them into a blur.
    """
    frame = _check_frame(frame)
    if not frame.flags.writeable:
        raise InvalidFrameError("frame: expected a writeable array (blurred in place)")
    if not (isinstance(cells, int) and cells >= 1):
        raise InvalidConfigError(f"cells: expected an int >= 1, received {cells!r}")
    if not (math.isfinite(margin_fraction) and margin_fraction >= 0):
        raise InvalidConfigError(
            f"margin_fraction: expected a finite number >= 0, received {margin_fraction!r}"
        )
    if style not in ("pixelate", "smooth"):
        raise InvalidConfigError(f"style: expected 'pixelate' or 'smooth', received {style!r}")
    b = _coords(boxes, 4, "boxes") if np.size(boxes) else np.empty((0, 4))
    b = b.reshape(-1, 4)
    if not np.isfinite(b).all():
        raise InvalidInputError("boxes: expected finite coordinates, received NaN or infinity")
    if (b[:, 2] < b[:, 0]).any() or (b[:, 3] < b[:, 1]).any():
        raise InvalidInputError(
            "boxes: expected [x0, y0, x1, y1] with x1 >= x0 and y1 >= y0, received "
            f"{b[(b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])].tolist()[:3]}"
        )
    height, width = frame.shape[:2]
    grow = np.stack([b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1) * margin_fraction
    x0 = np.clip(np.floor(b[:, 0] - grow[:, 0]), 0, width).astype(np.int64)
    y0 = np.clip(np.floor(b[:, 1] - grow[:, 1]), 0, height).astype(np.int64)
    x1 = np.clip(np.ceil(b[:, 2] + grow[:, 0]), 0, width).astype(np.int64)
    y1 = np.clip(np.ceil(b[:, 3] + grow[:, 1]), 0, height).astype(np.int64)
    interpolation = cv2.INTER_NEAREST if style == "pixelate" else cv2.INTER_LINEAR
    done = 0
    for i in range(len(b)):
        w, h = int(x1[i] - x0[i]), int(y1[i] - y0[i])
        if w <= 0 or h <= 0:
            continue
        region = frame[y0[i] : y1[i], x0[i] : x1[i]]
        longer = max(w, h)
        small_w = max(1, round(cells * w / longer))
        small_h = max(1, round(cells * h / longer))
        small = cv2.resize(region, (small_w, small_h), interpolation=cv2.INTER_AREA)
        region[...] = cv2.resize(small, (w, h), interpolation=interpolation)
        done += 1
    return done
