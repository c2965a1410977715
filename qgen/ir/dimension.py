"""Physical dimensions of quantities, over three base dimensions: time, voltage and current.

Internal units are ms, mV and pA; derived internal units follow from them (pF = pA·ms/mV,
nS = pA/mV, GOhm = mV/pA, kHz = 1/ms), so no conversion factor appears inside equations.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Dimension:
    time: int = 0
    voltage: int = 0
    current: int = 0

    def __mul__(self, other: Dimension) -> Dimension:
        return Dimension(self.time + other.time, self.voltage + other.voltage,
                         self.current + other.current)

    def __truediv__(self, other: Dimension) -> Dimension:
        return Dimension(self.time - other.time, self.voltage - other.voltage,
                         self.current - other.current)

    def __pow__(self, exponent: int) -> Dimension:
        return Dimension(self.time * exponent, self.voltage * exponent, self.current * exponent)

    @property
    def is_dimensionless(self) -> bool:
        return self == DIMENSIONLESS

    def root(self, n: int) -> Dimension | None:
        """The n-th root, or None when an exponent is not divisible by n."""
        exps = (self.time, self.voltage, self.current)
        if any(e % n for e in exps):
            return None
        return Dimension(*(e // n for e in exps))

    def __str__(self) -> str:
        if self in _NAMES:
            return _NAMES[self]
        num, den = [], []
        for unit, exp in (("ms", self.time), ("mV", self.voltage), ("pA", self.current)):
            if exp:
                target = num if exp > 0 else den
                target.append(unit if abs(exp) == 1 else f"{unit}^{abs(exp)}")
        top = "*".join(num) or "1"
        return top if not den else f"{top}/{'*'.join(den)}"


DIMENSIONLESS = Dimension()
TIME = Dimension(time=1)
VOLTAGE = Dimension(voltage=1)
CURRENT = Dimension(current=1)
CAPACITANCE = CURRENT * TIME / VOLTAGE
CONDUCTANCE = CURRENT / VOLTAGE
RESISTANCE = VOLTAGE / CURRENT
FREQUENCY = DIMENSIONLESS / TIME

_NAMES = {
    DIMENSIONLESS: "dimensionless",
    TIME: "ms",
    VOLTAGE: "mV",
    CURRENT: "pA",
    CAPACITANCE: "pF",
    CONDUCTANCE: "nS",
    RESISTANCE: "GOhm",
    FREQUENCY: "1/ms",
    VOLTAGE / TIME: "mV/ms",
    CURRENT / TIME: "pA/ms",
}
