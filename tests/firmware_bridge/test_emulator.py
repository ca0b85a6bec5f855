"""The emulator's pieces: the impairment spec and model, the device model, scenarios."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_bridge import CaptureLedState, ThrottleLevel
from firmware_bridge._errors import ImpairmentSpecError, ScenarioError
from firmware_bridge.emulator import (
    DeviceModel,
    ImpairmentSpec,
    LinkImpairment,
    default_scenario_path,
    load_scenario,
    parse_impairment,
)
from firmware_bridge.protocol import BatteryStatus, Frame, Lane, decode_frame
from tests.conftest import need_data


def test_an_impairment_spec_parses_and_round_trips() -> None:
    spec = parse_impairment(
        "loss=0.05,corrupt=0.02,dup=0.01,reorder=0.01,latency_ms=20,jitter_ms=5,kbps=2000,seed=7"
    )
    assert spec == ImpairmentSpec(0.05, 0.02, 0.01, 0.01, 20.0, 5.0, 2000.0, None, 7)
    assert parse_impairment(spec.to_spec()) == spec
    assert parse_impairment("") == ImpairmentSpec()
    assert parse_impairment(" mtu=512 , ").mtu == 512
    assert ImpairmentSpec().is_perfect and not spec.is_perfect


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("loss=2", "loss is a probability in 0..1, got 2"),
        ("loss=-0.1", "probability"),
        ("latency_ms=-5", "latency_ms must be within 0..60000 ms"),
        ("kbps=-1", "kbps must be within"),
        ("mtu=10", "mtu must be within 20..65535"),
        ("mtu=1.5", "mtu must be an integer"),
        ("loss=lots", "loss must be a number, got 'lots'"),
        ("loss=nan", "loss must be a number"),
        ("drop=0.1", "unknown impairment 'drop'; expected one of loss, corrupt"),
        ("loss", "expected key=value"),
        ("loss=0.1,loss=0.2", "given twice"),
    ],
)
def test_a_bad_impairment_spec_says_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ImpairmentSpecError, match=message):
        parse_impairment(spec)


def _frames(count: int) -> list[bytes]:
    return [
        Frame(BatteryStatus.TYPE, Lane.CONTROL, n, BatteryStatus(n % 101, False).pack()).pack()
        for n in range(count)
    ]


def test_impairments_are_seeded_and_reproducible() -> None:
    spec = parse_impairment("loss=0.1,corrupt=0.1,dup=0.1,reorder=0.1,jitter_ms=3,seed=7")
    runs = []
    for _ in range(2):
        model = LinkImpairment(spec)
        runs.append([model.outgoing(f, 1000.0 + i) for i, f in enumerate(_frames(2000))])
    assert runs[0] == runs[1]
    counts = LinkImpairment(spec)
    for i, frame in enumerate(_frames(2000)):
        counts.outgoing(frame, float(i))
    for name in ("lost", "corrupted", "duplicated", "reordered"):
        assert 120 <= counts.counts[name] <= 280, (name, counts.counts)


def test_corruption_is_caught_by_the_crc_and_the_rest_passes_intact() -> None:
    model = LinkImpairment(parse_impairment("corrupt=0.5,seed=3"))
    frames = _frames(400)
    bad = good = 0
    for frame in frames:
        for copy in model.incoming(frame, 0.0):
            try:
                decoded = decode_frame(copy)
            except Exception:
                bad += 1
            else:
                assert copy == decoded.pack() and copy in frames
                good += 1
    assert bad == model.counts["corrupted"] and good == 400 - bad


def test_bandwidth_cap_and_latency_set_release_times() -> None:
    model = LinkImpairment(parse_impairment("kbps=800,latency_ms=20"))
    frame = bytes(1000)  # 8,000 bits: 10 ms at 800 kbit/s
    releases = [model.outgoing(frame, 0.0)[0][0] for _ in range(5)]
    assert releases == pytest.approx([30.0, 40.0, 50.0, 60.0, 70.0])
    model.stall(0.0, 500.0)
    assert model.hold_until_ms(0.0) == 500.0


def _led(model: DeviceModel) -> CaptureLedState:
    return model.led  # read through a call: mypy would keep the first value narrowed


def _level(model: DeviceModel) -> ThrottleLevel:
    return model.throttle_level


def test_the_led_is_on_while_the_camera_streams_and_blocks_capture() -> None:
    model = DeviceModel()
    assert _led(model) == CaptureLedState.OFF
    model.camera_streaming = True
    assert _led(model) == CaptureLedState.ON
    model.led_blocked = True
    assert _led(model) == CaptureLedState.BLOCKED
    assert not model.can_capture() and model.plan(640, 480, 30) is None


def test_battery_drains_with_use_and_heat_throttles_in_steps() -> None:
    idle, busy = DeviceModel(), DeviceModel(camera_streaming=True, audio_streaming=True)
    idle.tick(600.0)
    busy.tick(600.0)
    assert 87.0 > idle.battery_percent > busy.battery_percent
    assert busy.temperature_c > idle.temperature_c
    model = DeviceModel(temperature_c=30.0)
    assert model.plan(640, 480, 30) is not None
    model.heat(11.0)  # 41 °C: lower resolution, same rate
    assert _level(model) == ThrottleLevel.LIGHT
    plan = model.plan(640, 480, 30)
    assert plan is not None and (plan.width_px, plan.height_px, plan.fps) == (320, 240, 30)
    model.heat(3.0)  # 44 °C: then lower the frame rate
    plan = model.plan(640, 480, 30)
    assert plan is not None and (plan.width_px, plan.fps) == (320, 15)
    model.heat(3.0)  # 47 °C: the camera pauses
    assert _level(model) == ThrottleLevel.HEAVY and model.plan(640, 480, 30) is None
    model.tick(600.0)  # it cools down when idle
    assert _level(model) == ThrottleLevel.NONE


def test_the_default_scenario_loads_real_media() -> None:
    scenario = need_data(lambda: load_scenario(default_scenario_path()))
    assert scenario.video is not None and scenario.video.is_file()
    assert scenario.wav is not None and scenario.wav.is_file()
    assert (1280, 720) in scenario.resolutions
    assert [e.action for e in scenario.timeline][:2] == ["tap", "tap"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[camera]\nvideo = 'missing.avi'\n", "does not exist"),
        ("[camera]\nvideo = 'data:nothing'\n", "expected data:pedestrian"),
        ("[camra]\n", "unknown key"),
        ("[device]\ncolour = 'red'\n", r"unknown key\(s\) colour in \[device\]"),
        ("[[timeline]]\ntap = 'TAP'\n", "needs at_s"),
        ("[[timeline]]\nat_s = 1\ntap = 'POKE'\n", "tap must be one of TAP"),
        ("[[timeline]]\nat_s = 1\ntap = 'TAP'\nheat_c = 3\n", "exactly one action"),
        ("[[timeline]]\nat_s = 1\nheat_c = 'hot'\n", "heat_c must be a float"),
        ("[[timeline]]\nat_s = 1\nimpair = 'loss=9'\n", "probability"),
        ("[link]\nimpair = 'x=1'\n", "unknown impairment"),
        ("name = \n", "not valid TOML"),
    ],
)
def test_a_bad_scenario_says_what_and_where(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=message):
        load_scenario(path)
