"""atheris harness for the wire protocol's decoder and reassembler.

Any exception other than the protocol's own :class:`ProtocolError` that escapes
decoding untrusted bytes is a crash, and so is memory held beyond the configured caps.
Run ``python tests/fuzz/fuzz_protocol.py -max_total_time=60 CORPUS_DIR`` (``make fuzz``
runs it longer); the corpus is seeded from the committed test vectors so that the
fuzzer starts from valid frames. tests/fuzz/test_fuzz.py runs it for a bounded time.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["firmware_bridge"]):
    from firmware_bridge._errors import ProtocolError
    from firmware_bridge._reassembly import Reassembler, ReassemblyLimits, ReceivedMessage
    from firmware_bridge.protocol import Frame, FrameDecoder, decode_frame

# Small caps, so that a memory-cap violation shows up quickly instead of at 16 MiB.
LIMITS = ReassemblyLimits(
    max_message_bytes=64 * 1024,
    max_fragments_per_lane=512,
    max_buffered_bytes=128 * 1024,
    reassembly_timeout_ms=50.0,
)
MAX_FRAME_BYTES = 4096


def _check_reassembler(reassembler: Reassembler, frames: list[Frame], fdp: object) -> None:
    now_ms = 0.0
    for frame in frames:
        now_ms += 1.0
        for event in reassembler.push(frame, now_ms):
            if isinstance(event, ReceivedMessage):
                event.message.pack()  # a delivered message re-encodes
        if reassembler.reserved_bytes > LIMITS.max_buffered_bytes:
            raise AssertionError(
                f"reassembler holds {reassembler.reserved_bytes} bytes over the cap"
            )


def test_one_input(data: bytes) -> None:
    """One fuzz input: decode as a frame, as a chunked stream, and reassemble."""
    fdp = atheris.FuzzedDataProvider(data)
    mode = fdp.ConsumeIntInRange(0, 2)
    rest = fdp.ConsumeBytes(fdp.remaining_bytes())
    if mode == 0:
        try:
            frame = decode_frame(rest, max_frame_bytes=MAX_FRAME_BYTES)
        except ProtocolError:
            return
        _check_reassembler(Reassembler(LIMITS), [frame], fdp)
        return
    decoder = FrameDecoder(max_frame_bytes=MAX_FRAME_BYTES)
    frames: list[Frame] = []
    step = 1 + (len(rest) % 97)  # arbitrary chunking must not matter
    for start in range(0, len(rest), step):
        events = decoder.feed(rest[start : start + step])
        frames += [e for e in events if isinstance(e, Frame)]
        if decoder.buffered_bytes > MAX_FRAME_BYTES:
            raise AssertionError(f"decoder buffers {decoder.buffered_bytes} bytes")
    frames += [e for e in decoder.flush() if isinstance(e, Frame)]
    if mode == 2:
        _check_reassembler(Reassembler(LIMITS), frames, fdp)


def main() -> None:
    """Run the fuzzer with libFuzzer's command-line options."""
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
