"""The routing policy's decision table: every rule and every reason, and its events."""

from __future__ import annotations

import logging

import pytest

from glasses_sdk import DeviceState
from glasses_sdk._exceptions import InvalidConfigError, InvalidInputError
from glasses_sdk.routing import (
    Conditions,
    Decision,
    PolicyOptions,
    Route,
    RouteRequest,
    RoutingPolicy,
)

OK = Conditions(battery_percent=80, charging=False, temperature_c=35.0, link_rtt_ms=40)
DOWN = Conditions(battery_percent=80, cloud_available=False)


def req(**kw: object) -> RouteRequest:
    base: dict[str, object] = {"task": "read_text", "deadline_ms": 1000, "local_available": True}
    base.update(kw)
    return RouteRequest(**base)  # type: ignore[arg-type]


CASES = [
    # (request, conditions, route, reason fragments)
    (req(local_latency_ms=100, local_confidence=0.9, confidence_threshold=0.6), OK,
     Route.LOCAL, ["meets deadline and threshold"]),
    (req(needs_cloud_model=True), OK, Route.CLOUD, ["needs a model the device lacks"]),
    (req(needs_cloud_model=True), DOWN, Route.REFUSED,
     ["needs a model the device lacks", "cloud unavailable"]),
    (req(local_available=False), OK, Route.CLOUD, ["no local model for task 'read_text'"]),
    (req(local_available=False), DOWN, Route.REFUSED, ["no local model", "cloud unavailable"]),
    (req(local_confidence=0.41, confidence_threshold=0.6), OK, Route.CLOUD,
     ["local confidence 0.41 < threshold 0.60"]),
    (req(local_confidence=0.41, confidence_threshold=0.6), DOWN, Route.LOCAL_DEGRADED,
     ["local confidence 0.41 < threshold 0.60", "cloud unavailable"]),
    (req(), Conditions(battery_percent=12, charging=False), Route.CLOUD,
     ["battery 12% < 20% and not charging"]),
    (req(), Conditions(battery_percent=12, charging=True), Route.LOCAL, ["meets deadline"]),
    (req(), Conditions(temperature_c=44.5), Route.CLOUD, ["device hot: 44.5 °C >= 43.0 °C"]),
    (req(), Conditions(throttle_level=2), Route.CLOUD, ["throttle level 2 > 1"]),
    (req(local_latency_ms=1500), OK, Route.CLOUD, ["local latency 1500 ms > deadline 1000 ms"]),
    (req(local_latency_ms=1500), Conditions(link_rtt_ms=1200), Route.LOCAL_DEGRADED,
     ["local latency 1500 ms > deadline 1000 ms", "link rtt 1200 ms >= deadline 1000 ms"]),
    (req(local_available=False), Conditions(link_rtt_ms=1200), Route.REFUSED,
     ["no local model", "link rtt 1200 ms >= deadline 1000 ms"]),
]  # fmt: skip


@pytest.mark.parametrize(("request_", "conditions", "route", "fragments"), CASES)
def test_decision_table(
    request_: RouteRequest, conditions: Conditions, route: Route, fragments: list[str]
) -> None:
    decision = RoutingPolicy().decide(request_, conditions)
    assert decision.route is route, decision.reasons
    assert decision.task == "read_text"
    text = " | ".join(decision.reasons)
    for fragment in fragments:
        assert fragment in text, (fragment, text)


def test_several_reasons_are_all_reported() -> None:
    decision = RoutingPolicy().decide(
        req(local_confidence=0.1, confidence_threshold=0.5),
        Conditions(battery_percent=5, temperature_c=50, throttle_level=3),
    )
    assert decision.route is Route.CLOUD
    assert len(decision.reasons) == 4


def test_listeners_and_log_see_every_decision(caplog: pytest.LogCaptureFixture) -> None:
    policy = RoutingPolicy(PolicyOptions(low_battery_percent=50))
    seen: list[Decision] = []
    unsubscribe = policy.add_listener(seen.append)

    def broken(_: Decision) -> None:
        raise RuntimeError("listener bug")

    policy.add_listener(broken)
    with caplog.at_level(logging.INFO, logger="glasses_sdk.routing"):
        first = policy.decide(req(), Conditions(battery_percent=40))
    assert first.route is Route.CLOUD  # the threshold of the options, and a broken listener
    assert seen == [first]
    assert any("route cloud for read_text" in r.getMessage() for r in caplog.records)
    unsubscribe()
    policy.decide(req(), OK)
    assert seen == [first]


def test_preview_answers_as_decide_would_without_logging_or_listeners(
    caplog: pytest.LogCaptureFixture,
) -> None:
    policy = RoutingPolicy()
    seen: list[Decision] = []
    policy.add_listener(seen.append)
    with caplog.at_level(logging.INFO, logger="glasses_sdk.routing"):
        for request, conditions in (
            (req(), OK),
            (req(local_confidence=0.4, confidence_threshold=0.7), OK),
            (req(), Conditions(battery_percent=80, temperature_c=60.0)),
            (req(local_confidence=0.4, confidence_threshold=0.7), DOWN),
        ):
            preview = policy.preview(request, conditions)
            assert seen == [] and caplog.records == []
            decision = policy.decide(request, conditions)
            assert (preview.route, preview.reasons) == (decision.route, decision.reasons)
            seen.clear()
            caplog.clear()


def test_conditions_from_device_state() -> None:
    state = DeviceState(battery_percent=15, charging=False, temperature_c=41, throttle_level=1)
    conditions = Conditions.from_device(state, cloud_available=True, link_rtt_ms=30)
    assert conditions == Conditions(15, False, 41, 1, True, 30)
    assert RoutingPolicy().decide(req(), conditions).route is Route.CLOUD


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"deadline_ms": 0}, "deadline_ms"),
        ({"deadline_ms": float("nan")}, "deadline_ms"),
        ({"local_confidence": 1.5}, "local_confidence"),
        ({"confidence_threshold": -0.1}, "confidence_threshold"),
        ({"task": ""}, "task"),
        ({"local_latency_ms": -1}, "local_latency_ms"),
    ],
)
def test_bad_requests_say_what_was_expected(kw: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        req(**kw)


def test_bad_options_and_conditions() -> None:
    with pytest.raises(InvalidConfigError, match="low_battery_percent"):
        PolicyOptions(low_battery_percent=120)
    with pytest.raises(InvalidConfigError, match="max_throttle_level"):
        PolicyOptions(max_throttle_level=-1)
    with pytest.raises(InvalidInputError, match="battery_percent"):
        Conditions(battery_percent=-3)
    with pytest.raises(InvalidInputError, match="link_rtt_ms"):
        Conditions(link_rtt_ms=float("inf"))
