"""The emulator's link model: a seeded, reproducible set of impairments on frames.

Impairments act on whole encoded frames above TLS (PROTOCOL.md §13), so that a
corrupted frame exercises the protocol's CRC, reassembly and retransmission rather
than ending the TLS session. They are set by a spec string::

    loss=0.05,corrupt=0.02,dup=0.01,reorder=0.01,latency_ms=20,jitter_ms=5,kbps=2000,seed=7

=============  ===========================================================  =========
key            meaning                                                      range
=============  ===========================================================  =========
``loss``       probability that a frame is dropped                          0..1
``corrupt``    probability that one bit of a frame is flipped               0..1
``dup``        probability that a frame is delivered twice                  0..1
``reorder``    probability that a frame is overtaken by the frames after it 0..1
``latency_ms`` one-way delay added to every frame leaving the device        0..60000
``jitter_ms``  uniform ± variation of that delay                            0..60000
``kbps``       bandwidth cap of frames leaving the device (0: none)         0..10^7
``mtu``        largest frame the device advertises in its HELLO             20..65535
``seed``       seed of the random generator (same seed, same impairments)   integer
=============  ===========================================================  =========

Loss, corruption and duplication apply in both directions; delay, bandwidth and
reordering to frames leaving the device. Stalls (nothing leaves the device for a while)
and disconnects are events: from the scenario's timeline or the emulator's Python API.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

from firmware_bridge._errors import ImpairmentSpecError

__all__ = ["ImpairmentSpec", "LinkImpairment", "parse_impairment"]

_PROBABILITIES = ("loss", "corrupt", "dup", "reorder")
_REORDER_DELAY_MS = 8.0


@dataclass(frozen=True)
class ImpairmentSpec:
    """What the link does to frames; all zero is a perfect link."""

    loss: float = 0.0
    corrupt: float = 0.0
    dup: float = 0.0
    reorder: float = 0.0
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    kbps: float = 0.0
    mtu: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in _PROBABILITIES:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ImpairmentSpecError(f"{name} is a probability in 0..1, got {value:g}")
        for name in ("latency_ms", "jitter_ms"):
            value = getattr(self, name)
            if not 0.0 <= value <= 60_000.0:
                raise ImpairmentSpecError(f"{name} must be within 0..60000 ms, got {value:g}")
        if not 0.0 <= self.kbps <= 1e7:
            raise ImpairmentSpecError(
                f"kbps must be within 0..10000000 (0: no cap), got {self.kbps:g}"
            )
        if self.mtu is not None and not 20 <= self.mtu <= 65_535:
            raise ImpairmentSpecError(f"mtu must be within 20..65535 bytes, got {self.mtu}")

    @property
    def is_perfect(self) -> bool:
        """Nothing is impaired (the MTU and seed aside)."""
        return not any(
            getattr(self, name) for name in (*_PROBABILITIES, "latency_ms", "jitter_ms", "kbps")
        )

    def to_spec(self) -> str:
        """The spec string that parses back to this value (non-default keys only)."""
        default = ImpairmentSpec()
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value != getattr(default, f.name):
                parts.append(
                    f"{f.name}={value:g}" if isinstance(value, float) else f"{f.name}={value}"
                )
        return ",".join(parts)


_KEYS = {f.name: f for f in dataclasses.fields(ImpairmentSpec)}


def parse_impairment(spec: str) -> ImpairmentSpec:
    """Parse ``key=value,key=value`` (see the module docstring); empty means perfect.

    Raises:
        ImpairmentSpecError: an unknown key, a repeated key, or a value out of range,
            with the accepted keys in the message.
    """
    values: dict[str, float | int] = {}
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep:
            raise ImpairmentSpecError(f"expected key=value in the impairment spec, got {item!r}")
        if key not in _KEYS:
            raise ImpairmentSpecError(
                f"unknown impairment {key!r}; expected one of {', '.join(_KEYS)}"
            )
        if key in values:
            raise ImpairmentSpecError(f"impairment {key!r} given twice")
        try:
            values[key] = int(text) if key in ("mtu", "seed") else float(text)
        except ValueError:
            kind = "an integer" if key in ("mtu", "seed") else "a number"
            raise ImpairmentSpecError(f"{key} must be {kind}, got {text.strip()!r}") from None
        if isinstance(values[key], float) and values[key] != values[key]:  # NaN
            raise ImpairmentSpecError(f"{key} must be a number, got {text.strip()!r}")
    return ImpairmentSpec(**values)  # type: ignore[arg-type]


class LinkImpairment:
    """Applies an :class:`ImpairmentSpec` to frames; one per connection, seeded.

    Implements the ``FrameFilter`` of ``firmware_bridge._session``. The spec can be
    changed while running (link degradation); the random sequence continues.
    """

    def __init__(self, spec: ImpairmentSpec | None = None) -> None:
        self.spec = spec if spec is not None else ImpairmentSpec()
        self._random = random.Random(self.spec.seed)
        self._wire_free_ms = 0.0
        self._stall_until_ms = 0.0
        self._held_in: bytes | None = None
        self.counts: dict[str, int] = dict.fromkeys(
            ("frames", "lost", "corrupted", "duplicated", "reordered"), 0
        )
        """What was done to how many frames (both directions)."""

    def set_spec(self, spec: ImpairmentSpec) -> None:
        """Change the impairments from now on."""
        self.spec = spec

    def stall(self, now_ms: float, duration_ms: float) -> None:
        """Hold every frame leaving the device for ``duration_ms`` from ``now_ms``."""
        self._stall_until_ms = max(self._stall_until_ms, now_ms + duration_ms)

    def hold_until_ms(self, now_ms: float) -> float:
        return self._stall_until_ms

    def _damage(self, frame: bytes) -> list[bytes]:
        spec, rand = self.spec, self._random
        self.counts["frames"] += 1
        if spec.loss and rand.random() < spec.loss:
            self.counts["lost"] += 1
            return []
        if spec.corrupt and rand.random() < spec.corrupt:
            self.counts["corrupted"] += 1
            damaged = bytearray(frame)
            position = rand.randrange(len(damaged))
            damaged[position] ^= 1 << rand.randrange(8)
            frame = bytes(damaged)
        if spec.dup and rand.random() < spec.dup:
            self.counts["duplicated"] += 1
            return [frame, frame]
        return [frame]

    def outgoing(self, frame: bytes, now_ms: float) -> list[tuple[float, bytes]]:
        spec = self.spec
        if spec.is_perfect:
            self.counts["frames"] += 1
            return [(now_ms, frame)]
        out: list[tuple[float, bytes]] = []
        for copy in self._damage(frame):
            release = now_ms + spec.latency_ms
            if spec.jitter_ms:
                release += self._random.uniform(-spec.jitter_ms, spec.jitter_ms)
            release = max(release, now_ms)
            if spec.kbps:
                start = max(release, self._wire_free_ms)
                self._wire_free_ms = start + len(copy) * 8 / spec.kbps
                release = self._wire_free_ms
            if spec.reorder and self._random.random() < spec.reorder:
                self.counts["reordered"] += 1
                release += _REORDER_DELAY_MS
            out.append((release, copy))
        return out

    def incoming(self, frame: bytes, now_ms: float) -> list[bytes]:
        spec = self.spec
        if spec.is_perfect:
            return [frame]
        out = self._damage(frame)
        if out and spec.reorder and self._random.random() < spec.reorder:
            # Held until the next frame arrives, which overtakes it.
            self.counts["reordered"] += 1
            held, self._held_in = self._held_in, out[-1]
            out = out[:-1] + ([held] if held is not None else [])
        elif self._held_in is not None:
            out.append(self._held_in)
            self._held_in = None
        return out
