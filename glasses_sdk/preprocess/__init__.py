"""The vectorized preprocessing core: frames and audio into model inputs, with no I/O.

Pure functions and small classes that keep preallocated buffers between calls:

- images (:mod:`~glasses_sdk.preprocess.image`): letterboxing into NCHW float32
  tensors with :class:`LetterboxInfo` to map boxes back, crops of rotated text lines,
  in-place blur of regions for privacy;
- JPEG (:mod:`~glasses_sdk.preprocess.codec`): encode and decode with the fastest
  well-kept library measured here;
- audio (:mod:`~glasses_sdk.preprocess.audio`): PCM conversion, polyphase resampling,
  a streaming framer and a log-mel front end whose stream equals its whole-clip output.

Bad input raises a subclass of :class:`glasses_sdk.InvalidInputError` naming what was
expected.
"""

from glasses_sdk.preprocess.audio import (
    SUPPORTED_SAMPLE_RATES_HZ,
    Framer,
    LogMel,
    LogMelOptions,
    Resampler,
    downmix_to_mono,
    float32_to_int16,
    int16_to_float32,
    mel_filterbank,
    resample,
)
from glasses_sdk.preprocess.codec import JpegBackend, decode_jpeg, encode_jpeg, jpeg_backend
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

__all__ = [
    "Framer",
    "JpegBackend",
    "LetterboxInfo",
    "LetterboxOptions",
    "Letterboxer",
    "LogMel",
    "LogMelOptions",
    "Resampler",
    "SUPPORTED_SAMPLE_RATES_HZ",
    "blur_regions",
    "crop_quad",
    "crop_quads",
    "decode_jpeg",
    "downmix_to_mono",
    "encode_jpeg",
    "float32_to_int16",
    "int16_to_float32",
    "jpeg_backend",
    "letterbox",
    "letterbox_batch",
    "mel_filterbank",
    "resample",
]
