"""Mapping a device's own clock onto the SDK clock, with drift correction.

A device stamps what it captures on its own clock (a sample counter, milliseconds
since boot); the host sees each item some time later, after a transport delay that
varies but is never negative. :class:`ClockMapper` turns device times into
:func:`~glasses_sdk.capture.monotonic_s` seconds:

- the rate (drift) is the least-squares slope of host time against device time through
  the least-delayed observation of each of 8 stretches of a window of recent
  observations (once they span ``min_span_s`` on both clocks), clamped to
  ``1 ± max_drift_ppm``; crystal clocks
  drift by tens of ppm, which is 3.6 ms a minute at 60 ppm, enough to pull audio and
  video apart within a session;
- the offset puts the line under the observations (the lower envelope): the
  observation with the least transport delay says the most about when things
  happened, and averaging would add the mean delay to every timestamp.

Pure: no clock is read here, the caller passes both times.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import numpy.typing as npt

from glasses_sdk._exceptions import InvalidConfigError

__all__ = ["ClockMapper"]


class ClockMapper:
    """Map device timestamps (seconds on the device's clock) onto the SDK clock.

    Call :meth:`observe` with each ``(device_s, host_s)`` pair (when the host received
    something the device stamped ``device_s``), and :meth:`to_host` to map a device
    time. Outputs never go backwards for non-decreasing inputs. A device clock that
    jumps back by more than ``reset_after_s`` (a reboot) starts a new mapping.
    """

    def __init__(
        self,
        *,
        window: int = 256,
        max_drift_ppm: float = 1000.0,
        min_span_s: float = 1.0,
        reset_after_s: float = 1.0,
    ) -> None:
        if window < 2:
            raise InvalidConfigError(f"window must be at least 2 observations, got {window}")
        if max_drift_ppm < 0 or min_span_s <= 0 or reset_after_s <= 0:
            raise InvalidConfigError(
                "max_drift_ppm must be >= 0 and min_span_s, reset_after_s positive; got "
                f"{max_drift_ppm}, {min_span_s}, {reset_after_s}"
            )
        self._device: deque[float] = deque(maxlen=window)
        self._host: deque[float] = deque(maxlen=window)
        self._max_drift = max_drift_ppm * 1e-6
        self._min_span_s = min_span_s
        self._reset_after_s = reset_after_s
        self._rate = 1.0
        self._offset_s: float | None = None
        self._origin_device_s = 0.0
        self._last_out_s: float | None = None
        self._last_in_s: float | None = None

    @property
    def drift_ppm(self) -> float:
        """How much faster (positive) the host clock runs than the device's, in ppm."""
        return (self._rate - 1.0) * 1e6

    @property
    def observations(self) -> int:
        """Observations in the current window."""
        return len(self._device)

    def reset(self) -> None:
        """Forget every observation (a new device session)."""
        self._device.clear()
        self._host.clear()
        self._rate = 1.0
        self._offset_s = None
        self._last_out_s = None
        self._last_in_s = None

    def observe(self, device_s: float, host_s: float) -> None:
        """Record that the host received, at ``host_s``, what the device stamped ``device_s``."""
        if self._device and device_s < self._device[-1] - self._reset_after_s:
            self.reset()
        self._device.append(device_s)
        self._host.append(host_s)
        d = np.fromiter(self._device, dtype=np.float64, count=len(self._device))
        h = np.fromiter(self._host, dtype=np.float64, count=len(self._host))
        d0 = d[0]
        span_s = d[-1] - d0
        if span_s >= self._min_span_s and h[-1] - h[0] >= self._min_span_s:
            self._rate = self._envelope_slope(d - d0, h, span_s)
        # Intercept of the line of this slope under every point (least transport delay).
        self._offset_s = float(np.min(h - self._rate * (d - d0)))
        self._origin_device_s = float(d0)

    _BINS = 8

    def _envelope_slope(
        self, d: npt.NDArray[np.float64], h: npt.NDArray[np.float64], span_s: float
    ) -> float:
        """Slope through the least-delayed observation of each of 8 device-time bins.

        A least-squares fit through every point would tilt towards bursts (a backlog
        delivered at once after a stall); the lower envelope ignores them."""
        bins = np.minimum((d * (self._BINS / span_s)).astype(np.int64), self._BINS - 1)
        order = np.lexsort((h - d, bins))
        _, first = np.unique(bins[order], return_index=True)
        pick = order[first]
        if pick.size < 2:
            return self._rate
        dp, hp = d[pick], h[pick]
        dc = dp - dp.mean()
        slope = float(np.dot(dc, hp - hp.mean()) / np.dot(dc, dc))
        return min(max(slope, 1.0 - self._max_drift), 1.0 + self._max_drift)

    def to_host(self, device_s: float) -> float:
        """The SDK-clock time of ``device_s``; needs at least one observation."""
        if self._offset_s is None:
            raise InvalidConfigError("ClockMapper.to_host() called before any observe()")
        out = self._offset_s + self._rate * (device_s - self._origin_device_s)
        if (
            self._last_out_s is not None
            and self._last_in_s is not None
            and device_s >= self._last_in_s
        ):
            out = max(out, self._last_out_s)
        self._last_in_s = device_s
        self._last_out_s = out
        return out
