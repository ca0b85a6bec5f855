"""The device emulator: glasses you can test without glasses.

:class:`Emulator` serves the device side of the protocol on TCP (pairing and pinned
TLS by default), plays a :class:`Scenario` (real footage, real speech, a timeline of
taps, battery drain, heat and link degradation) and applies a seeded
:class:`ImpairmentSpec` to every frame. ``glasses emulator`` runs it from the command
line; :func:`default_scenario_path` is the scenario shipped with the package.
"""

from firmware_bridge.emulator._impair import ImpairmentSpec, LinkImpairment, parse_impairment
from firmware_bridge.emulator._model import DeviceModel, StreamPlan
from firmware_bridge.emulator._scenario import (
    Scenario,
    TimelineEvent,
    default_scenario_path,
    load_scenario,
)
from firmware_bridge.emulator._server import Emulator, EmulatorThreadView

__all__ = [
    "DeviceModel",
    "Emulator",
    "EmulatorThreadView",
    "ImpairmentSpec",
    "LinkImpairment",
    "Scenario",
    "StreamPlan",
    "TimelineEvent",
    "default_scenario_path",
    "load_scenario",
    "parse_impairment",
]
