"""AudioRingBuffer: preallocated, wraps, overwrites the oldest and counts it."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from glasses_sdk._exceptions import InvalidAudioError, InvalidConfigError
from glasses_sdk.capture._ring import AudioRingBuffer


def test_capacity_is_sized_in_milliseconds_and_reads_wrap() -> None:
    ring = AudioRingBuffer(10.0, 16_000)  # 160 frames
    assert ring.capacity_frames == 160
    x = np.arange(500, dtype=np.float32)
    out = []
    for start in range(0, 500, 70):  # writes that cross the end of the buffer
        ring.write(x[start : start + 70])
        frames, first = ring.read()
        assert first == start
        out.append(frames[:, 0])
    np.testing.assert_array_equal(np.concatenate(out), x)
    assert ring.dropped_frames == 0 and ring.overflows == 0


def test_a_slow_reader_loses_the_oldest_samples_and_the_loss_is_counted() -> None:
    ring = AudioRingBuffer(10.0, 16_000)
    x = np.arange(400, dtype=np.float32)
    for start in range(0, 400, 100):
        ring.write(x[start : start + 100])
    frames, first = ring.read()
    assert first == 240 and frames.shape == (160, 1)
    np.testing.assert_array_equal(frames[:, 0], x[240:])  # the newest 10 ms
    assert ring.dropped_frames == 240
    assert ring.overflows == 3  # every write after the first found too little room


def test_a_block_larger_than_the_buffer_keeps_its_newest_frames() -> None:
    ring = AudioRingBuffer(1.0, 16_000, channels=2, dtype=np.int16)  # 16 frames
    block = np.arange(40 * 2, dtype=np.int16).reshape(40, 2)
    ring.write(block)
    frames, first = ring.read(max_frames=100)
    assert first == 24 and frames.dtype == np.int16
    np.testing.assert_array_equal(frames, block[24:])
    assert ring.dropped_frames == 24


def test_concurrent_writer_and_reader_keep_every_frame_in_order() -> None:
    ring = AudioRingBuffer(5000.0, 16_000)  # room for all: the writer may run ahead
    blocks = 400
    done = threading.Event()

    def writer() -> None:
        for i in range(blocks):
            ring.write(np.full(160, i, dtype=np.float32))
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    got: list[np.ndarray] = []
    while not (done.is_set() and ring.available_frames == 0):
        frames, _ = ring.read(max_frames=333)
        got.append(frames[:, 0])
    thread.join(timeout=5)
    values = np.concatenate(got)
    assert values.size == blocks * 160 and ring.dropped_frames == 0
    assert np.all(np.diff(values) >= 0)


def test_bad_configuration_and_blocks_raise() -> None:
    with pytest.raises(InvalidConfigError):
        AudioRingBuffer(0.0, 16_000)
    ring = AudioRingBuffer(10.0, 16_000, channels=2)
    with pytest.raises(InvalidAudioError, match="2 channel"):
        ring.write(np.zeros((10, 3), np.float32))
