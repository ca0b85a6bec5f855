"""Fails loudly if the environment holds a package that must never be there.

A CUDA build of torch pulls several gigabytes of ``nvidia-*`` wheels and the machines
this runs on have no GPU; the non-headless ``opencv-python`` shadows the headless build
(both install the ``cv2`` module) and drags in GUI libraries.
"""

from __future__ import annotations

import sys
from importlib.metadata import distributions


def main() -> int:
    """Print one line per forbidden package and return 1 if any is installed."""
    names = sorted({(d.metadata["Name"] or "").lower() for d in distributions()})
    bad = [n for n in names if n.startswith("nvidia-")]
    bad += [n for n in names if n in ("opencv-python", "opencv-contrib-python")]
    for name in bad:
        print(f"error: forbidden package installed: {name} (CPU-only, headless OpenCV only)")
    if bad:
        print("error: remove them (pip uninstall) and install torch==2.13.0 (the CPU build)")
        return 1
    print(f"setup: environment checked ({len(names)} packages, no CUDA, headless OpenCV)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
