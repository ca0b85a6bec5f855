"""Letterbox against OpenCV's blobFromImageWithParams, coordinate mapping, crops, blur."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from glasses_sdk._exceptions import InvalidConfigError, InvalidFrameError, InvalidInputError
from glasses_sdk.preprocess.image import (
    Letterboxer,
    LetterboxInfo,
    LetterboxOptions,
    blur_regions,
    crop_quad,
    crop_quads,
    letterbox,
    letterbox_batch,
)

TOLERANCE = 1 / 255  # the bound per element, on the 0..1 scale


def _load(path: Path) -> NDArray[np.uint8]:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # grey photos become 3-channel BGR
    assert image is not None, path
    return np.asarray(image, dtype=np.uint8)


def _resized(image: NDArray[np.uint8], width: int, height: int) -> NDArray[np.uint8]:
    return np.asarray(
        cv2.resize(image, (width, height), interpolation=cv2.INTER_CUBIC), dtype=np.uint8
    )


def _blob(
    frame: NDArray[np.uint8],
    size: tuple[int, int],
    *,
    swap_rb: bool,
    pad: tuple[int, int, int] = (0, 0, 0),
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0),
    scale: tuple[float, float, float] = (1 / 255, 1 / 255, 1 / 255),
) -> NDArray[np.float32]:
    params: Any = cv2.dnn.Image2BlobParams()
    params.scalefactor = (*scale, 1.0)
    params.size = size
    params.mean = (*mean, 0.0)
    params.swapRB = swap_rb
    params.ddepth = cv2.CV_32F
    params.paddingmode = cv2.dnn.DNN_PMODE_LETTERBOX
    params.borderValue = (*pad, 0)
    return np.asarray(cv2.dnn.blobFromImageWithParams(frame, params), dtype=np.float32)


@pytest.fixture(scope="module")
def photos(real_photo_paths: list[Path]) -> list[NDArray[np.uint8]]:
    return [_load(p) for p in real_photo_paths]


# --- letterbox against OpenCV ------------------------------------------------------


@pytest.mark.parametrize("frame_size", [None, (1920, 1080), (1280, 720), (640, 480), (1080, 1920)])
@pytest.mark.parametrize("target", [(640, 640), (320, 256), (256, 320), (128, 128)])
@pytest.mark.parametrize("swap_rb", [True, False])
def test_letterbox_matches_opencv_on_real_photos(
    photos: list[NDArray[np.uint8]],
    frame_size: tuple[int, int] | None,
    target: tuple[int, int],
    swap_rb: bool,
) -> None:
    for photo in photos:
        frame = photo if frame_size is None else _resized(photo, *frame_size)
        expected = _blob(frame, target, swap_rb=swap_rb, pad=(114, 60, 200))
        ours, info = letterbox(
            frame, target, pad_value=(114, 60, 200), channel_order="rgb" if swap_rb else "bgr"
        )
        assert ours.shape == expected.shape == (1, 3, target[1], target[0])
        assert ours.dtype == np.float32
        np.testing.assert_allclose(ours, expected, rtol=0, atol=TOLERANCE)
        assert info.target_size == target
        assert info.source_size == (frame.shape[1], frame.shape[0])


def test_letterbox_is_bit_identical_to_opencv_with_default_normalization(
    photos: list[NDArray[np.uint8]],
) -> None:
    for photo in photos:
        frame = _resized(photo, 1000, 700)
        ours, _ = letterbox(frame, 640)
        np.testing.assert_array_equal(ours, _blob(frame, (640, 640), swap_rb=True))


@pytest.mark.parametrize("swap_rb", [True, False])
def test_letterbox_mean_and_std_match_opencv_per_channel(
    photos: list[NDArray[np.uint8]], swap_rb: bool
) -> None:
    mean = (123.675, 116.28, 103.53)
    std = (0.229, 0.224, 0.225)
    for photo in photos:
        frame = _resized(photo, 1280, 720)
        # OpenCV has no std: its per-channel scalefactor carries 1 / (255 * std).
        expected = _blob(
            frame,
            (320, 320),
            swap_rb=swap_rb,
            pad=(10, 20, 30),
            mean=mean,
            scale=(1 / (255 * std[0]), 1 / (255 * std[1]), 1 / (255 * std[2])),
        )
        ours, _ = letterbox(
            frame,
            320,
            pad_value=(10, 20, 30),
            mean=mean,
            std=std,
            channel_order="rgb" if swap_rb else "bgr",
        )
        # The same 1/255 bound, on the scale of the normalized values.
        np.testing.assert_allclose(ours, expected, rtol=0, atol=TOLERANCE / min(std))
        assert np.abs(ours - expected).max() < 1e-4


@pytest.mark.parametrize("factor", [3, 5, 7])
def test_odd_integer_shrink_is_bit_identical_to_opencv(
    photos: list[NDArray[np.uint8]], factor: int
) -> None:
    # 1920×1080 → 640×360 takes the INTER_NEAREST_EXACT shortcut; it must not change a bit.
    rng = np.random.default_rng(factor)
    noise = rng.integers(0, 256, size=(90 * factor, 160 * factor, 3), dtype=np.uint8)
    for frame in [noise, _resized(photos[0], 160 * factor, 90 * factor)]:
        ours, info = letterbox(frame, 160)
        assert info.resized_size == (160, 90)
        np.testing.assert_array_equal(ours, _blob(frame, (160, 160), swap_rb=True))


def test_letterbox_padding_is_centered_like_opencv() -> None:
    frame = np.full((333, 1001, 3), 200, dtype=np.uint8)
    _, info = letterbox(frame, 640)
    # OpenCV: factor 640/1001 in float32, height int(333·f) = 212, top (640-212)//2 = 214.
    assert (info.resized_size, info.pad_x, info.pad_y) == ((640, 212), 0, 214)
    _, info = letterbox(np.zeros((1001, 333, 3), np.uint8), (320, 256))
    assert (info.resized_size, info.pad_x, info.pad_y) == ((85, 256), 117, 0)


def test_pad_strips_are_rewritten_on_every_call(real_photo: NDArray[np.uint8]) -> None:
    frame = _resized(real_photo, 1920, 1080)
    boxer = Letterboxer(LetterboxOptions(640, pad_value=114))
    out = np.full(boxer.input_shape, np.nan, dtype=np.float32)
    boxer.run(frame, out)
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out, _blob(frame, (640, 640), swap_rb=True, pad=(114,) * 3))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    width=st.integers(1, 2000),
    height=st.integers(1, 2000),
    target_w=st.integers(1, 700),
    target_h=st.integers(1, 700),
    seed=st.integers(0, 2**32 - 1),
)
def test_letterbox_matches_opencv_on_any_size(
    width: int, height: int, target_w: int, target_h: int, seed: int
) -> None:
    frame = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    ours, info = letterbox(frame, (target_w, target_h), pad_value=7)
    assert ours.shape == (1, 3, target_h, target_w)
    assert ours.dtype == np.float32 and ours.flags.c_contiguous
    rw, rh = info.resized_size
    assert 1 <= rw <= target_w and 1 <= rh <= target_h
    assert 0 <= info.pad_x <= target_w - rw and 0 <= info.pad_y <= target_h - rh
    try:
        expected = _blob(frame, (target_w, target_h), swap_rb=True, pad=(7, 7, 7))
    except cv2.error:
        # OpenCV asserts when a side shrinks to 0 pixels; we keep 1 pixel there.
        assert min(rw, rh) == 1
        return
    np.testing.assert_allclose(ours, expected, rtol=0, atol=TOLERANCE)


# --- coordinate mapping -------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    width=st.integers(1, 2000),
    height=st.integers(1, 2000),
    target_w=st.integers(1, 1024),
    target_h=st.integers(1, 1024),
    boxes=st.lists(st.tuples(*[st.floats(0, 1, allow_nan=False)] * 4), min_size=0, max_size=8),
)
def test_boxes_and_points_round_trip(
    width: int,
    height: int,
    target_w: int,
    target_h: int,
    boxes: list[tuple[float, float, float, float]],
) -> None:
    info = Letterboxer(LetterboxOptions((target_w, target_h))).info((width, height))
    frame_boxes = np.array(boxes, dtype=np.float64).reshape(-1, 4) * [width, height, width, height]
    back = info.boxes_to_frame(info.boxes_to_model(frame_boxes))
    assert back.shape == frame_boxes.shape
    np.testing.assert_allclose(back, frame_boxes, atol=1.0)
    points = frame_boxes.reshape(-1, 2)
    np.testing.assert_allclose(info.points_to_frame(info.points_to_model(points)), points, atol=1.0)
    model = info.boxes_to_model(frame_boxes)
    assert (model[:, 0::2] >= info.pad_x - 1e-9).all()
    assert (model[:, 0::2] <= info.pad_x + info.resized_size[0] + 1e-9).all()


def test_box_found_in_model_input_maps_back_to_the_frame() -> None:
    frame = np.zeros((1080, 1920, 3), dtype=np.uint8)
    frame[300:501, 600:901] = 255  # the box [600, 300, 901, 501] in pixel-edge coordinates
    tensor, info = letterbox(frame, 640)
    ys, xs = np.nonzero(tensor[0, 0] > 0.5)
    found = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=np.float64)
    back = info.boxes_to_frame(found)
    # One model pixel is three frame pixels here.
    np.testing.assert_allclose(back, [[600, 300, 901, 501]], atol=3.0)
    np.testing.assert_allclose(info.boxes_to_model([[600, 300, 901, 501]]), found, atol=1.0)


def test_points_in_the_padding_clip_to_the_frame() -> None:
    _, info = letterbox(np.zeros((1080, 1920, 3), np.uint8), 640)
    assert info.pad_y == 140
    clipped = info.points_to_frame([[0, 0], [639, 639]], clip=True)
    np.testing.assert_allclose(clipped, [[0, 0], [1917, 1080]])
    boxes = info.boxes_to_frame([[-10, 0, 700, 700]], clip=True)
    np.testing.assert_allclose(boxes, [[0, 0, 1920, 1080]])


def test_mapping_rejects_wrong_shapes() -> None:
    info = LetterboxInfo(1.0, 0, 0, (10, 10), (10, 10), (10, 10))
    with pytest.raises(InvalidInputError, match=r"expected shape \(\.\.\., 4\).*\(3,\)"):
        info.boxes_to_frame([1, 2, 3])
    with pytest.raises(InvalidInputError, match=r"expected shape \(\.\.\., 2\)"):
        info.points_to_model([[1, 2, 3]])
    with pytest.raises(InvalidInputError, match="expected numbers"):
        info.points_to_model([["a", "b"]])


# --- batch and buffers ------------------------------------------------------------


def test_batch_equals_per_frame(photos: list[NDArray[np.uint8]]) -> None:
    frames = [photos[0], _resized(photos[2], 1920, 1080), _resized(photos[3], 480, 640)]
    batch, infos = letterbox_batch(frames, (320, 256), pad_value=114, mean=3.0)
    assert batch.shape == (3, 3, 256, 320)
    for i, frame in enumerate(frames):
        single, info = letterbox(frame, (320, 256), pad_value=114, mean=3.0)
        np.testing.assert_array_equal(batch[i], single[0])
        assert infos[i] == info


def test_out_buffer_is_filled_in_place_without_allocating(real_photo: NDArray[np.uint8]) -> None:
    frame = _resized(real_photo, 1920, 1080)
    boxer = Letterboxer(LetterboxOptions(640, mean=(1.0, 2.0, 3.0)))
    out = np.empty(boxer.input_shape, dtype=np.float32)
    batch_out = np.empty((2, 3, 640, 640), dtype=np.float32)
    boxer.run(frame, out)  # first call allocates the scratch buffers
    boxer.run_batch([frame, frame], batch_out)
    tracemalloc.start()
    try:
        for _ in range(5):
            result, _ = boxer.run(frame, out)
            assert result is out
            batch, _ = boxer.run_batch([frame, frame], batch_out)
            assert batch is batch_out
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # An output is 4.9 MB and the resized frame 0.7 MB; the hot path allocates neither.
    assert peak < 64 * 1024


def test_internal_output_is_reused(real_photo: NDArray[np.uint8]) -> None:
    boxer = Letterboxer(LetterboxOptions((256, 128)))
    first, _ = boxer.run(real_photo)
    second, _ = boxer.run(real_photo[::2])
    assert first is second
    assert boxer.run_batch([real_photo] * 2)[0] is boxer.run_batch([real_photo] * 2)[0]


def test_portrait_frame_padding_in_columns_is_written_in_place(
    real_photo: NDArray[np.uint8],
) -> None:
    frame = _resized(real_photo, 1080, 1920)
    out = np.full((1, 3, 640, 640), np.nan, dtype=np.float32)
    result, info = letterbox(frame, 640, out=out, mean=5.0)
    assert result is out and info.pad_x == 140 and info.pad_y == 0
    expected = _blob(frame, (640, 640), swap_rb=True, mean=(5.0, 5.0, 5.0))
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)


def test_non_contiguous_frame_is_accepted(real_photo: NDArray[np.uint8]) -> None:
    view = real_photo[::2, ::3]
    ours, _ = letterbox(view, 200)
    np.testing.assert_array_equal(ours, _blob(np.ascontiguousarray(view), (200, 200), swap_rb=True))


# --- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "pattern"),
    [
        (np.zeros((10, 10, 3), np.float32), r"expected dtype uint8.*received dtype float32"),
        (np.zeros((10, 10), np.uint8), r"expected shape \(H, W, 3\).*received shape \(10, 10\)"),
        (np.zeros((10, 10, 4), np.uint8), r"3 BGR channels.*\(10, 10, 4\)"),
        (np.zeros((0, 10, 3), np.uint8), r"non-empty.*\(0, 10, 3\)"),
        ([[1, 2, 3]], r"numpy uint8 array.*received list"),
    ],
)
def test_bad_frames_raise_invalid_frame_error(frame: object, pattern: str) -> None:
    with pytest.raises(InvalidFrameError, match=pattern):
        letterbox(frame, 64)  # type: ignore[arg-type]
    with pytest.raises(InvalidFrameError, match=pattern):
        blur_regions(frame, [[0, 0, 1, 1]])  # type: ignore[arg-type]
    with pytest.raises(InvalidFrameError, match=pattern):
        crop_quad(frame, [[0, 0], [1, 0], [1, 1], [0, 1]])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("out", "pattern"),
    [
        (np.zeros((1, 3, 64, 64), np.float64), r"expected dtype float32.*float64"),
        (
            np.zeros((1, 3, 64, 65), np.float32),
            r"expected shape \(1, 3, 64, 64\).*\(1, 3, 64, 65\)",
        ),
        (np.zeros((1, 3, 64, 128), np.float32)[..., ::2], r"C-contiguous"),
        (np.zeros((3, 64, 64), np.float32), r"expected shape \(1, 3, 64, 64\)"),
        ("buffer", r"float32 C-contiguous.*received str"),
    ],
)
def test_bad_out_buffers_raise(out: object, pattern: str) -> None:
    with pytest.raises(InvalidFrameError, match=pattern):
        letterbox(np.zeros((8, 8, 3), np.uint8), 64, out=out)  # type: ignore[arg-type]


def test_read_only_out_and_batch_errors() -> None:
    out = np.zeros((1, 3, 64, 64), np.float32)
    out.flags.writeable = False
    with pytest.raises(InvalidFrameError, match="writeable"):
        letterbox(np.zeros((8, 8, 3), np.uint8), 64, out=out)
    with pytest.raises(InvalidFrameError, match="at least one frame"):
        letterbox_batch([], 64)
    with pytest.raises(InvalidFrameError, match=r"frames\[1\].*dtype uint8"):
        letterbox_batch([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.int16)], 64)
    with pytest.raises(InvalidFrameError, match=r"expected shape \(2, 3, 64, 64\)"):
        letterbox_batch(
            [np.zeros((8, 8, 3), np.uint8)] * 2, 64, out=np.zeros((1, 3, 64, 64), np.float32)
        )


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"size": 0}, r"size: expected width and height in 1\.\.16384, received 0×0"),
        ({"size": (640, -1)}, r"received 640×-1"),
        ({"size": (640, 480, 3)}, r"\(width, height\) pair of ints, received \(640, 480, 3\)"),
        ({"size": 64.0}, r"received 64\.0"),
        ({"size": True}, r"received True"),
        ({"size": 64, "pad_value": 256}, r"pad_value: expected .* 0\.\.255.*received 256"),
        ({"size": 64, "pad_value": (1, 2)}, r"pad_value.*received \(1, 2\)"),
        ({"size": 64, "channel_order": "RGB"}, r"channel_order: expected 'rgb' or 'bgr'"),
        ({"size": 64, "scale": 0.0}, r"scale: expected a finite non-zero number, received 0\.0"),
        ({"size": 64, "scale": float("nan")}, r"scale: .*nan"),
        ({"size": 64, "std": (1.0, 0.0, 1.0)}, r"std: expected finite non-zero"),
        ({"size": 64, "mean": (1.0, 2.0)}, r"mean: expected one number or three.*received 2"),
        ({"size": 64, "mean": float("inf")}, r"mean: expected finite numbers"),
    ],
)
def test_bad_options_raise_invalid_config_error(kwargs: dict[str, Any], pattern: str) -> None:
    with pytest.raises(InvalidConfigError, match=pattern):
        LetterboxOptions(**kwargs)


# --- text-line crops ---------------------------------------------------------------


def _text_line() -> NDArray[np.uint8]:
    """A black-on-white text line rendered by OpenCV, tightly framed, 3-channel."""
    image = np.full((80, 520, 3), 255, dtype=np.uint8)
    cv2.putText(image, "GLASSES 2026", (10, 62), cv2.FONT_HERSHEY_SIMPLEX, 2.0, (0, 0, 0), 4)
    return image


def _correlation(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> float:
    ga = cv2.cvtColor(a, cv2.COLOR_BGR2GRAY).astype(np.float64).ravel()
    gb = cv2.cvtColor(b, cv2.COLOR_BGR2GRAY).astype(np.float64).ravel()
    return float(np.corrcoef(ga, gb)[0, 1])


@pytest.mark.parametrize("angle_deg", [-35.0, -10.0, 0.0, 20.0, 60.0])
def test_rotated_text_line_comes_back_upright(angle_deg: float) -> None:
    line = _text_line()
    h, w = line.shape[:2]
    canvas = np.full((900, 900, 3), 255, dtype=np.uint8)
    x0, y0 = 190, 410
    canvas[y0 : y0 + h, x0 : x0 + w] = line
    matrix = cv2.getRotationMatrix2D((450.0, 450.0), angle_deg, 1.0)
    rotated = np.asarray(
        cv2.warpAffine(canvas, matrix, (900, 900), borderValue=(255, 255, 255)), dtype=np.uint8
    )
    corners = np.array([[x0, y0], [x0 + w, y0], [x0 + w, y0 + h], [x0, y0 + h]], np.float64)
    quad = corners @ matrix[:, :2].T + matrix[:, 2]
    crop = crop_quad(rotated, quad)
    assert crop.dtype == np.uint8
    assert abs(crop.shape[1] - w) <= 1 and abs(crop.shape[0] - h) <= 1
    reference = _resized(line, crop.shape[1], crop.shape[0])
    assert _correlation(crop, reference) > 0.9
    # Upside down it would not match: the check is about orientation, not only content.
    assert _correlation(crop, reference[::-1, ::-1]) < 0.5


def test_vertical_text_is_rotated_like_pp_ocr() -> None:
    line = _text_line()
    vertical = np.ascontiguousarray(np.rot90(line, k=-1))  # reads top to bottom
    h, w = vertical.shape[:2]
    canvas = np.full((700, 300, 3), 255, dtype=np.uint8)
    canvas[50 : 50 + h, 100 : 100 + w] = vertical
    quad = [[100, 50], [100 + w, 50], [100 + w, 50 + h], [100, 50 + h]]
    crop = crop_quad(canvas, quad)
    assert crop.shape == line.shape
    assert _correlation(crop, line) > 0.95
    crops = crop_quads(canvas, [quad, quad])
    assert len(crops) == 2 and crops[0].shape == line.shape
    assert crop_quads(canvas, np.empty((0, 4, 2))) == []


def test_bad_quads_raise() -> None:
    frame = np.zeros((50, 50, 3), np.uint8)
    with pytest.raises(InvalidInputError, match=r"4 points.*shape \(3, 2\)"):
        crop_quad(frame, [[0, 0], [1, 0], [1, 1]])
    with pytest.raises(InvalidInputError, match="finite"):
        crop_quad(frame, np.array([[0, 0], [np.nan, 0], [1, 1], [0, 1]]))
    with pytest.raises(InvalidInputError, match="at least 1 pixel"):
        crop_quad(frame, [[5, 5], [5, 5], [5, 5], [5, 5]])
    with pytest.raises(InvalidInputError, match=r"\(K, 4, 2\)"):
        crop_quads(frame, np.zeros((2, 3, 2)))


# --- region blur --------------------------------------------------------------------


def _detail(region: NDArray[np.uint8]) -> float:
    """Fine detail: variance of the Laplacian (edges of eyes, mouth, hair)."""
    grey = cv2.cvtColor(np.ascontiguousarray(region), cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


@pytest.mark.parametrize("style", ["pixelate", "smooth"])
def test_blur_destroys_the_region_and_leaves_the_rest(
    real_photo: NDArray[np.uint8], style: str
) -> None:
    original = real_photo.copy()
    frame = real_photo.copy()
    box = [160, 40, 300, 200]  # the astronaut's face
    assert blur_regions(frame, [box], style=style) == 1  # type: ignore[arg-type]
    region, before = frame[40:200, 160:300], original[40:200, 160:300]
    if style == "pixelate":
        # At most 8 blocks along the longer side: no detail finer than a block survives.
        assert len(np.unique(region.reshape(-1, 3), axis=0)) <= 8 * 8
    else:
        assert _detail(region) < 0.05 * _detail(before)
    assert np.abs(region.astype(np.int16) - before).mean() > 8
    outside = np.ones(frame.shape[:2], bool)
    outside[40:200, 160:300] = False
    np.testing.assert_array_equal(frame[outside], original[outside])


def test_blur_margin_and_clipping(real_photo: NDArray[np.uint8]) -> None:
    frame = real_photo.copy()
    w = frame.shape[1]
    # 20% margin of a 100-pixel box adds 20 pixels on each side.
    blur_regions(frame, np.array([[200.0, 200.0, 300.0, 300.0]]), margin_fraction=0.2)
    changed = np.nonzero((frame != real_photo).any(axis=2))
    assert changed[0].min() >= 180 and changed[0].max() < 320
    assert changed[1].min() >= 180 and changed[1].max() < 320
    assert changed[0].min() <= 185 and changed[1].max() >= 315
    # Partly outside: clipped; fully outside or empty: ignored.
    frame = real_photo.copy()
    count = blur_regions(frame, [[-50, -50, 40, 40], [w + 10, 0, w + 50, 50], [10, 10, 10, 30]])
    assert count == 1
    assert not np.array_equal(frame[:40, :40], real_photo[:40, :40])
    np.testing.assert_array_equal(frame[40:, :], real_photo[40:, :])
    assert blur_regions(frame, []) == 0
    assert blur_regions(frame, np.empty((0, 4))) == 0


def test_blur_rejects_bad_input() -> None:
    frame = np.zeros((20, 20, 3), np.uint8)
    with pytest.raises(InvalidInputError, match=r"x1 >= x0"):
        blur_regions(frame, [[10, 0, 5, 5]])
    with pytest.raises(InvalidInputError, match="finite"):
        blur_regions(frame, [[0, 0, np.inf, 5]])
    with pytest.raises(InvalidInputError, match=r"shape \(\.\.\., 4\)"):
        blur_regions(frame, [[0, 0, 5]])
    with pytest.raises(InvalidConfigError, match="margin_fraction"):
        blur_regions(frame, [[0, 0, 5, 5]], margin_fraction=-0.1)
    with pytest.raises(InvalidConfigError, match="cells"):
        blur_regions(frame, [[0, 0, 5, 5]], cells=0)
    with pytest.raises(InvalidConfigError, match="style"):
        blur_regions(frame, [[0, 0, 5, 5]], style="gauss")  # type: ignore[arg-type]
    frame.flags.writeable = False
    with pytest.raises(InvalidFrameError, match="writeable"):
        blur_regions(frame, [[0, 0, 5, 5]])
