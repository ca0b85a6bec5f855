"""The audio core against librosa: log-mel on streaming chunks and on a 10 s clip.

Run from a checkout: ``python -m benchmarks.bench_audio``. Everything is single-threaded:
BLAS and FFT thread pools are limited to one thread with threadpoolctl (``run`` does it
itself, so that the ratios compare algorithms, not core counts, also when it is called
alone).

Two librosa references per case, with the same options and the same output
(``(n_mels, n_frames)`` float32 dB, ``top_db=None``):

- *as users call it*: ``librosa.feature.melspectrogram`` then ``librosa.power_to_db``,
  which rebuilds the mel filterbank on every call;
- *at its best*: ``librosa.stft`` with a mel filterbank built once, ``np.abs(S) ** 2``,
  the mel product, then ``librosa.power_to_db``.

For the streaming case (16 kHz, 80 ms = 1280-sample chunks, n_fft 512, win 400, hop 160,
40 mels) our side is ``LogMel.push`` in steady state, 8 frames per call. librosa has no
stream, so its side gets the same 1280 new samples plus the ``n_fft - hop = 352``
samples of context that make it yield the same 8 frames with ``center=False`` (librosa
frames are ``n_fft`` samples long: the 400-sample window sits inside a 512-sample frame).
"""

from __future__ import annotations

import sys

import numpy as np

from benchmarks._harness import Comparison, compare, render_table

__all__ = ["main", "run"]

SAMPLE_RATE_HZ = 16000
N_FFT, WIN_LENGTH, HOP_LENGTH, N_MELS = 512, 400, 160, 40
CHUNK = 1280  # 80 ms


def _speech_like(n: int, seed: int = 0) -> np.ndarray:
    """Deterministic test signal: real speech when installed, else shaped noise."""
    import soundfile as sf

    from glasses_sdk import data
    from glasses_sdk._exceptions import DataNotFoundError

    try:
        y, sr = sf.read(data.speech_path("beckett"), dtype="float32")
        if sr == SAMPLE_RATE_HZ and y.ndim == 1 and y.size >= n:
            return np.ascontiguousarray(y[:n])
    except DataNotFoundError:
        pass
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(n).astype(np.float32)
    return (0.1 * np.convolve(noise, np.ones(8, np.float32) / 8, mode="same")).astype(np.float32)


def run(quick: bool = False) -> list[Comparison]:
    """Run the audio comparisons (single-threaded) and return them."""
    import librosa
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    from glasses_sdk.preprocess.audio import LogMel, LogMelOptions

    samples, rounds = (5, 1) if quick else (30, 3)
    options = LogMelOptions(
        sample_rate_hz=SAMPLE_RATE_HZ,
        n_fft=N_FFT,
        win_length=WIN_LENGTH,
        hop_length=HOP_LENGTH,
        n_mels=N_MELS,
        top_db=None,
    )
    mel_basis = librosa.filters.mel(sr=SAMPLE_RATE_HZ, n_fft=N_FFT, n_mels=N_MELS)
    comparisons: list[Comparison] = []

    with threadpool_limits(limits=1):
        # ---- streaming: 80 ms chunks
        signal = _speech_like(SAMPLE_RATE_HZ * 10)
        n_chunks = signal.size // CHUNK
        context = N_FFT - HOP_LENGTH
        stream = LogMel(options)
        state = {"i": 0}

        def next_chunk_index() -> int:
            i = state["i"]
            state["i"] = (i + 1) % (n_chunks - 1) + 1  # chunk 0 has no context
            return i or 1

        def ours_stream() -> np.ndarray:
            i = next_chunk_index()
            return stream.push(signal[i * CHUNK : (i + 1) * CHUNK])

        def with_context() -> np.ndarray:
            i = next_chunk_index()
            return signal[i * CHUNK - context : (i + 1) * CHUNK]

        def librosa_stream_users() -> np.ndarray:
            y = with_context()
            s = librosa.feature.melspectrogram(
                y=y,
                sr=SAMPLE_RATE_HZ,
                n_fft=N_FFT,
                win_length=WIN_LENGTH,
                hop_length=HOP_LENGTH,
                n_mels=N_MELS,
                center=False,
            )
            return np.asarray(librosa.power_to_db(s, top_db=None))

        def librosa_stream_best() -> np.ndarray:
            y = with_context()
            spec = librosa.stft(
                y, n_fft=N_FFT, win_length=WIN_LENGTH, hop_length=HOP_LENGTH, center=False
            )
            return np.asarray(librosa.power_to_db(mel_basis @ (np.abs(spec) ** 2), top_db=None))

        for _ in range(n_chunks):  # reach the steady state: 8 frames per push
            ours_stream()
        assert ours_stream().shape == (N_MELS, CHUNK // HOP_LENGTH)
        assert librosa_stream_best().shape == (N_MELS, CHUNK // HOP_LENGTH)
        comparisons.append(
            compare(
                "log-mel, 80 ms stream chunk (16 kHz, 8 frames)",
                ("LogMel.push", ours_stream),
                [
                    ("librosa melspectrogram+power_to_db", librosa_stream_users, 8.0),
                    ("librosa stft+cached mel basis", librosa_stream_best, 2.5),
                ],
                samples=samples,
                rounds=rounds,
                notes="librosa gets the chunk plus n_fft - hop samples of context, center=False",
            )
        )

        # ---- whole clip: 10 s
        clip = _speech_like(SAMPLE_RATE_HZ * 10)
        whole = LogMel(options)

        def ours_clip() -> np.ndarray:
            return whole.compute(clip)

        def librosa_clip_users() -> np.ndarray:
            s = librosa.feature.melspectrogram(
                y=clip,
                sr=SAMPLE_RATE_HZ,
                n_fft=N_FFT,
                win_length=WIN_LENGTH,
                hop_length=HOP_LENGTH,
                n_mels=N_MELS,
            )
            return np.asarray(librosa.power_to_db(s, top_db=None))

        def librosa_clip_best() -> np.ndarray:
            spec = librosa.stft(clip, n_fft=N_FFT, win_length=WIN_LENGTH, hop_length=HOP_LENGTH)
            return np.asarray(librosa.power_to_db(mel_basis @ (np.abs(spec) ** 2), top_db=None))

        comparisons.append(
            compare(
                "log-mel, 10 s clip (16 kHz, 1001 frames)",
                ("LogMel.compute", ours_clip),
                [
                    ("librosa melspectrogram+power_to_db", librosa_clip_users, 2.0),
                    ("librosa stft+cached mel basis", librosa_clip_best, 2.0),
                ],
                samples=samples,
                rounds=rounds,
            )
        )
    return comparisons


def main(argv: list[str] | None = None) -> int:
    """Print the comparison table; ``--quick`` for a smoke run."""
    from rich.console import Console

    args = sys.argv[1:] if argv is None else argv
    Console().print(render_table("audio core vs librosa", run(quick="--quick" in args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
