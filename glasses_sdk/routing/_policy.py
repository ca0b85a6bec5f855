"""The local-or-cloud policy: one pure decision per request, with its reasons.

:class:`RoutingPolicy` never awaits and does no I/O: it reads what the caller knows
about the request (:class:`RouteRequest`) and the device, link and cloud at that moment
(:class:`Conditions`) and returns a :class:`Decision` whose ``reasons`` say why, in
words an app can show. The rules, in order:

1. the task needs a model the device lacks, or no local model serves it: the cloud,
   or ``refused`` when the cloud is unreachable (there is nothing to answer with);
2. anything that argues against the local answer — confidence below the task's
   threshold, low battery (not charging), a hot device, throttling past the limit, a
   local latency over the deadline — sends the request to the cloud when the cloud is
   reachable and its link can make the deadline; otherwise the local answer is used,
   ``local_degraded``, with both the reasons against it and why the cloud was not used;
3. otherwise local.
"""

from __future__ import annotations

import enum
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from glasses_sdk._device import DeviceState
from glasses_sdk._exceptions import InvalidConfigError, InvalidInputError

__all__ = ["Conditions", "Decision", "PolicyOptions", "Route", "RouteRequest", "RoutingPolicy"]

logger = logging.getLogger("glasses_sdk.routing")


class Route(enum.StrEnum):
    """Where one request is answered."""

    LOCAL = "local"
    CLOUD = "cloud"
    LOCAL_DEGRADED = "local_degraded"
    """The cloud would be better but cannot be used; the local answer stands."""
    REFUSED = "refused"
    """No local answer exists and the cloud is unreachable."""


def _check_fraction(name: str, value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise InvalidInputError(f"{name} must be within 0..1, got {value}")


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """What the caller knows about one request."""

    task: str
    """``"read_text"``, ``"describe_scene"``, ``"transcribe"``, ``"take_photo"`` or custom."""
    deadline_ms: float
    """Time left for the whole request."""
    local_available: bool
    """A local model can serve this task."""
    local_latency_ms: float | None = None
    """Expected or measured local latency."""
    local_confidence: float | None = None
    """Confidence (0..1) of a local result already computed, if any."""
    confidence_threshold: float = 0.0
    """The task's threshold (0..1): a local result below it goes to the cloud."""
    needs_cloud_model: bool = False
    """The task needs a model the device lacks."""

    def __post_init__(self) -> None:
        if not self.task:
            raise InvalidInputError("task must be a non-empty name, got ''")
        if not (math.isfinite(self.deadline_ms) and self.deadline_ms > 0):
            raise InvalidInputError(
                f"deadline_ms must be a finite number of milliseconds > 0, got {self.deadline_ms}"
            )
        if self.local_latency_ms is not None and not (
            math.isfinite(self.local_latency_ms) and self.local_latency_ms >= 0
        ):
            raise InvalidInputError(
                f"local_latency_ms must be a finite number >= 0, got {self.local_latency_ms}"
            )
        _check_fraction("local_confidence", self.local_confidence)
        _check_fraction("confidence_threshold", self.confidence_threshold)


@dataclass(frozen=True, slots=True)
class Conditions:
    """Device, link and cloud state at decision time (``None``: not reported)."""

    battery_percent: float | None = None
    charging: bool | None = None
    temperature_c: float | None = None
    throttle_level: int = 0
    cloud_available: bool = True
    """The cloud client's circuit is not open (``CloudClient.available``)."""
    link_rtt_ms: float | None = None
    """Round trip to the cloud, when measured."""

    def __post_init__(self) -> None:
        if self.battery_percent is not None and not 0.0 <= self.battery_percent <= 100.0:
            raise InvalidInputError(
                f"battery_percent must be within 0..100, got {self.battery_percent}"
            )
        if self.throttle_level < 0:
            raise InvalidInputError(f"throttle_level must be >= 0, got {self.throttle_level}")
        if self.link_rtt_ms is not None and not (
            math.isfinite(self.link_rtt_ms) and self.link_rtt_ms >= 0
        ):
            raise InvalidInputError(f"link_rtt_ms must be a number >= 0, got {self.link_rtt_ms}")

    @classmethod
    def from_device(
        cls, state: DeviceState, *, cloud_available: bool, link_rtt_ms: float | None = None
    ) -> Conditions:
        """Conditions from a device snapshot plus what the cloud client knows."""
        return cls(
            battery_percent=state.battery_percent,
            charging=state.charging,
            temperature_c=state.temperature_c,
            throttle_level=state.throttle_level,
            cloud_available=cloud_available,
            link_rtt_ms=link_rtt_ms,
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """A route and the reasons for it, e.g. ``"local confidence 0.41 < threshold 0.60"``."""

    route: Route
    reasons: tuple[str, ...]
    task: str
    decided_s: float
    """When it was decided (``time.time()``)."""


@dataclass(frozen=True, slots=True)
class PolicyOptions:
    """Thresholds of :class:`RoutingPolicy`."""

    low_battery_percent: float = 20.0
    """Below this, and not charging, the cloud saves the battery."""
    hot_temperature_c: float = 43.0
    """At or above this the cloud spares the device (skin contact: glasses run cooler
    than phones)."""
    max_throttle_level: int = 1
    """Above this throttling level, local inference is too slow or too hot."""
    link_margin: float = 1.0
    """The cloud is only used when ``link_rtt_ms * link_margin`` is below the deadline."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.low_battery_percent <= 100.0:
            raise InvalidConfigError(
                f"low_battery_percent must be within 0..100, got {self.low_battery_percent}"
            )
        if not math.isfinite(self.hot_temperature_c):
            raise InvalidConfigError(
                f"hot_temperature_c must be a finite temperature, got {self.hot_temperature_c}"
            )
        if self.max_throttle_level < 0:
            raise InvalidConfigError(
                f"max_throttle_level must be >= 0, got {self.max_throttle_level}"
            )
        if not (math.isfinite(self.link_margin) and self.link_margin >= 1.0):
            raise InvalidConfigError(f"link_margin must be >= 1.0, got {self.link_margin}")


class RoutingPolicy:
    """Decides local or cloud per request; logs each decision and tells listeners."""

    def __init__(self, options: PolicyOptions | None = None) -> None:
        """Use ``options`` (defaults when None)."""
        self.options = options or PolicyOptions()
        self._listeners: list[Callable[[Decision], None]] = []
        self._lock = threading.Lock()

    def add_listener(self, callback: Callable[[Decision], None]) -> Callable[[], None]:
        """Call ``callback`` with every decision; returns a function that unsubscribes."""
        with self._lock:
            self._listeners.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._listeners:
                    self._listeners.remove(callback)

        return unsubscribe

    def _cloud_blockers(self, request: RouteRequest, conditions: Conditions) -> list[str]:
        if not conditions.cloud_available:
            return ["cloud unavailable (circuit open or unreachable)"]
        rtt = conditions.link_rtt_ms
        if rtt is not None and rtt * self.options.link_margin >= request.deadline_ms:
            return [f"link rtt {rtt:.0f} ms >= deadline {request.deadline_ms:.0f} ms"]
        return []

    def _against_local(self, request: RouteRequest, conditions: Conditions) -> list[str]:
        options = self.options
        reasons = []
        confidence = request.local_confidence
        if confidence is not None and confidence < request.confidence_threshold:
            reasons.append(
                f"local confidence {confidence:.2f} < threshold {request.confidence_threshold:.2f}"
            )
        battery = conditions.battery_percent
        if (
            battery is not None
            and battery < options.low_battery_percent
            and not conditions.charging
        ):
            reasons.append(
                f"battery {battery:.0f}% < {options.low_battery_percent:.0f}% and not charging"
            )
        temperature = conditions.temperature_c
        if temperature is not None and temperature >= options.hot_temperature_c:
            reasons.append(
                f"device hot: {temperature:.1f} °C >= {options.hot_temperature_c:.1f} °C"
            )
        if conditions.throttle_level > options.max_throttle_level:
            reasons.append(
                f"throttle level {conditions.throttle_level} > {options.max_throttle_level}"
            )
        latency = request.local_latency_ms
        if latency is not None and latency > request.deadline_ms:
            reasons.append(
                f"local latency {latency:.0f} ms > deadline {request.deadline_ms:.0f} ms"
            )
        return reasons

    def _route(self, request: RouteRequest, conditions: Conditions) -> tuple[Route, list[str]]:
        blockers = self._cloud_blockers(request, conditions)
        if request.needs_cloud_model or not request.local_available:
            why = (
                f"task {request.task!r} needs a model the device lacks"
                if request.needs_cloud_model
                else f"no local model for task {request.task!r}"
            )
            return (Route.REFUSED, [why, *blockers]) if blockers else (Route.CLOUD, [why])
        against = self._against_local(request, conditions)
        if not against:
            return Route.LOCAL, [f"local model for {request.task!r} meets deadline and threshold"]
        if blockers:
            return Route.LOCAL_DEGRADED, [*against, *blockers]
        return Route.CLOUD, against

    def preview(self, request: RouteRequest, conditions: Conditions) -> Decision:
        """What :meth:`decide` would answer, without logging it or calling the listeners:
        for a caller that acts early on a likely route (a reader that starts speaking
        its first confident line) and makes the real decision when it has the facts."""
        route, reasons = self._route(request, conditions)
        return Decision(route, tuple(reasons), request.task, time.time())

    def decide(self, request: RouteRequest, conditions: Conditions) -> Decision:
        """Decide one request (pure; logs it and calls the listeners)."""
        decision = self.preview(request, conditions)
        route, reasons = decision.route, decision.reasons
        logger.info("route %s for %s: %s", route.value, request.task, "; ".join(reasons))
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            # A listener's bug must not change the route of a request.
            try:
                listener(decision)
            except Exception:
                logger.exception("a routing listener failed on %s", decision)
        return decision
