"""The conversion shared by every audio source: chunking, resampling, gaps."""

from __future__ import annotations

import numpy as np

from glasses_sdk.capture._audio import _Converter
from glasses_sdk.preprocess.audio import resample


def test_chunks_of_any_feeding_equal_the_whole_clip() -> None:
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(44_100)).astype(np.float32)
    conv = _Converter(44_100, 16_000, 1, "float32", 32.0)
    out, indices = [], []
    for start in range(0, x.size, 441):  # 10 ms callbacks
        conv.push(x[start : start + 441].reshape(-1, 1))
        while (taken := conv.take()) is not None:
            out.append(taken[0])
            indices.append(taken[1])
    conv.flush()
    while (taken := conv.take(final=True)) is not None:
        out.append(taken[0])
        indices.append(taken[1])
    np.testing.assert_allclose(np.concatenate(out), resample(x, 44_100, 16_000), atol=1e-6)
    assert indices == [512 * i for i in range(len(out))]


def test_a_gap_pads_the_partial_chunk_with_silence_and_keeps_the_timeline() -> None:
    conv = _Converter(16_000, 16_000, 2, "int16", 20.0)  # 320-sample chunks
    stereo = np.full((500, 2), 0.5, dtype=np.float32)
    conv.push(stereo)  # one chunk and 180 samples
    conv.restart_at(16_000)  # the next input sample is number 16000 (1 s later)
    conv.push(stereo[:320])
    chunks = [conv.take() for _ in range(3)]
    assert all(c is not None for c in chunks)
    samples = [c[0] for c in chunks if c is not None]
    assert [c[1] for c in chunks if c is not None] == [0, 320, 16_000]
    assert samples[0].dtype == np.int16 and np.all(samples[0] == 16384)
    assert np.all(samples[1][:180] == 16384) and np.all(samples[1][180:] == 0)
    assert conv.take() is None and conv.ready == 0
