"""Server-side fault injection for the chaos run: crash at a chosen point, on purpose.

``GLASSES_FAULT_CRASH_AFTER_MODEL=<n>`` makes the server SIGKILL its own process after
the ``n``-th idempotent request whose handler produced a response to keep (the model
call is done) and before that response is committed to the idempotency store or sent:
the one window in which a crash could make a retry run the request a second time.

The variable deliberately does not start with ``GLASSES_CLOUD_``: the settings refuse
unknown ``GLASSES_CLOUD_*`` variables, and a fault switch is not a setting. Unset (the
only state in production) the hook costs one attribute read.
"""

from __future__ import annotations

import os
import signal
import threading

__all__ = ["CRASH_AFTER_MODEL_ENV", "FaultInjector", "faults"]

CRASH_AFTER_MODEL_ENV = "GLASSES_FAULT_CRASH_AFTER_MODEL"


class FaultInjector:
    """Counts model calls and kills this process at the configured one."""

    def __init__(self, crash_after_model: int | None) -> None:
        """``crash_after_model``: the 1-based call after which to die; None: never."""
        if crash_after_model is not None and crash_after_model < 1:
            raise ValueError(
                f"{CRASH_AFTER_MODEL_ENV}: expected a call number >= 1, got {crash_after_model}"
            )
        self.crash_after_model = crash_after_model
        self.model_calls = 0
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> FaultInjector:
        """Read ``GLASSES_FAULT_CRASH_AFTER_MODEL`` (unset or empty: no fault)."""
        raw = (os.environ if env is None else env).get(CRASH_AFTER_MODEL_ENV, "").strip()
        if not raw:
            return cls(None)
        if not raw.isdigit():
            raise ValueError(f"{CRASH_AFTER_MODEL_ENV}: expected a call number, got {raw!r}")
        return cls(int(raw))

    def after_model_call(self) -> None:
        """Called once per executed request, between its model call and its commit."""
        if self.crash_after_model is None:
            return
        with self._lock:
            self.model_calls += 1
            crash = self.model_calls == self.crash_after_model
        if crash:
            # SIGKILL, not an exception or sys.exit: nothing may run after this point
            # (no finally blocks, no release of the idempotency record, no flush).
            os.kill(os.getpid(), signal.SIGKILL)


faults = FaultInjector.from_env()
"""The process's injector, configured once from the environment at import."""
