"""The preprocessing core against OpenCV and librosa: ``glasses bench preprocess``.

Run from a checkout: ``python -m benchmarks.preprocess [--json] [--quick]``. Everything
is single-threaded (OpenCV with ``cv2.setNumThreads(1)``, BLAS and FFT pools limited to
one thread with threadpoolctl) so that the ratios compare algorithms, not core counts.
"""

from __future__ import annotations

import argparse
import sys

from benchmarks._harness import Comparison, render_table, to_json

__all__ = ["main", "run"]


def run(*, as_json: bool = False, quick: bool = False) -> list[Comparison]:
    """Run every preprocessing comparison and print a table (or one JSON document)."""
    import cv2
    from threadpoolctl import threadpool_limits

    from benchmarks import bench_audio, bench_image

    cv2.setNumThreads(1)
    with threadpool_limits(limits=1):
        comparisons = bench_image.run(quick=quick) + bench_audio.run(quick=quick)
    if as_json:
        sys.stdout.write(to_json("preprocess", comparisons) + "\n")
    else:
        from rich.console import Console

        # Wide enough for the table even when stdout is not a terminal (CI logs).
        console = Console(width=170) if not sys.stdout.isatty() else Console()
        console.print(render_table("preprocessing core vs references", comparisons))
    return comparisons


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: ``--json`` for JSON, ``--quick`` for a smoke run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--quick", action="store_true", help="few samples (smoke run)")
    args = parser.parse_args(argv)
    run(as_json=args.json, quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
