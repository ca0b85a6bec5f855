"""onnxruntime sessions: one per model file, configured once, loaded lazily, shared.

Settings measured on the 2-core machines this SDK is developed on (DESIGN.md):
one intra-op and one inter-op thread by default, because the tasks run side by side
(VAD on the audio thread, faces on the camera thread) and compete for the same cores;
thread spinning off, because two spinning sessions called in turn were slower than
one-thread sessions; graph optimization level ALL, which halved a small CNN's time
against EXTENDED.

``onnxruntime.InferenceSession.run`` may be called from several threads at once; the
manager guards only its own table, with one lock per file so that two threads asking for
the same model load it once and two different models load in parallel.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]
from numpy.typing import NDArray

from glasses_sdk._exceptions import InvalidConfigError, ModelError, ModelNotBuiltError

__all__ = [
    "PROVIDERS_ENV",
    "LoadedModel",
    "SessionConfig",
    "SessionManager",
    "default_session_manager",
]

PROVIDERS_ENV = "GLASSES_SDK_PROVIDERS"
"""Comma-separated execution providers, in order of preference (e.g. ``CUDA,CPU``)."""

OptimizationLevel = Literal["disable", "basic", "extended", "all"]

_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}

_SHORT_PROVIDER_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "qnn": "QNNExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "dml": "DmlExecutionProvider",
}


def _provider_name(name: str) -> str:
    key = name.strip()
    return _SHORT_PROVIDER_NAMES.get(key.lower(), key)


@dataclass(frozen=True)
class SessionConfig:
    """How sessions are created: threads, providers, optimization, warm-up.

    ``providers`` are tried in order; those this onnxruntime build lacks are skipped and
    the CPU provider is always last, so a configuration written for a GPU machine still
    runs on a laptop. Short names (``"cuda"``, ``"coreml"``, ``"qnn"``) are accepted.
    """

    intra_op_threads: int = 1
    inter_op_threads: int = 1
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    optimization: OptimizationLevel = "all"
    allow_spinning: bool = False
    warmup_runs: int = 1

    def __post_init__(self) -> None:
        for name in ("intra_op_threads", "inter_op_threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidConfigError(
                    f"{name}: expected an int >= 0 (0 lets onnxruntime choose), got {value!r}"
                )
        if self.optimization not in _LEVELS:
            raise InvalidConfigError(
                f"optimization: expected one of {tuple(_LEVELS)}, got {self.optimization!r}"
            )
        if isinstance(self.warmup_runs, bool) or self.warmup_runs < 0:
            raise InvalidConfigError(f"warmup_runs: expected an int >= 0, got {self.warmup_runs!r}")
        if not self.providers:
            raise InvalidConfigError("providers: expected at least one execution provider")

    @classmethod
    def from_env(cls, **overrides: Any) -> SessionConfig:
        """The default config, with providers from ``$GLASSES_SDK_PROVIDERS`` when set."""
        config = cls(**overrides)
        env = os.environ.get(PROVIDERS_ENV, "").strip()
        if env and "providers" not in overrides:
            config = replace(config, providers=tuple(p for p in env.split(",") if p.strip()))
        return config

    def resolved_providers(self) -> list[str]:
        """The configured providers this onnxruntime has, in order, CPU last."""
        available = set(ort.get_available_providers())
        chosen = [p for p in (_provider_name(n) for n in self.providers) if p in available]
        chosen = [p for p in chosen if p != "CPUExecutionProvider"]
        return [*dict.fromkeys(chosen), "CPUExecutionProvider"]

    def session_options(self) -> ort.SessionOptions:
        """The onnxruntime options this config stands for."""
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.intra_op_threads
        options.inter_op_num_threads = self.inter_op_threads
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = _LEVELS[self.optimization]
        options.log_severity_level = 3  # errors only: unused-initializer warnings are noise
        spinning = "1" if self.allow_spinning else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
        options.add_session_config_entry("session.inter_op.allow_spinning", spinning)
        return options


@dataclass
class LoadedModel:
    """A session and what loading it cost."""

    path: Path
    session: ort.InferenceSession
    providers: list[str]
    file_bytes: int
    resident_bytes: int
    load_ms: float
    warmup_ms: float
    input_names: list[str] = field(default_factory=list)
    output_names: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A plain dict for reports (no session object)."""
        return {
            "path": str(self.path),
            "providers": self.providers,
            "file_bytes": self.file_bytes,
            "resident_bytes": self.resident_bytes,
            "load_ms": round(self.load_ms, 3),
            "warmup_ms": round(self.warmup_ms, 3),
        }


def _resident_bytes() -> int:
    """This process's resident memory (Linux ``/proc``; 0 where unavailable)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:  # noqa: PTH123
            pages = int(handle.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def _zeros_feed(session: ort.InferenceSession) -> dict[str, NDArray[Any]] | None:
    """A feed of zeros for warm-up, or None when an input has a symbolic dimension."""
    dtypes = {
        "tensor(float)": np.float32,
        "tensor(int64)": np.int64,
        "tensor(int32)": np.int32,
        "tensor(uint8)": np.uint8,
    }
    feed: dict[str, NDArray[Any]] = {}
    for arg in session.get_inputs():
        dtype = dtypes.get(arg.type)
        if dtype is None or any(not isinstance(d, int) for d in arg.shape):
            return None
        feed[arg.name] = np.zeros(arg.shape, dtype=dtype)
    return feed


class SessionManager:
    """One onnxruntime session per model file, created on first use and then shared.

    Thread-safe: any thread may call :meth:`load`; the first call for a file creates
    and warms up its session, later calls (from any thread) return the same one.
    """

    def __init__(self, config: SessionConfig | None = None) -> None:
        """Sessions will be created with ``config`` (default :meth:`SessionConfig.from_env`)."""
        self.config = config or SessionConfig.from_env()
        self._lock = threading.Lock()
        self._file_locks: dict[Path, threading.Lock] = {}
        self._loaded: dict[Path, LoadedModel] = {}

    def load(
        self,
        path: Path,
        warmup_feed: Mapping[str, NDArray[Any]] | None = None,
    ) -> LoadedModel:
        """The session of ``path``, created and warmed up on first use.

        ``warmup_feed`` is run ``config.warmup_runs`` times after creation (entries the
        model does not take are left out; default: zeros when every input has a fixed
        shape, otherwise no warm-up).
        """
        key = Path(path).resolve()
        loaded = self._loaded.get(key)
        if loaded is not None:
            return loaded
        with self._lock:
            file_lock = self._file_locks.setdefault(key, threading.Lock())
        with file_lock:
            loaded = self._loaded.get(key)
            if loaded is None:
                loaded = self._create(key, warmup_feed)
                with self._lock:
                    self._loaded[key] = loaded
        return loaded

    def _create(self, path: Path, warmup_feed: Mapping[str, NDArray[Any]] | None) -> LoadedModel:
        if not path.is_file():
            raise ModelNotBuiltError(
                f"model file {path} does not exist; run `glasses models build`"
            )
        before = _resident_bytes()
        start = time.perf_counter()
        try:
            session = ort.InferenceSession(
                str(path),
                sess_options=self.config.session_options(),
                providers=self.config.resolved_providers(),
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"onnxruntime could not load {path}: {exc}") from exc
        load_ms = (time.perf_counter() - start) * 1e3
        names = {i.name for i in session.get_inputs()}
        feed = (
            {k: v for k, v in warmup_feed.items() if k in names}
            if warmup_feed is not None
            else _zeros_feed(session)
        )
        start = time.perf_counter()
        if feed is not None:
            try:
                for _ in range(self.config.warmup_runs):
                    session.run(None, feed)
            except Exception as exc:
                raise ModelError(f"warm-up of {path} failed: {exc}") from exc
        warmup_ms = (time.perf_counter() - start) * 1e3
        file_bytes = path.stat().st_size
        return LoadedModel(
            path=path,
            session=session,
            providers=list(session.get_providers()),
            file_bytes=file_bytes,
            # The process's growth around the load, but never less than the file:
            # onnxruntime copies every initializer into memory it owns, and the growth
            # under-counts when the allocator reuses pages that an earlier session freed
            # (seen in a long test process) or when another thread frees memory meanwhile.
            resident_bytes=max(file_bytes, _resident_bytes() - before),
            load_ms=load_ms,
            warmup_ms=warmup_ms,
            input_names=[i.name for i in session.get_inputs()],
            output_names=[o.name for o in session.get_outputs()],
        )

    def loaded(self) -> list[LoadedModel]:
        """The sessions created so far."""
        with self._lock:
            return list(self._loaded.values())

    def memory_bytes(self) -> int:
        """Resident memory the loaded sessions added when they were created (approximate:
        the process's growth around each load, at least each model's file size)."""
        return sum(m.resident_bytes for m in self.loaded())

    def unload(self, paths: Sequence[Path] | None = None) -> None:
        """Drop the sessions of ``paths`` (all when None); they reload on next use."""
        with self._lock:
            if paths is None:
                self._loaded.clear()
            else:
                for p in paths:
                    self._loaded.pop(Path(p).resolve(), None)


_DEFAULT_LOCK = threading.Lock()
_DEFAULT: SessionManager | None = None


def default_session_manager() -> SessionManager:
    """The process-wide manager the tasks use unless given one."""
    global _DEFAULT  # noqa: PLW0603 - one shared, lazily created manager per process
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = SessionManager()
        return _DEFAULT
