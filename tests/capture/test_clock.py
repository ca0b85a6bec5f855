"""ClockMapper: device time onto the SDK clock, lower envelope, drift, resets."""

from __future__ import annotations

import numpy as np
import pytest

from glasses_sdk._exceptions import InvalidConfigError
from glasses_sdk.capture._clock import ClockMapper


def test_constant_offset_is_recovered_from_the_least_delayed_observation() -> None:
    rng = np.random.default_rng(0)
    mapper = ClockMapper()
    for i in range(200):
        device_s = i * 0.02
        delay_s = 0.003 + rng.exponential(0.004)  # transport delay, never negative
        mapper.observe(device_s, 100.0 + device_s + delay_s)
    assert mapper.to_host(2.0) == pytest.approx(102.003, abs=0.001)


def test_drift_is_corrected() -> None:
    rng = np.random.default_rng(1)
    mapper = ClockMapper(window=512)
    ppm = 80.0  # the device's crystal runs slow by 80 ppm
    for i in range(500):
        device_s = i * 0.05
        host_s = 5.0 + device_s * (1 + ppm * 1e-6) + 0.002 + rng.exponential(0.001)
        mapper.observe(device_s, host_s)
    assert mapper.drift_ppm == pytest.approx(ppm, abs=20)
    expected = 5.0 + 30.0 * (1 + ppm * 1e-6) + 0.002
    # Without drift correction this would be 2.4 ms off after 30 s.
    assert mapper.to_host(30.0) == pytest.approx(expected, abs=0.0008)


def test_outputs_never_go_backwards_and_a_reboot_resets() -> None:
    mapper = ClockMapper()
    mapper.observe(10.0, 50.0)
    first = mapper.to_host(10.0)
    mapper.observe(10.5, 50.2)  # arrived early: the envelope moves back by 0.3 s
    assert mapper.to_host(10.0) >= first
    mapper.observe(0.0, 60.0)  # the device clock jumped back: a new session
    assert mapper.observations == 1
    assert mapper.to_host(0.5) == pytest.approx(60.5)


def test_bad_use_raises() -> None:
    with pytest.raises(InvalidConfigError, match="before any observe"):
        ClockMapper().to_host(0.0)
    with pytest.raises(InvalidConfigError, match="window"):
        ClockMapper(window=1)
